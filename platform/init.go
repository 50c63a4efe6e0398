package platform

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A one-off's init is this binary re-executed with initEnvVar set. It gets
// its initSpec and the one-off's stdin, stdout and stderr over a socket on
// fd initSocketFD, so that it can be started ahead of need: a Go binary
// takes tens of milliseconds to start, far more than the rest of a run.
const (
	initEnvVar   = "SSHBRIDGE_PLATFORM_ONEOFF_INIT"
	initArg0     = "oneoff-init"
	initSocketFD = 3
	maxInitSpec  = 4 << 20
	initReady    = 'R' // the byte an init sends once it waits for its one-off
	initFailed   = 'F' // the byte an init sends before the reason it cannot serve
)

// initSpec is what the init needs to prepare and run one one-off.
type initSpec struct {
	Command string   `json:"command"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`  // the one-off's dir in the state dir; its tmp is bound on /tmp
	Home    string   `json:"home"` // working directory
	TTY     bool     `json:"tty"`
	SetUser bool     `json:"set_user"`
	UID     uint32   `json:"uid"`
	GID     uint32   `json:"gid"`
}

// exitInitFailed is the code of a one-off whose init could not run the
// command (the reason is written on its output).
const exitInitFailed = 125

// RunInitIfRequested turns this process into a one-off's init when the
// platform started it as one, and then never returns. main() and the tests'
// TestMain must call it first thing, before any other work.
func RunInitIfRequested() {
	if _, ok := os.LookupEnv(initEnvVar); !ok {
		return
	}
	os.Exit(runInit())
}

// runInit is PID 1 of the one-off's PID namespace: it makes the mounts
// private, mounts a /proc of its own, brings up the loopback of its own
// network namespace when it has one, hides what the platform protects,
// waits for its one-off, binds the one-off's dir on /tmp, starts the shell
// as its child with no capabilities and reaps every orphan until the shell
// exits. Its exit then takes the whole namespace down, and its status is
// the shell's (128+N for signal N): a shell that were PID 1 itself would
// ignore the signals it has no handler for, `kill -9 $$` included.
func runInit() int {
	// The shell is started from this thread, which alone gives up its
	// capabilities: other threads of the runtime keep theirs.
	runtime.LockOSThread()
	// Neither the one-off nor anything it starts may read this process's
	// memory or descriptors through /proc or ptrace.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	stateDir, err := prepareNamespace()
	if err != nil {
		// Before the one-off's stdio arrives the socket is the only way
		// to say why.
		_ = unix.Sendto(initSocketFD, append([]byte{initFailed}, err.Error()...), unix.MSG_NOSIGNAL, nil)
		return exitInitFailed
	}
	// Ready: the platform hands one-offs to ready inits first. An init
	// started for one one-off is sent its spec at once and the socket closed
	// before this: its spec waits to be read all the same.
	_ = unix.Sendto(initSocketFD, []byte{initReady}, unix.MSG_NOSIGNAL, nil)
	s, err := receiveInitSpec()
	if err != nil {
		return exitInitFailed
	}
	if err := bindPrivateTmp(stateDir, s.Dir); err != nil {
		return initFail("bind private /tmp", err)
	}
	unix.Close(stateDir)
	if err := dropPrivileges(); err != nil {
		return initFail("drop privileges", err)
	}
	sys := &syscall.SysProcAttr{Setsid: true, Setctty: s.TTY, Ctty: 0}
	if s.SetUser {
		sys.Credential = &syscall.Credential{Uid: s.UID, Gid: s.GID, Groups: []uint32{}}
	}
	child, err := os.StartProcess("/bin/sh", []string{"sh", "-c", s.Command}, &os.ProcAttr{
		Dir:   s.Home,
		Env:   s.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   sys,
	})
	if err != nil {
		return initFail("start shell", err)
	}
	// Let go of the terminal and pipes: their other end sees EOF as soon as
	// the tree is gone.
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			_ = unix.Dup3(null, fd, 0)
		}
		unix.Close(null)
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return exitInitFailed
		}
		if pid != child.Pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// prepareNamespace makes the init's namespaces what every one-off gets:
// private mounts, a /proc of the new PID namespace alone (the host's would
// show the platform's own process), lo up in its own network namespace
// when it has one, and the platform's protected paths and state dir out of
// reach. It returns a descriptor of the state dir opened before it was
// hidden.
func prepareNamespace() (int, error) {
	// The platform's working directory may be one it protects.
	if err := unix.Chdir("/"); err != nil {
		return -1, fmt.Errorf("chdir /: %w", err)
	}
	plan, err := readProtectPlan()
	if err != nil {
		return -1, err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return -1, fmt.Errorf("make mounts private: %w", err)
	}
	detachFUSEMounts()
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return -1, fmt.Errorf("mount /proc of the one-off's PID namespace: %w", err)
	}
	if plan.OwnNetwork {
		if err := loopbackUp(); err != nil {
			return -1, err
		}
	}
	stateDir, err := unix.Open(plan.StateDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open state dir: %w", err)
	}
	m, err := resolveProtection(append([]string{plan.StateDir}, plan.Protect...))
	if err == nil {
		err = m.apply()
	}
	if err != nil {
		unix.Close(stateDir)
		return -1, err
	}
	return stateDir, nil
}

// detachFUSEMounts lazily unmounts, in the one-off's new mount namespace,
// the FUSE file systems (sshfs, rclone mount, ...) that the namespace
// copied from the host's: a copy holds its FUSE connection open, so that
// unmounting it on the host would no longer end its daemon, and the
// one-off has no business with the host's user mounts. Best effort: a
// mount it cannot detach (locked in a user namespace) stays, and only
// keeps its daemon alive while the one-off runs.
func detachFUSEMounts() {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		before, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fields, fs := strings.Fields(before), strings.Fields(after)
		if len(fields) < 5 || len(fs) == 0 || (fs[0] != "fuse" && !strings.HasPrefix(fs[0], "fuse.")) {
			continue
		}
		unix.Unmount(unescapeMountinfo(fields[4]), unix.MNT_DETACH)
	}
}

// unescapeMountinfo decodes the octal escapes (\040 for a space) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(p string) string {
	if !strings.Contains(p, "\\") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			if n, err := strconv.ParseUint(p[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// loopbackUp brings up lo, the only interface of a new network namespace,
// which starts down (ioctl SIOCSIFFLAGS, as `ip link set lo up` does):
// 127.0.0.1 and ::1 then answer inside the namespace alone.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: read flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: set lo up: %w", err)
	}
	return nil
}

// bindPrivateTmp binds dir/tmp of the (hidden) state dir on /tmp, through
// the descriptor opened before it was hidden.
func bindPrivateTmp(stateDir int, dir string) error {
	if dir == "" || strings.ContainsRune(dir, '/') || dir == "." || dir == ".." {
		return fmt.Errorf("one-off dir %q is not a plain name", dir)
	}
	fd, err := unix.Openat(stateDir, dir+"/tmp", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), "/tmp", "", unix.MS_BIND, "")
}

// receiveInitSpec reads the spec, the one-off's three stdio descriptors
// and its locked dir from the socket, installs the stdio as fds 0, 1 and 2,
// keeps the dir open (close-on-exec: the shell does not get it) and closes
// the socket. The frame is an 8-byte length carrying the descriptors, then
// the JSON.
func receiveInitSpec() (initSpec, error) {
	var s initSpec
	head := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.Recvmsg(initSocketFD, head, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n == 0 {
		return s, fmt.Errorf("receive init spec: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return s, fmt.Errorf("receive init spec: no descriptors")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 4 {
		return s, fmt.Errorf("receive init spec: want 4 descriptors")
	}
	if err := readFull(initSocketFD, head[n:]); err != nil {
		return s, err
	}
	size := binary.BigEndian.Uint64(head)
	if size > maxInitSpec {
		return s, fmt.Errorf("receive init spec: %d bytes is too large", size)
	}
	body := make([]byte, size)
	if err := readFull(initSocketFD, body); err != nil {
		return s, err
	}
	unix.Close(initSocketFD)
	for i, fd := range fds[:3] {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return s, fmt.Errorf("install stdio: %w", err)
		}
		unix.Close(fd)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("decode init spec: %w", err)
	}
	return s, nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive init spec: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("receive init spec: short read")
		}
		b = b[n:]
	}
	return nil
}

func initFail(what string, err error) int {
	fmt.Fprintf(os.Stderr, "one-off init: %s: %v\r\n", what, err)
	return exitInitFailed
}
