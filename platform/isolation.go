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
	// The command runs as root of that namespace without capabilities.
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
		return "user namespace, private /tmp, same user without capabilities"
	default:
		return "none"
	}
}

// ErrNoIsolation is the error of New, wrapped with the reason, when
// Config.RequireIsolation is set and one-offs could only run as the
// platform's own user with nothing hidden from them.
var ErrNoIsolation = errors.New("one-offs cannot be isolated")

// runner starts one-off process trees as the host allows.
type runner struct {
	isolation isolation
	plan      protectPlan         // what each init hides from its one-off, and whether it has its own network
	cred      *syscall.Credential // the user one-offs run as; nil: the platform's own
	userName  string
	homeDir   string // the run-as user's home when it exists; "" => /tmp
	uid, gid  int    // owner of the one-off's /tmp; -1: leave as made
	log       *slog.Logger
	pool      *initPool // nil without isolation
}

// newRunner finds what the host allows: root, or else user namespaces.
// Without either, one-offs run without isolation, or New fails with
// ErrNoIsolation when cfg asks for isolation. It touches no file: prove
// then proves the isolation real.
func newRunner(cfg Config, log *slog.Logger) (*runner, error) {
	r := &runner{uid: -1, gid: -1, log: log, plan: protectPlan{Protect: cfg.Protect}}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(cfg.RunAs)
		if err != nil {
			return nil, fmt.Errorf("run-as user %q: %w", cfg.RunAs, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("run-as user %q: %w", cfg.RunAs, err)
		}
		if uid == 0 {
			return nil, fmt.Errorf("run-as user %q is root", cfg.RunAs)
		}
		r.isolation = isolationRoot
		r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		r.uid, r.gid = int(uid), int(gid)
		r.userName = u.Username
		if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
			r.homeDir = u.HomeDir
		}
		return r, nil
	}
	if u, err := user.Current(); err == nil {
		r.userName = u.Username
	}
	if err := probeUserNS(); err != nil {
		if err := r.unisolated(cfg, fmt.Errorf("not root, and no user namespace: %w", err)); err != nil {
			return nil, err
		}
		return r, nil
	}
	r.isolation = isolationUserNS
	return r, nil
}

// prove proves the isolation by starting a first init with everything it
// must do (namespaces, its own /proc, lo up in its own network namespace
// unless cfg.HostNetwork, the state dir and protected paths hidden), which
// then becomes the first spare. Where only the network namespace fails,
// one-offs get the host's network, with a warning. As root any other
// failure is an error; otherwise one-offs run without isolation, or New
// fails with ErrNoIsolation.
func (r *runner) prove(cfg Config, stateDir string) error {
	r.plan.StateDir = stateDir
	r.plan.OwnNetwork = false
	if r.isolation == isolationNone {
		return nil
	}
	r.plan.OwnNetwork = !cfg.HostNetwork
	first, err := r.readyInit()
	if err != nil && r.plan.OwnNetwork {
		// Perhaps only the network namespace is refused (a kernel without
		// them, a limit of 0 in /proc/sys/user/max_net_namespaces, a
		// seccomp or LSM policy): the rest of the isolation is worth more
		// than a refusal.
		netErr := err
		r.plan.OwnNetwork = false
		if first, err = r.readyInit(); err == nil {
			r.log.Warn("one-offs share the host's network: no network namespace can be made for them, so they can reach whatever listens on this host, its loopback included", "err", netErr)
		}
	}
	switch {
	case err != nil && r.isolation == isolationRoot:
		return err
	case err != nil:
		r.isolation = isolationNone
		return r.unisolated(cfg, fmt.Errorf("not root, and a user namespace cannot hide the protected paths: %w", err))
	}
	r.pool = newInitPool(r, first)
	if r.isolation == isolationUserNS {
		r.log.Info("not root: one-offs run as the platform's own user, in a user namespace, without capabilities")
	}
	return nil
}

// readyInit starts an init and waits until it is ready.
func (r *runner) readyInit() (*initProc, error) {
	in, err := r.spawnInit()
	if err != nil {
		return nil, err
	}
	if err := in.awaitReady(); err != nil {
		in.discard()
		return nil, err
	}
	return in, nil
}

// unisolated says that one-offs will run without isolation, for why; an
// error when cfg requires isolation.
func (r *runner) unisolated(cfg Config, why error) error {
	if cfg.RequireIsolation {
		return fmt.Errorf("%w: %w", ErrNoIsolation, why)
	}
	r.log.Warn("one-offs will not be isolated: no private /tmp, no PID namespace, the host's network, same user as the platform, nothing hidden from them", "err", why)
	return nil
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
