package platform

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// process is a running one-off tree as the platform sees it.
type process struct {
	cmd   *exec.Cmd
	in    io.WriteCloser // the process's stdin: pty master or pipe
	out   *os.File       // its merged output: pty master or pipe
	pty   *os.File       // nil in pipe mode
	group bool           // kill the process group rather than an init
	done  chan struct{}  // closed once reaped; code is set then
	code  int
}

// startSpec is what a one-off runs.
type startSpec struct {
	command       string
	env           []string
	dir           string   // the one-off's dir in the state dir: dir/tmp becomes /tmp (or, without isolation, HOME)
	lock          *os.File // dir, locked: the init holds it too, as long as it lives
	tty           bool
	width, height uint16
}

// outputPipeSize is the capacity asked for the output pipe: fewer wake-ups
// per megabyte than the default 64 KiB.
const outputPipeSize = 1 << 20

// start runs spec: under the re-executed init in new namespaces when the
// host allows, else directly as a process group.
func (r *runner) start(spec startSpec) (*process, error) {
	pr := &process{done: make(chan struct{})}
	var childIn, childOut *os.File
	if spec.tty {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("open pty: %w", err)
		}
		defer slave.Close()
		w, h := spec.width, spec.height
		if w == 0 || h == 0 {
			w, h = 80, 24
		}
		if err := pty.Setsize(master, &pty.Winsize{Cols: w, Rows: h}); err != nil {
			master.Close()
			return nil, fmt.Errorf("size pty: %w", err)
		}
		if r.uid >= 0 {
			// Programs that reopen their terminal (ssh, sudo) need to own it.
			_ = os.Chown(slave.Name(), r.uid, r.gid)
		}
		pr.in, pr.out, pr.pty = master, master, master
		childIn, childOut = slave, slave
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, fmt.Errorf("output pipe: %w", err)
		}
		setPipeSize(outR, outputPipeSize)
		defer inR.Close()
		defer outW.Close()
		pr.in, pr.out = inW, outR
		childIn, childOut = inR, outW
	}
	if r.isolation == isolationNone {
		if err := r.startPlain(pr, spec, childIn, childOut); err != nil {
			pr.closeAll()
			return nil, err
		}
	} else if err := r.startInit(pr, spec, childIn, childOut); err != nil {
		pr.closeAll()
		return nil, err
	}
	go pr.wait()
	return pr, nil
}

// startPlain runs the shell directly, as the leader of its own session and
// process group, killed as a group.
func (r *runner) startPlain(pr *process, spec startSpec, in, out *os.File) error {
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", spec.command}, Env: spec.env, Dir: spec.dir + "/tmp",
		Stdin: in, Stdout: out, Stderr: out}
	if spec.lock != nil {
		// Only the shell dies with the platform: what it left running in
		// the background keeps the dir in use, and so locked.
		cmd.ExtraFiles = []*os.File{spec.lock}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: spec.tty, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start one-off: %w", err)
	}
	pr.cmd, pr.group = cmd, true
	return nil
}

// startInit hands the one-off to a spare init (or a fresh one when the
// spare turns out dead).
func (r *runner) startInit(pr *process, spec startSpec, in, out *os.File) error {
	is := initSpec{Command: spec.command, Env: spec.env, Dir: filepath.Base(spec.dir), TTY: spec.tty, Home: r.home(spec.dir + "/tmp")}
	if r.cred != nil {
		is.UID, is.GID, is.SetUser = r.cred.Uid, r.cred.Gid, true
	}
	if spec.lock == nil {
		return errors.New("start one-off: its dir is not locked")
	}
	fds := [4]*os.File{in, out, out, spec.lock}
	for attempt := 0; ; attempt++ {
		init, err := r.pool.take()
		if err != nil {
			return err
		}
		err = init.send(is, fds)
		if err == nil {
			pr.cmd = init.cmd
			return nil
		}
		init.discard()
		if attempt == 1 {
			return err
		}
		r.log.Warn("one-off init unusable, starting another", "err", err)
	}
}

func (pr *process) wait() {
	if pr.group {
		// Kill the rest of the group while the shell's zombie still holds
		// its pid (no reuse): background jobs would keep the output open.
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PID, pr.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	}
	err := pr.cmd.Wait()
	pr.code = exitCode(pr.cmd.ProcessState, err)
	close(pr.done)
}

// kill ends the whole tree: killing the init of a PID namespace kills every
// process in it; without namespaces the process group goes.
func (pr *process) kill() {
	select {
	case <-pr.done:
		return
	default:
	}
	if pr.group {
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = pr.cmd.Process.Kill()
}

func (pr *process) closeAll() {
	if pr.in != nil {
		pr.in.Close()
	}
	if pr.out != nil {
		pr.out.Close()
	}
}

func (pr *process) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// exitCode is the code /wait reports: the process's own, or 128+N when a
// signal N killed it.
func exitCode(st *os.ProcessState, err error) int {
	if st == nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			st = ee.ProcessState
		}
	}
	if st == nil {
		return 255
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

func setPipeSize(f *os.File, size int) {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
		})
	}
}
