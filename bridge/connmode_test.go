package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/agent"
	"sshbridge/oneoff"
)

// agentProgram plays a connection-mode one-off: the real agent serving
// SSH's connection protocol on the stream, with the host key the bridge
// put in the run request, running real commands on this machine.
func agentProgram(t *testing.T) func(req oneoff.RunRequest) program {
	return func(req oneoff.RunRequest) program {
		return func(in io.Reader, out io.Writer) int {
			signer, err := gossh.ParsePrivateKey([]byte(req.Env[agentHostKeyEnv]))
			if err != nil {
				fmt.Fprintf(out, "bridge-agent: bad host key: %v\n", err)
				return 1
			}
			// Kernel pipes between the stream and the agent: buffers as a
			// real attach has, which SSH's key exchange (both sides write
			// first) needs.
			inR, inW, err := os.Pipe()
			if err != nil {
				return 1
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				return 1
			}
			go func() { io.Copy(inW, in); inW.Close() }()
			copied := make(chan struct{})
			go func() { io.Copy(out, outR); outR.Close(); close(copied) }()
			err = agent.Serve(context.Background(), pipeRWC{inR, outW}, agent.Config{HostKey: signer})
			<-copied
			if err != nil {
				return 1
			}
			return 0
		}
	}
}

type pipeRWC struct {
	io.Reader
	io.Writer
}

func (p pipeRWC) Close() error {
	if c, ok := p.Writer.(io.Closer); ok {
		c.Close()
	}
	if c, ok := p.Reader.(io.Closer); ok {
		c.Close()
	}
	return nil
}

// startConnBridge serves a bridge whose one-offs run the agent.
func startConnBridge(t *testing.T, cfg Config, opts string) *testBridge {
	t.Helper()
	p := &fakePlatform{run: agentProgram(t)}
	return startBridgeWith(t, cfg, p, &fakeUploads{}, opts, func(d *Deps) {
		d.Agent = &Agent{Command: "exec bridge-agent"}
	})
}

func output(t *testing.T, c *gossh.Client, command string) (stdout, stderr string, code int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var o, e strings.Builder
	s.Stdout, s.Stderr = &o, &e
	code = exitCode(t, s.Run(command))
	return o.String(), e.String(), code
}

func TestConnectionModeSessionsShareOneOneOff(t *testing.T) {
	b := startConnBridge(t, Config{}, "")
	c := b.dial(t, "demo-app+conn")
	dir := t.TempDir()
	if _, e, code := output(t, c, "touch "+dir+"/x"); code != 0 {
		t.Fatalf("touch: %d %s", code, e)
	}
	o, e, code := output(t, c, "ls "+dir+"; echo err >&2; exit 7")
	if code != 7 || o != "x\n" || e != "err\n" {
		t.Fatalf("second session: code %d, stdout %q, stderr %q; want 7, \"x\\n\", \"err\\n\" (separate stderr)", code, o, e)
	}
	if n := len(b.platform.requests()); n != 1 {
		t.Fatalf("%d one-offs started for one connection, want 1", n)
	}
	req := b.platform.requests()[0]
	if req.App != "demo-app" || req.TTY {
		t.Fatalf("run request: app %q tty %v; want demo-app, pipe mode", req.App, req.TTY)
	}
}

func TestConnectionModeExitSignal(t *testing.T) {
	b := startConnBridge(t, Config{}, "")
	c := b.dial(t, "demo-app+conn")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run("kill -TERM $$")
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("kill -TERM $$: %v; want an exit-signal TERM\n%s", err, b.logs.String())
	}
}

func TestConnectionModeChosenBy(t *testing.T) {
	cases := []struct {
		name, user, opts string
		apps             []string
		command          string
		wantConn         bool
	}{
		{"default is per-session", "demo-app", "", nil, "true", false},
		{"user name", "demo-app+conn", "", nil, "true", true},
		{"key option", "demo-app", `session-mode="connection"`, nil, "true", true},
		{"key option session beats app", "demo-app", `session-mode="session"`, []string{"demo-*"}, "true", false},
		{"app pattern", "demo-app", "", []string{"other", "demo-*"}, "true", true},
		{"negated app pattern", "demo-app", "", []string{"*", "!demo-app"}, "true", false},
		{"scp first keeps staging", "demo-app", `session-mode="connection"`, nil, "scp -t .", false},
		{"scp first by name", "demo-app+conn", "", nil, "scp -t .", true},
		{"rsync upload first keeps per-session", "demo-app", `session-mode="connection"`, nil, "rsync --server -logDtpre.iLsfxCIvu . dest/", false},
		{"key option session forbids it by name", "demo-app+conn", `session-mode="session"`, nil, "true", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startConnBridge(t, Config{ConnectionModeApps: tc.apps}, tc.opts)
			c := b.dial(t, tc.user)
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			s.Stdin = strings.NewReader("")
			s.Run(tc.command)
			reqs := b.platform.requests()
			gotConn := len(reqs) == 1 && strings.Contains(reqs[0].Command, "bridge-agent")
			if gotConn != tc.wantConn {
				t.Fatalf("connection mode %v, want %v (run requests %+v)", gotConn, tc.wantConn, reqs)
			}
		})
	}
}

func TestConnectionModeDirectTCPIP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "hello from inside")
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	cases := []struct {
		name, opts, target, want string
	}{
		{"loopback", "", fmt.Sprintf("127.0.0.1:%d", port), "hello from inside"},
		{"localhost", "", fmt.Sprintf("localhost:%d", port), "hello from inside"},
		{"elsewhere refused", "", "192.0.2.1:80", "administratively prohibited"},
		{"restrict refuses loopback", "restrict", fmt.Sprintf("127.0.0.1:%d", port), "administratively prohibited"},
		{"no-port-forwarding", "no-port-forwarding", fmt.Sprintf("127.0.0.1:%d", port), "administratively prohibited"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startConnBridge(t, Config{}, tc.opts)
			c := b.dial(t, "demo-app+conn")
			conn, err := c.Dial("tcp", tc.target)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("dial %s: %v; want %q", tc.target, err, tc.want)
				}
				if !strings.Contains(b.logs.String(), "refused forwarding") {
					t.Fatalf("refusal not logged:\n%s", b.logs.String())
				}
				return
			}
			got, _ := io.ReadAll(conn)
			conn.Close()
			if string(got) != tc.want {
				t.Fatalf("through %s: %q, want %q", tc.target, got, tc.want)
			}
			if !strings.Contains(b.logs.String(), "forward opened") {
				t.Fatalf("forward not logged:\n%s", b.logs.String())
			}
		})
	}
}

func TestConnectionModeRemoteForward(t *testing.T) {
	b := startConnBridge(t, Config{}, "")
	c := b.dial(t, "demo-app+conn")
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprint(conn, "from the client")
		conn.Close()
	}()
	o, e, code := output(t, c, fmt.Sprintf("python3 -c 'import socket,sys; s=socket.create_connection((\"127.0.0.1\", %d)); sys.stdout.write(s.recv(100).decode())'", ln.Addr().(*net.TCPAddr).Port))
	if code != 0 || o != "from the client" {
		t.Fatalf("through the remote forward: code %d stdout %q stderr %q", code, o, e)
	}
}

func TestConnectionModeRemoteForwardRefusedElsewhere(t *testing.T) {
	b := startConnBridge(t, Config{}, `permitlisten="8999"`)
	c := b.dial(t, "demo-app+conn")
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Fatal("a port not in permitlisten was granted")
	}
}

func TestConnectionModeAgentCannotStart(t *testing.T) {
	p := &fakePlatform{run: func(oneoff.RunRequest) program {
		return func(in io.Reader, out io.Writer) int {
			fmt.Fprint(out, "bridge-agent: no agent for architecture riscv64\n")
			return 127
		}
	}}
	b := startBridgeWith(t, Config{}, p, nil, "", func(d *Deps) { d.Agent = &Agent{Command: "x"} })
	c := b.dial(t, "demo-app+conn")
	_, e, code := output(t, c, "true")
	if code != ExitAgent || !strings.Contains(e, "no agent for architecture riscv64") {
		t.Fatalf("code %d stderr %q; want %d and the launcher's line", code, e, ExitAgent)
	}
}

func TestConnectionModeOneOffDies(t *testing.T) {
	b := startConnBridge(t, Config{}, "")
	code, e := sessionWhenAgentDrops(t, b)
	if code != ExitAgent || !strings.Contains(e, "ended") {
		t.Fatalf("code %d stderr %q; want %d and a line", code, e, ExitAgent)
	}
}

// sessionWhenAgentDrops runs `sleep 30` in connection mode, drops the
// agent connection under it (as the one-off's end does) and returns the
// session's exit code and stderr.
func sessionWhenAgentDrops(t *testing.T, b *testBridge) (int, string) {
	t.Helper()
	c := b.dial(t, "demo-app+conn")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var e strings.Builder
	s.Stderr = &e
	if err := s.Start("sleep 30"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent", func() bool { return b.srv.agentOf(c) != nil })
	b.srv.agentOf(c).conn.Close()
	code := exitCode(t, s.Wait())
	return code, e.String()
}

func TestConnectionModeLinger(t *testing.T) {
	b := startConnBridge(t, Config{ConnectionLinger: time.Minute}, "")
	dir := t.TempDir()
	c := b.dial(t, "demo-app+conn")
	output(t, c, "touch "+dir+"/kept")
	c.Close()
	waitFor(t, "the one-off to linger", func() bool { return b.srv.lingering.lingers() == 1 })
	// The next connection takes the one-off back: no second start.
	c2 := b.dial(t, "demo-app+conn")
	if _, e, code := output(t, c2, "true"); code != 0 {
		t.Fatalf("second connection: %d %s", code, e)
	}
	if n := len(b.platform.requests()); n != 1 {
		t.Fatalf("%d one-offs for two connections within the linger, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept")); err != nil {
		t.Fatal(err)
	}
}

// agentOf returns the agent of the first connection that has one.
func (s *Server) agentOf(_ *gossh.Client) *agentConn {
	s.stop.mu.Lock()
	defer s.stop.mu.Unlock()
	for c := range s.stop.conns {
		c.mode.mu.Lock()
		a := c.mode.agent
		c.mode.mu.Unlock()
		if a != nil {
			return a
		}
	}
	return nil
}

// lingers counts the lingering one-offs.
func (p *lingerPool) lingers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.agents {
		n += len(l)
	}
	return n
}

// waitFor polls cond until it holds, failing after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectionModeAgentUploadRefused(t *testing.T) {
	agentFile := filepath.Join(t.TempDir(), "linux-amd64")
	if err := os.WriteFile(agentFile, []byte("agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &fakePlatform{oneOff: func() *fakeOneOff {
		return &fakeOneOff{prog: echo(0), uploadErr: &oneoff.APIError{Op: "upload", Kind: oneoff.ErrUploadRefused, Message: "too big"}}
	}}
	b := startBridgeWith(t, Config{}, p, nil, "", func(d *Deps) {
		d.Agent = &Agent{Command: "x", Files: map[string]string{".bridge-agent/linux-amd64": agentFile}}
	})
	c := b.dial(t, "demo-app+conn")
	_, e, code := output(t, c, "true")
	if code != ExitUploadRefused || !strings.Contains(e, "agent") {
		t.Fatalf("code %d stderr %q; want %d and a line about the agent's upload", code, e, ExitUploadRefused)
	}
}

func TestConnectionModeInactivity(t *testing.T) {
	p := &fakePlatform{run: agentProgram(t), oneOff: func() *fakeOneOff {
		return &fakeOneOff{waitErr: &oneoff.APIError{Kind: oneoff.ErrInactivity}}
	}}
	b := startBridgeWith(t, Config{}, p, nil, "", func(d *Deps) { d.Agent = &Agent{Command: "exec bridge-agent"} })
	// The platform's inactivity stop ends the attach, then /wait says 408.
	code, e := sessionWhenAgentDrops(t, b)
	if code != ExitInactivity || !strings.Contains(e, "inactivity") {
		t.Fatalf("code %d stderr %q; want %d and the inactivity line", code, e, ExitInactivity)
	}
}

// A key at its one-off cap gets the slot of its lingering one-off back:
// lingering must not lock its owner out.
func TestConnectionModeLingerFreesSlotAtCap(t *testing.T) {
	b := startConnBridge(t, Config{ConnectionLinger: time.Minute, MaxOneOffsPerKey: 1}, "")
	c := b.dial(t, "demo-app+conn")
	if _, e, code := output(t, c, "true"); code != 0 {
		t.Fatalf("first connection: %d %s", code, e)
	}
	c.Close()
	waitFor(t, "the one-off to linger", func() bool { return b.srv.lingering.lingers() == 1 })
	// Another app: it cannot take the lingering one-off back, and needs
	// the key's only slot.
	c2 := b.dial(t, "other-app+conn")
	if _, e, code := output(t, c2, "true"); code != 0 {
		t.Fatalf("a second app at the key's cap, its other one-off lingering: code %d, %s", code, e)
	}
	if n := b.srv.lingering.lingers(); n != 0 {
		t.Fatalf("%d one-offs still linger, want the one ended for the slot", n)
	}
}

// An idle connection's one-off sees keepalives on its stream, which is
// what keeps a platform's inactivity stop (PROTOCOL.md: 408) from ending it
// under an open connection.
func TestConnectionModeKeepalivesCrossTheStream(t *testing.T) {
	was := agentKeepaliveInterval
	agentKeepaliveInterval = 20 * time.Millisecond
	t.Cleanup(func() { agentKeepaliveInterval = was })
	o := &fakeOneOff{input: &bytes.Buffer{}}
	p := &fakePlatform{run: agentProgram(t), oneOff: func() *fakeOneOff { return o }}
	inputLen := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.input.Len()
	}
	b := startBridgeWith(t, Config{}, p, nil, "", func(d *Deps) { d.Agent = &Agent{Command: "exec bridge-agent"} })
	c := b.dial(t, "demo-app+conn")
	if _, e, code := output(t, c, "true"); code != 0 {
		t.Fatalf("session: %d %s", code, e)
	}
	idle := inputLen()
	waitFor(t, "keepalives on the idle one-off's stream", func() bool { return inputLen() > idle+100 })
}
