package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// protectEnvVar carries an init's protectPlan, as JSON, from the platform.
const protectEnvVar = "SSHBRIDGE_PLATFORM_ONEOFF_PROTECT"

// protectPlan is what an init hides from its one-off before it is ready.
type protectPlan struct {
	// StateDir holds the one-off dirs: hidden, the init's own reached
	// through a descriptor opened before.
	StateDir string `json:"state_dir"`
	// Protect are Config.Protect, absolute.
	Protect []string `json:"protect"`
	// OwnNetwork: the init was started in a network namespace of its
	// own, whose loopback it brings up.
	OwnNetwork bool `json:"own_network"`
}

// mountPlan is a protectPlan resolved against the filesystem as the init
// finds it: the mounts to make, each kind in its order.
type mountPlan struct {
	pin      []string // bound on themselves: a mount point cannot be renamed or removed
	readOnly []string // bound on themselves read-only: no entry made, renamed or removed
	mask     []string // files: /dev/null bound over, read-only and nodev, so that open fails
	hide     []string // directories: an empty read-only tmpfs mounted over
}

// resolveProtection turns paths into mounts. A directory is hidden; a file
// is masked and its directory made read-only, so that it cannot be
// replaced either; a path that does not exist makes its nearest existing
// directory read-only, so that the one-off cannot make it. The directory
// holding a symbolic link on the way is made read-only too, and every
// directory above a target is pinned: a one-off that could rename one
// could put a path of its own making in the bridge's way.
func resolveProtection(paths []string) (mountPlan, error) {
	var hide, mask, ro []string
	for _, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
			return mountPlan{}, fmt.Errorf("protect %q: want an absolute path other than /", p)
		}
		real, links, err := resolvePath(filepath.Clean(p))
		if err != nil {
			return mountPlan{}, fmt.Errorf("protect %s: %w", p, err)
		}
		ro = append(ro, links...)
		st, err := os.Stat(real)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ro = append(ro, nearestExisting(real))
		case err != nil:
			return mountPlan{}, fmt.Errorf("protect %s: %w", p, err)
		case st.IsDir():
			hide = append(hide, real)
		default:
			mask = append(mask, real)
			ro = append(ro, filepath.Dir(real))
		}
	}
	var m mountPlan
	under := func(p string) bool { // inside a hidden directory, or one itself
		return slices.ContainsFunc(hide, func(h string) bool { return p == h || isUnder(p, h) })
	}
	pins := map[string]bool{}
	for _, t := range slices.Concat(hide, mask, ro) {
		for d := filepath.Dir(t); d != "/"; d = filepath.Dir(d) {
			pins[d] = true
		}
	}
	for _, d := range ro {
		if d != "/" && !under(d) && !slices.Contains(m.readOnly, d) {
			m.readOnly = append(m.readOnly, d)
			delete(pins, d)
		}
	}
	for d := range pins {
		if !under(d) {
			m.pin = append(m.pin, d)
		}
	}
	for _, f := range mask {
		if !under(f) && !slices.Contains(m.mask, f) {
			m.mask = append(m.mask, f)
		}
	}
	for _, d := range hide {
		// A hidden directory inside another is hidden with it.
		if !slices.ContainsFunc(hide, func(h string) bool { return isUnder(d, h) }) && !slices.Contains(m.hide, d) {
			m.hide = append(m.hide, d)
		}
	}
	// Shallow first: a recursive bind carries the mounts already below it.
	byDepth := func(a, b string) int {
		if c := strings.Count(a, "/") - strings.Count(b, "/"); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	}
	slices.SortFunc(m.pin, byDepth)
	slices.SortFunc(m.readOnly, byDepth)
	return m, nil
}

// isUnder reports whether p is strictly below dir.
func isUnder(p, dir string) bool {
	return strings.HasPrefix(p, dir+"/")
}

// resolvePath follows the symbolic links of p's existing part, and says
// which directories hold a link on the way.
func resolvePath(p string) (real string, linkDirs []string, err error) {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0; {
		next := filepath.Join(cur, rest[0])
		st, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{cur}, rest...)...), linkDirs, nil
		}
		if err != nil {
			return "", nil, err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur, rest = next, rest[1:]
			continue
		}
		if hops++; hops > 40 {
			return "", nil, errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", nil, err
		}
		linkDirs = append(linkDirs, cur)
		if !filepath.IsAbs(target) {
			target = filepath.Join(cur, target)
		}
		// Start over from the target: it may hold links of its own.
		rest = append(strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/"), rest[1:]...)
		cur = "/"
	}
	return cur, linkDirs, nil
}

func nearestExisting(p string) string {
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); (err == nil && st.IsDir()) || d == "/" {
			return d
		}
	}
}

// apply makes the mounts, in this order: pins and read-only directories
// shallow first, then masks, then hidden directories.
func (m mountPlan) apply() error {
	for _, d := range m.pin {
		if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("pin %s: %w", d, err)
		}
	}
	for _, d := range m.readOnly {
		if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", d, err)
		}
		if err := remountReadOnly(d, 0); err != nil {
			return fmt.Errorf("read-only %s: %w", d, err)
		}
	}
	for _, f := range m.mask {
		if err := unix.Mount("/dev/null", f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask %s: %w", f, err)
		}
		if err := remountReadOnly(f, unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
			return fmt.Errorf("mask %s: %w", f, err)
		}
	}
	for _, d := range m.hide {
		err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC,
			"size=4k,nr_inodes=1,mode=000")
		if err != nil {
			return fmt.Errorf("hide %s: %w", d, err)
		}
	}
	return nil
}

// remountReadOnly makes the bind mount at p read-only with extra flags,
// keeping the flags it has: in a user namespace the kernel refuses a
// remount that would clear one it locked.
func remountReadOnly(p string, extra uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY) | extra
	for _, f := range [][2]uintptr{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f[0] != 0 {
			flags |= f[1]
		}
	}
	return unix.Mount("", p, "", flags, "")
}

// dropPrivileges is the last step before the shell starts, on the thread
// that starts it (capabilities and no_new_privs are per thread, and
// inherited). An empty bounding set with no inheritable or ambient
// capabilities leaves the shell none after exec, even as root of a user
// namespace, so it cannot undo a mount; no_new_privs keeps set-user-ID
// programs from giving any back. In the root mode the capabilities the
// thread still holds let the child switch to the run-as user first.
func dropPrivileges() error {
	for c := 0; ; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) && c > 0 {
				break // past the last capability this kernel knows
			}
			return fmt.Errorf("drop bounding set: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// readProtectPlan reads the plan the platform put in the environment.
func readProtectPlan() (protectPlan, error) {
	var pl protectPlan
	raw, ok := os.LookupEnv(protectEnvVar)
	if !ok {
		return pl, errors.New("no protection plan")
	}
	if err := json.Unmarshal([]byte(raw), &pl); err != nil {
		return pl, fmt.Errorf("protection plan: %w", err)
	}
	if !filepath.IsAbs(pl.StateDir) {
		return pl, fmt.Errorf("protection plan: state dir %q is not absolute", pl.StateDir)
	}
	return pl, nil
}
