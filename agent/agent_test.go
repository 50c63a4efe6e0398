package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"sshbridge/agent"
)

// dial starts Serve on one end of a loopback TCP connection and returns
// an SSH client on the other, which pins the agent's host key.
func dial(t *testing.T) *ssh.Client {
	t.Helper()
	return dialWith(t, context.Background(), agent.Config{})
}

// dialWith is dial with cfg (its HostKey is filled in) under ctx.
func dialWith(t *testing.T, parent context.Context, cfg agent.Config) *ssh.Client {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(parent)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		cfg.HostKey = signer
		done <- agent.Serve(ctx, c, cfg)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(c, "agent", &ssh.ClientConfig{
		User:            "agent",
		HostKeyCallback: ssh.FixedHostKey(signer.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := ssh.NewClient(conn, chans, reqs)
	t.Cleanup(func() {
		client.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return client
}

func session(t *testing.T, c *ssh.Client) *ssh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExecSeparatesStdoutAndStderrAndExitCode(t *testing.T) {
	s := session(t, dial(t))
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err := s.Run("echo out; echo err >&2; exit 3")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 || ee.Signal() != "" {
		t.Fatalf("Run = %v, want exit status 3", err)
	}
	if out.String() != "out\n" || errb.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q, want %q and %q", out.String(), errb.String(), "out\n", "err\n")
	}
}

func TestExecStdinAndZeroExit(t *testing.T) {
	s := session(t, dial(t))
	s.Stdin = strings.NewReader("abc")
	out, err := s.Output("tr a-z A-Z")
	if err != nil || string(out) != "ABC" {
		t.Fatalf("Output = %q, %v; want %q, nil", out, err, "ABC")
	}
}

func TestCommandKilledBySignalGivesExitSignal(t *testing.T) {
	s := session(t, dial(t))
	err := s.Run("kill -TERM $$")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("Run = %v, want exit-signal TERM", err)
	}
}

func TestSignalRequestReachesProcessGroup(t *testing.T) {
	s := session(t, dial(t))
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A child shell of the command says when the signal reaches it; it
	// holds stdout, so the session ends only once it has.
	child := `trap 'echo child got TERM; exit 0' TERM; echo started; while :; do sleep 0.01; done`
	if err := s.Start("sh -c \"" + child + "\"; echo parent survived"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(stdout, line); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rest []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rest, _ := io.ReadAll(stdout)
		done <- result{rest, s.Wait()}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the command's child was still running 10 s after the signal")
	}
	var ee *ssh.ExitError
	if !errors.As(r.err, &ee) || ee.Signal() != "TERM" || string(r.rest) != "child got TERM\n" {
		t.Fatalf("Wait = %v, output after the signal %q; want exit-signal TERM and %q", r.err, r.rest, "child got TERM\n")
	}
}

func TestEnv(t *testing.T) {
	s := session(t, dial(t))
	if err := s.Setenv("AGENT_TEST_VAR", "hello world"); err != nil {
		t.Fatal(err)
	}
	out, err := s.Output(`printf %s "$AGENT_TEST_VAR"`)
	if err != nil || string(out) != "hello world" {
		t.Fatalf("Output = %q, %v; want %q", out, err, "hello world")
	}
}

func TestPtySizeAndTerm(t *testing.T) {
	s := session(t, dial(t))
	if err := s.RequestPty("xterm-256color", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Output(`stty size; echo "$TERM"; test -t 0 && echo tty`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "40 100\r\nxterm-256color\r\ntty\r\n"; string(out) != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}

func TestPtyWindowChange(t *testing.T) {
	s := session(t, dial(t))
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.Stdout = &out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	// The agent answers requests in order: once this one is answered,
	// the window change before it has been applied.
	if _, err := s.SendRequest("barrier@agent-test", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "stty size; exit 7\n"); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("Wait = %v, want exit status 7 (output %q)", err, out.String())
	}
	if !strings.Contains(out.String(), "50 120\r\n") {
		t.Fatalf("output %q, want the new size 50 120", out.String())
	}
}

func TestDirectTCPIP(t *testing.T) {
	c := dial(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()
	conn, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "through the agent")
}

func TestDirectTCPIPRefusedWhenNothingListens(t *testing.T) {
	c := dial(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = c.Dial("tcp", addr)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.ConnectionFailed {
		t.Fatalf("Dial = %v, want connect failed", err)
	}
}

func TestSFTPPutAndGet(t *testing.T) {
	c := dial(t)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	dir := t.TempDir()

	put := filepath.Join(dir, "put.bin")
	data := bytes.Repeat([]byte("0123456789abcdef"), 70000)
	f, err := sc.Create(put)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(put); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("put: file has %d bytes, %v; want the %d sent", len(got), err, len(data))
	}

	get := filepath.Join(dir, "get.txt")
	if err := os.WriteFile(get, []byte("from the container\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := sc.Open(get)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != "from the container\n" {
		t.Fatalf("get = %q, %v", got, err)
	}
}

func TestPtyCtrlCInterruptsForegroundCommand(t *testing.T) {
	s := session(t, dial(t))
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo ready; exec sleep 30"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("ready\r\n"))
	if _, err := io.ReadFull(stdout, line); err != nil {
		t.Fatal(err)
	}
	// The pty is the command's controlling terminal: ^C becomes SIGINT.
	if _, err := stdin.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	err = s.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "INT" {
		t.Fatalf("Wait = %v, want exit-signal INT", err)
	}
}

func TestConfigEnvAndShell(t *testing.T) {
	c := dialWith(t, context.Background(), agent.Config{Shell: "/bin/bash", Env: []string{"ONLY=this"}})
	s := session(t, c)
	out, err := s.Output(`printf '%s|%s|%s' "$ONLY" "${HOME-unset}" "$BASH_VERSION"`)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(out), "|")
	if len(parts) != 3 || parts[0] != "this" || parts[1] != "unset" || parts[2] == "" {
		t.Fatalf("output %q, want ONLY=this, HOME unset (Config.Env replaces the environment) and bash running", out)
	}
}

func TestServeEndsWhenContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := dialWith(t, ctx, agent.Config{})
	cancel()
	// The agent closes the connection: the client sees it end.
	ended := make(chan struct{})
	go func() { c.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was still open 10 s after the agent's context was done")
	}
	if _, err := c.NewSession(); err == nil {
		t.Fatal("NewSession succeeded after the agent's context was done")
	}
}

func TestServeWithoutHostKeyFails(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	if err := agent.Serve(context.Background(), a, agent.Config{}); err == nil {
		t.Fatal("Serve without a host key returned nil")
	}
}

func TestClosingTheChannelHangsUpTheCommand(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "hup")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := session(t, dial(t))
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := `trap 'echo hup > ` + fifo + `; exit 0' HUP; echo started; while :; do sleep 0.01; done`
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(stdout, line); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Opening the FIFO returns once the command's trap opens it to write.
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	select {
	case g := <-got:
		if g != "hup\n" {
			t.Fatalf("the command wrote %q, want %q", g, "hup\n")
		}
	case <-time.After(10 * time.Second):
		// Unblock the reader; the command is left to the test's end.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("no SIGHUP reached the command 10 s after its channel was closed")
	}
}

func TestDirectStreamlocal(t *testing.T) {
	c := dial(t)
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()
	conn, err := c.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "through a unix socket")
}

func TestTCPIPForward(t *testing.T) {
	c := dial(t)
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	// Dialling the agent's listener reaches the client's echo.
	addr := ln.Addr().String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("back to the client")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
	// Closing the client's listener cancels the forward: the agent's
	// listener is gone once the cancel is answered.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("dial %s succeeded after cancel-tcpip-forward", addr)
	}
}

func TestExecPassesFiveMiBUnchanged(t *testing.T) {
	s := session(t, dial(t))
	data := make([]byte, 5<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	s.Stdin = bytes.NewReader(data)
	out, err := s.Output("cat")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("cat returned %d bytes, not the %d sent unchanged", len(out), len(data))
	}
}

// echoRoundTrip sends msg on a forwarded connection to an echo server,
// half-closes it (the server sees EOF, ends, and the channel ends) and
// checks that msg comes back whole.
func echoRoundTrip(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}
