package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// isolation is what the host lets the platform do for each one-off.
type isolation int

const (
	// isolationNone: plain process group, shared /tmp, same user as the platform.
	isolationNone isolation = iota
	// isolationUserNS: PID and mount namespaces with a private /tmp, inside a
	// user namespace that maps the platform's own user (not root).
	isolationUserNS
	// isolationRoot: PID and mount namespaces with a private /tmp, the
	// command run as an unprivileged user.
	isolationRoot
)

func (i isolation) String() string {
	switch i {
	case isolationRoot:
		return "namespaces, unprivileged user"
	case isolationUserNS:
		return "user namespace, private /tmp, same user"
	default:
		return "none"
	}
}

// runner starts one-off process trees as the host allows.
type runner struct {
	isolation isolation
	cred      *syscall.Credential // the user one-offs run as; nil: the platform's own
	userName  string
	homeDir   string // the run-as user's home when it exists; "" => /tmp
	uid, gid  int    // owner of the one-off's /tmp; -1: leave as made
	log       *slog.Logger
	pool      *initPool // nil without isolation
}

func newRunner(runAs string, log *slog.Logger) (*runner, error) {
	r := &runner{uid: -1, gid: -1, log: log}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(runAs)
		if err != nil {
			return nil, fmt.Errorf("run-as user %q: %w", runAs, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("run-as user %q: %w", runAs, err)
		}
		if uid == 0 {
			return nil, fmt.Errorf("run-as user %q is root", runAs)
		}
		r.isolation = isolationRoot
		r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		r.uid, r.gid = int(uid), int(gid)
		r.userName = u.Username
		if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
			r.homeDir = u.HomeDir
		}
		r.pool = newInitPool(r)
		return r, nil
	}
	if u, err := user.Current(); err == nil {
		r.userName = u.Username
	}
	if err := probeUserNS(); err != nil {
		log.Warn("one-offs will not be isolated: no private /tmp, no PID namespace, same user as the platform", "err", err)
		return r, nil
	}
	r.isolation = isolationUserNS
	log.Warn("not root: one-offs run as the platform's own user, in a user namespace")
	r.pool = newInitPool(r)
	return r, nil
}

// userNSAttr maps the platform's user to root of a new user namespace, so
// that its init may mount.
func userNSAttr(a *syscall.SysProcAttr) {
	a.Cloneflags |= syscall.CLONE_NEWUSER
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	a.GidMappingsEnableSetgroups = false
}

// probeUserNS checks that the kernel lets this user make the namespaces.
func probeUserNS() error {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID}
	userNSAttr(cmd.SysProcAttr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	return nil
}

// home is HOME and the working directory of a one-off whose private dir is
// tmpDir: without isolation there is no private /tmp, so tmpDir itself.
func (r *runner) home(tmpDir string) string {
	switch {
	case r.isolation == isolationNone:
		return tmpDir
	case r.homeDir != "":
		return r.homeDir
	default:
		return "/tmp"
	}
}

// noFollow keeps uploads from writing through a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// close kills the spare inits.
func (r *runner) close() {
	if r.pool != nil {
		r.pool.close()
	}
}
