package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"golang.org/x/sys/unix"
)

// oneOffDirs is the state dir, which holds the one-off dirs and may be shared by several platforms
// (the default one is, by every platform of the user). Each one-off dir is
// locked (flock) as long as anything may use it: by the platform from its
// making to its removal, and by the one-off's init while it runs. A dir
// whose lock is free was left by a platform that died (kill -9, a crash):
// the next platform to start removes it. The state dir's own lock keeps
// that sweep from taking a dir made but not yet locked: shared while a
// one-off dir is made, exclusive while sweeping.
type oneOffDirs struct {
	path string
	dir  *os.File
}

// oneOffDirName is the form of a one-off dir's name (its container id):
// nothing else in a state dir is ever removed.
var oneOffDirName = regexp.MustCompile(`^[0-9a-f]{32}$`)

// defaultStateDir is the state dir when none is configured: one per user
// under the system's temporary directory, so that what a platform left
// there is found by the next one, whatever it was started with.
func defaultStateDir() (string, error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ssh-bridge-platform-%d", os.Geteuid()))
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	// In a directory every user may write, the name may have been taken
	// first by someone else.
	st, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || sys == nil || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a directory of this user (uid %d) with mode 0700: remove it, or configure a state dir", path, os.Geteuid())
	}
	return path, nil
}

// openStateDir makes path if need be and opens it.
func openStateDir(path string) (*oneOffDirs, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &oneOffDirs{path: path, dir: f}, nil
}

// sweep removes the one-off dirs whose lock is free, and returns how many.
// The state dir is locked only while the dead dirs are found and their
// locks taken, not while they are removed: platforms sharing it may go on
// making one-off dirs meanwhile.
func (s *oneOffDirs) sweep() (int, error) {
	dead, err := s.takeDead()
	removed := 0
	var errs []error
	for _, d := range dead {
		if err := removeTree(d.Name()); err != nil {
			errs = append(errs, err)
		} else {
			removed++
		}
		d.Close()
	}
	return removed, errors.Join(append([]error{err}, errs...)...)
}

// takeDead returns the one-off dirs whose lock is free, locked.
func (s *oneOffDirs) takeDead() ([]*os.File, error) {
	if err := flock(s.dir, unix.LOCK_EX); err != nil {
		return nil, err
	}
	defer flock(s.dir, unix.LOCK_UN)
	ents, err := os.ReadDir(s.path)
	if err != nil {
		return nil, err
	}
	var dead []*os.File
	for _, e := range ents {
		if !e.IsDir() || !oneOffDirName.MatchString(e.Name()) {
			continue
		}
		d, err := os.OpenFile(filepath.Join(s.path, e.Name()), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue // gone meanwhile, or not a directory after all
		}
		if flock(d, unix.LOCK_EX|unix.LOCK_NB) != nil {
			d.Close() // in use
			continue
		}
		dead = append(dead, d)
	}
	return dead, nil
}

// make makes the one-off dir name, locked: the lock lasts until the
// returned file, and every descriptor passed on from it, is closed.
func (s *oneOffDirs) make(name string) (*os.File, error) {
	if err := flock(s.dir, unix.LOCK_SH); err != nil {
		return nil, err
	}
	defer flock(s.dir, unix.LOCK_UN)
	path := filepath.Join(s.path, name)
	if err := os.Mkdir(path, 0o700); err != nil {
		return nil, err
	}
	d, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err == nil {
		if err = flock(d, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			d.Close()
		}
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return d, nil
}

func (s *oneOffDirs) close() { s.dir.Close() }

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("lock %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}

// removeTree removes path and everything in it. A one-off may leave
// directories it took its own permissions from, which the platform (when
// it is not root) could not list: they are given them back.
func removeTree(path string) error {
	if os.RemoveAll(path) == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
