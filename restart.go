package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"sshbridge/bridge"
	"sshbridge/sftp"
	"sshbridge/staging"
	"sshbridge/uploads"
)

// drainHooks are what the bridge runs, in the order added, the moment it
// begins to drain: at once on SIGTERM or SIGINT, and on SIGHUP once the
// new process is ready (a handover that fails drains nothing). Each runs
// before the listener closes and before any session is told; a hook must
// not block (readiness turning to 503 is the intended use).
type drainHooks struct {
	mu    sync.Mutex
	hooks []func()
	ran   bool
}

// add registers f to run when the drain begins.
func (d *drainHooks) add(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hooks = append(d.hooks, f)
}

// run runs the hooks once; later calls do nothing.
func (d *drainHooks) run() {
	d.mu.Lock()
	hooks, ran := d.hooks, d.ran
	d.ran = true
	d.mu.Unlock()
	if ran {
		return
	}
	for _, f := range hooks {
		f()
	}
}

// Environment of a process started by a handover, besides systemd's
// LISTEN_FDS (the listening sockets, from fd 3 on).
const (
	// handoverReadyEnv names the fd (the one after the listeners') the
	// new process writes one line to, and closes, once it serves; its end of file before that line
	// means it failed.
	handoverReadyEnv = "BRIDGE_HANDOVER_READY_FD"
	// listenFDsStart is the first fd of socket activation (systemd's
	// SD_LISTEN_FDS_START).
	listenFDsStart = 3
	// handoverReadyTimeout bounds the wait for the new process to be ready.
	handoverReadyTimeout = 2 * time.Minute
)

// inheritedListeners returns the listening sockets passed to the process
// by systemd's socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES:
// sd_listen_fds(3)), or by the bridge it took over from, which passes them
// the same way: by name, the one named in LISTEN_FDNAMES after another
// listener of the bridge (such as "metrics") under that name, and the
// first other one, the SSH listener, under "ssh". It returns nil when
// nothing was passed. The variables are removed from the environment, so
// that no process started later takes them as its own.
func inheritedListeners() (map[string]net.Listener, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		return nil, nil
	}
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil // LISTEN_PID names another process: not ours
	}
	out := map[string]net.Listener{}
	var errs []error
	for i, f := range files {
		name := f.Name()
		if !slices.Contains(ownListenerNames, name) {
			name = "ssh"
		}
		ln, err := net.FileListener(f)
		f.Close()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("LISTEN_FDS: fd %d is not a listening socket: %w", listenFDsStart+i, err))
		case out[name] != nil:
			ln.Close()
			errs = append(errs, fmt.Errorf("LISTEN_FDS: fd %d: a second socket for %s; the bridge serves one (use ListenStream= once in the .socket unit)", listenFDsStart+i, name))
		default:
			out[name] = ln
		}
	}
	if err := errors.Join(errs...); err != nil {
		for _, ln := range out {
			ln.Close()
		}
		return nil, err
	}
	return out, nil
}

// ownListenerNames are the names, besides "ssh", under which the bridge
// passes listeners on at a handover (and systemd's FileDescriptorName=
// may give them).
var ownListenerNames = []string{"ssh", "metrics", "debug"}

// namedListener is a listener passed on at a handover under its name.
type namedListener struct {
	name string
	ln   net.Listener
}

// handoverReady is, in a process started by a handover, the pipe that
// tells the old process this one serves; nil otherwise. It is called
// before inheritedListeners: the process that started this one could not
// know its PID, so LISTEN_PID is set here.
func handoverReady() *os.File {
	v := os.Getenv(handoverReadyEnv)
	if v == "" {
		return nil
	}
	os.Unsetenv(handoverReadyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < listenFDsStart {
		return nil
	}
	if os.Getenv("LISTEN_FDS") != "" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	// Not passed on to the one-offs' processes, which would hold it open.
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "handover-ready")
}

// signalReady tells whoever waits that the bridge serves: the old process
// of a handover (its pipe), and systemd (READY=1, for Type=notify units).
func signalReady(pipe *os.File, log *slog.Logger) {
	if pipe != nil {
		if _, err := fmt.Fprintf(pipe, "ready %d\n", os.Getpid()); err != nil {
			log.Warn("handover: could not tell the old process", "err", err)
		}
		pipe.Close()
	}
	daemon.SdNotify(false, daemon.SdNotifyReady)
}

// installedBinary is the path the bridge was started from, absolute and
// with its symbolic links left as they are, so that a handover starts
// whatever binary is installed there then (a package upgrade replaces the
// file or the link). It falls back on os.Executable.
func installedBinary() string {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		}
	}
	if strings.Contains(arg0, "/") {
		if abs, err := filepath.Abs(arg0); err == nil {
			return abs
		}
	}
	exe, _ := os.Executable()
	return exe
}

// startSuccessor starts a new process of the installed binary with this
// process's arguments and environment, handing it the listeners as fds 3
// on (LISTEN_FDS, with their names in LISTEN_FDNAMES) and a pipe as the
// next fd, and waits until it says it serves. Its stdout and
// stderr are this process's. On any failure the new process is killed and
// the error says why; so it is when ctx ends first (SIGTERM meanwhile).
func startSuccessor(ctx context.Context, binary string, listeners []namedListener, log *slog.Logger) (int, error) {
	var files []*os.File
	var names []string
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, l := range listeners {
		fl, ok := l.ln.(interface{ File() (*os.File, error) })
		if !ok {
			return 0, fmt.Errorf("the %s listener (%T) cannot be passed on", l.name, l.ln)
		}
		f, err := fl.File()
		if err != nil {
			return 0, fmt.Errorf("pass the %s listener: %w", l.name, err)
		}
		files, names = append(files, f), append(names, l.name)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", handoverReadyEnv:
			continue
		}
		env = append(env, kv)
	}
	env = append(env, fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"),
		fmt.Sprintf("%s=%d", handoverReadyEnv, listenFDsStart+len(files)))
	cmd := exec.Command(binary, os.Args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.ExtraFiles = append(slices.Clip(files), w)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", binary, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(io.LimitReader(r, 128)).ReadString('\n')
		line <- l
	}()
	fail := func(why error) (int, error) {
		cmd.Process.Kill()
		return 0, why
	}
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "ready ") {
			// The pipe closed without the line: the process exited, or
			// closed it; its own log line says why.
			select {
			case err := <-exited:
				return 0, fmt.Errorf("the new process (pid %d) exited before it was ready: %v", pid, err)
			case <-time.After(5 * time.Second):
				return fail(fmt.Errorf("the new process (pid %d) closed its readiness pipe without being ready", pid))
			}
		}
	case <-time.After(handoverReadyTimeout):
		return fail(fmt.Errorf("the new process (pid %d) was not ready within %s", pid, handoverReadyTimeout))
	case <-ctx.Done():
		return fail(fmt.Errorf("stopping: the new process (pid %d) is killed", pid))
	}
	// For a Type=notify unit: the new process is the service's main one
	// now (it needs NotifyAccess=all to say READY=1 itself).
	daemon.SdNotify(false, fmt.Sprintf("MAINPID=%d", pid))
	log.Info("handover: the new process serves", "new_pid", pid)
	return pid, nil
}

// newStagingAfterHandover opens the staging area for a process started
// by a handover. The old process holds it until its own sessions are done
// with it; meanwhile the area is pending (its uses wait), and the open is
// retried until the directory is free, or ctx ends.
func newStagingAfterHandover(ctx context.Context, cfg *bridgeFlags, log *slog.Logger) *staging.Area {
	log = log.With("component", "uploads")
	area, give := staging.Pending(sftp.NewHandles(cfg.sftpMaxOpen, cfg.sftpMaxTotal), log)
	go func() {
		logged := false
		for {
			store, err := openStore(cfg, log)
			if err == nil || !errors.Is(err, uploads.ErrInUse) {
				if err == nil && logged {
					log.Info("handover: the staging area is this process's now")
				}
				give(store, err)
				return
			}
			if !logged {
				log.Info("handover: waiting for the old process to release the staging area")
				logged = true
			}
			select {
			case <-ctx.Done():
				give(nil, errors.Join(context.Cause(ctx), err))
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return area
}

// drainAfterHandover is the old process's part once the new one serves:
// it stops accepting, passes the staging area on as soon as its own
// sessions are done with it, and lets its sessions run to their end, for
// at most --drain-timeout; SIGTERM or SIGINT meanwhile bounds them by
// --shutdown-grace from then on. Sessions still open at the bound end as
// at the end of the shutdown grace.
func drainAfterHandover(ctx context.Context, cfg *bridgeFlags, srv *bridge.Server, area *staging.Area, log *slog.Logger) error {
	log.Info("handover: draining: open sessions run on", "drain_timeout", cfg.drainTimeout, "pid", os.Getpid())
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			log.Info("shutting down: the drain ends at the grace", "grace", cfg.shutdownGrace)
			srv.EndDrain(time.Now().Add(cfg.shutdownGrace))
			select {
			case <-time.After(cfg.shutdownGrace):
				cancel()
			case <-drainCtx.Done():
			}
		case <-drainCtx.Done():
		}
	}()
	handedOver := make(chan struct{})
	go func() {
		defer close(handedOver)
		if err := area.Handover(drainCtx); err != nil {
			log.Warn("handover: closing the staging area", "err", err)
		}
		log.Info("handover: the staging area is released to the new process")
	}()
	srv.Handover(drainCtx)
	cancel()
	<-handedOver
	log.Info("bridge stopped: handed over to the new process")
	return nil
}
