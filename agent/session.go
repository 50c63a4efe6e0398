package agent

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// session is one session channel (RFC 4254 section 6): the requests that
// come before its command, then the command.
type session struct {
	ch  ssh.Channel
	cfg *Config
	ctx context.Context

	env     []string
	term    string
	ptmx    *os.File // the pty's controlling side, nil without "pty-req"
	tty     *os.File // the pty's terminal side until the command starts
	started bool
	// run is the rest of the work of a shell, exec or subsystem request,
	// started once its reply is sent: a command that ends at once must
	// not close the channel before the client has its "yes" (RFC 4254
	// section 6.5, then 6.10).
	run func()

	mu     sync.Mutex
	cmd    *exec.Cmd // set once the command runs
	exited bool      // set once the command has been waited for
}

// Payloads of the session requests, RFC 4254 sections 6.2 to 6.9.
type (
	ptyReq struct {
		Term           string
		Cols, Rows     uint32
		WidthPx, HeigP uint32
		Modes          string
	}
	windowChange struct {
		Cols, Rows     uint32
		WidthPx, HeigP uint32
	}
	envReq     struct{ Name, Value string }
	execReq    struct{ Command string }
	signalReq  struct{ Signal string }
	exitStatus struct{ Status uint32 }
	exitSignal struct {
		Signal     string
		CoreDumped bool
		Message    string
		Lang       string
	}
)

func serveSession(ctx context.Context, nc ssh.NewChannel, cfg *Config) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s := &session{ch: ch, cfg: cfg, ctx: ctx}
	defer s.closePty()
	for req := range reqs {
		ok := s.handle(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if run := s.run; run != nil {
			s.run = nil
			go run()
		}
	}
	s.hangup()
}

// hangup ends a command still running when its channel is closed, as a
// terminal hangup does: SIGHUP to its process group. Without it a command
// writing to a closed channel would block for ever.
func (s *session) hangup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.exited {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGHUP)
}

// handle answers one request and says whether it succeeded. Requests are
// handled in the order they arrive, so a request with want-reply is a
// barrier for the ones before it.
func (s *session) handle(req *ssh.Request) bool {
	switch req.Type {
	case "env":
		var p envReq
		if s.started || ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		s.env = append(s.env, p.Name+"="+p.Value)
		return true
	case "pty-req":
		var p ptyReq
		if s.started || s.ptmx != nil || ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		ptmx, tty, err := pty.Open()
		if err != nil {
			s.cfg.Logger.Warn("pty", "err", err)
			return false
		}
		s.ptmx, s.tty, s.term = ptmx, tty, p.Term
		setSize(ptmx, p.Cols, p.Rows, p.WidthPx, p.HeigP)
		return true
	case "window-change":
		var p windowChange
		if s.ptmx == nil || ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		setSize(s.ptmx, p.Cols, p.Rows, p.WidthPx, p.HeigP)
		return true
	case "shell":
		return s.start(exec.Command(s.cfg.Shell))
	case "exec":
		var p execReq
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		return s.start(exec.Command(s.cfg.Shell, "-c", p.Command))
	case "subsystem":
		var p execReq
		if s.started || ssh.Unmarshal(req.Payload, &p) != nil || p.Command != "sftp" {
			return false
		}
		s.started = true
		s.run = s.serveSFTP
		return true
	case "signal":
		var p signalReq
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		return s.signal(p.Signal)
	}
	return false
}

func setSize(ptmx *os.File, cols, rows, wpx, hpx uint32) {
	pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows), X: uint16(wpx), Y: uint16(hpx)})
}

// start runs cmd as the session's command: on the pty as its controlling
// terminal after "pty-req", otherwise with stdin, stdout and stderr on
// pipes, stderr going out as extended data. The command leads a process
// group of its own, which "signal" reaches.
func (s *session) start(cmd *exec.Cmd) bool {
	if s.started {
		return false
	}
	env := s.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(append([]string(nil), env...), s.env...)
	if s.ptmx != nil && s.term != "" {
		cmd.Env = append(cmd.Env, "TERM="+s.term)
	}
	if s.tty != nil {
		// As sshd: the terminal's name, for tools that look for it.
		cmd.Env = append(cmd.Env, "SSH_TTY="+s.tty.Name())
	}
	cmd.Dir = homeDir()

	var (
		stdin  io.WriteCloser
		copies sync.WaitGroup
	)
	if s.ptmx != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = s.tty, s.tty, s.tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			s.cfg.Logger.Warn("start", "err", err)
			return false
		}
		s.tty.Close()
		s.tty = nil
		stdin = s.ptmx
		copies.Add(1)
		go func() {
			defer copies.Done()
			// Reading the pty ends with EIO once no process holds
			// its terminal side.
			io.Copy(s.ch, s.ptmx)
		}()
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// Stdout and Stderr are writers, so Wait returns only once
		// both pipes are drained.
		cmd.Stdout, cmd.Stderr = s.ch, s.ch.Stderr()
		w, err := cmd.StdinPipe()
		if err != nil {
			return false
		}
		if err := cmd.Start(); err != nil {
			s.cfg.Logger.Warn("start", "err", err)
			return false
		}
		stdin = w
	}
	s.started = true
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()

	go func() {
		io.Copy(stdin, s.ch)
		if s.ptmx == nil {
			stdin.Close()
		}
	}()
	s.run = func() {
		cmd.Wait()
		s.mu.Lock()
		s.exited = true
		s.mu.Unlock()
		copies.Wait()
		if s.ptmx != nil {
			s.ptmx.Close()
		}
		s.exit(cmd.ProcessState)
	}
	return true
}

// exit reports how the command ended, RFC 4254 section 6.10: exit-signal
// when a signal killed it, exit-status otherwise; then EOF, then close.
func (s *session) exit(ps *os.ProcessState) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		s.ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignal{
			Signal:     signalName(ws.Signal()),
			CoreDumped: ws.CoreDump(),
		}))
	} else {
		code := ps.ExitCode()
		if code < 0 {
			code = 255
		}
		s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{uint32(code)}))
	}
	s.ch.CloseWrite()
	s.ch.Close()
}

func (s *session) serveSFTP() {
	srv, err := sftp.NewServer(s.ch, sftp.WithServerWorkingDirectory(homeDir()))
	status := uint32(0)
	if err == nil {
		if err := srv.Serve(); err != nil && err != io.EOF {
			s.cfg.Logger.Warn("sftp", "err", err)
			status = 1
		}
	} else {
		status = 1
	}
	s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{status}))
	s.ch.CloseWrite()
	s.ch.Close()
}

// signal delivers the named signal (RFC 4254 section 6.10's names, without
// "SIG") to the command's process group. It fails before the command runs
// and for a name it does not know.
func (s *session) signal(name string) bool {
	sig, ok := signals[name]
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if !ok || cmd == nil {
		return false
	}
	return syscall.Kill(-cmd.Process.Pid, sig) == nil
}

// closePty closes a pty no command took; a command's pty is closed once
// its output is relayed.
func (s *session) closePty() {
	if s.started || s.ptmx == nil {
		return
	}
	s.tty.Close()
	s.ptmx.Close()
}

// homeDir is where commands and SFTP start: $HOME, or / without it.
func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		if fi, err := os.Stat(h); err == nil && fi.IsDir() {
			return h
		}
	}
	return "/"
}

// signals maps RFC 4254 section 6.10's signal names to signals.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// signalName is the RFC 4254 name of sig, or its "SIGn@agent" number
// form for a signal the RFC does not name.
func signalName(sig syscall.Signal) string {
	for name, v := range signals {
		if v == sig {
			return name
		}
	}
	return "SIG" + strconv.Itoa(int(sig)) + "@agent"
}
