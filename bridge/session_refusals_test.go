package bridge

import (
	"io"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// A key runs at most MaxOneOffsPerKey one-offs, across its connections;
// the next session ends with ExitKeyLimit before the platform is asked,
// and the slot comes back when a one-off ends.
func TestPerKeyCap(t *testing.T) {
	p := &fakePlatform{}
	b := startBridge(t, Config{MaxOneOffsPerKey: 1}, p, nil, "")
	s, in, _ := startExec(t, b.dial(t, "demo"), "cat")
	<-startedOneOff(t, p).attached
	want := result{stderr: "This key already runs 1 one-off container, the most the bridge allows per key; try again when one has ended.\n", code: ExitKeyLimit}
	if got := b.run(t, "demo", "true", "", nil); got != want {
		t.Errorf("past the cap: %+v, want %+v", got, want)
	}
	if n := len(p.requests()); n != 1 {
		t.Errorf("%d one-offs asked for, want 1", n)
	}
	in.Close()
	if code := exitCode(t, s.Wait()); code != 0 {
		t.Errorf("first session: exit code %d", code)
	}
	if got := b.run(t, "demo", "cat", "x", nil); got != (result{stdout: "x"}) {
		t.Errorf("after the first ended: %+v", got)
	}
}

// Forwarding of every kind is refused; a terminal session is told about
// agent and X11 forwarding, once each, before its one-off starts.
func TestForwardingRefused(t *testing.T) {
	p := &fakePlatform{}
	b := startBridge(t, Config{}, p, nil, "")
	c := b.dial(t, "demo")
	if _, err := c.Dial("tcp", "127.0.0.1:9"); err == nil {
		t.Error("direct-tcpip accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("tcpip-forward accepted")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
			t.Error("agent forwarding accepted")
		}
		if ok, _ := s.SendRequest("x11-req", true, gossh.Marshal(&x11RequestMsg{AuthProtocol: "MIT-MAGIC-COOKIE-1", AuthCookie: "secret", Screen: 7})); ok {
			t.Error("X11 forwarding accepted")
		}
	}
	if err := s.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	errOut, _ := s.StderrPipe()
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	want := "Agent forwarding is not supported by this bridge.\r\nX11 forwarding is not supported by this bridge.\r\nStarting one-off"
	if got := readUntil(t, errOut, "Starting one-off"); got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	in.Close()
	if code := exitCode(t, s.Wait()); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if logs := b.logs.String(); strings.Contains(logs, "secret") || !strings.Contains(logs, "screen=7") {
		t.Errorf("the X11 refusal's log line must show the screen, never the cookie:\n%s", logs)
	}
}

// Requests refused by the session: a second pty, a pty for a key with
// no-pty, env and exec once the work runs, and sessions past MaxSessions.
func TestSessionRequestsRefused(t *testing.T) {
	t.Run("no-pty", func(t *testing.T) {
		b := startBridge(t, Config{}, &fakePlatform{}, nil, "no-pty")
		s, err := b.dial(t, "demo").NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
			t.Error("pty accepted for a no-pty key")
		}
	})
	t.Run("after start", func(t *testing.T) {
		b := startBridge(t, Config{}, &fakePlatform{}, nil, "")
		ch, _, err := b.dial(t, "demo").OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct {
			typ     string
			payload []byte
			want    bool
		}{
			{"pty-req", gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24}), true},
			{"pty-req", gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24}), false},
			{"pty-req", []byte{1}, false},
			{"window-change", []byte{1}, false},
			{"env", []byte{1}, false},
			{"signal", []byte{1}, false},
			{"exec", []byte{1}, false},
			{"unknown@example.com", nil, false},
			{"exec", gossh.Marshal(&stringMsg{"cat"}), true},
			{"exec", gossh.Marshal(&stringMsg{"cat"}), false},
			{"shell", nil, false},
			{"env", gossh.Marshal(&envMsg{"LANG", "C"}), false},
			{"pty-req", gossh.Marshal(&ptyRequestMsg{Term: "xterm", Columns: 80, Rows: 24}), false},
		} {
			if ok, err := ch.SendRequest(r.typ, true, r.payload); ok != r.want || err != nil {
				t.Errorf("%s %x: %v %v, want %v", r.typ, r.payload, ok, err, r.want)
			}
		}
		ch.CloseWrite()
		io.ReadAll(ch)
	})
	t.Run("max sessions", func(t *testing.T) {
		b := startBridge(t, Config{MaxSessions: 1}, &fakePlatform{}, nil, "")
		c := b.dial(t, "demo")
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := c.NewSession(); err == nil {
			t.Error("a second session accepted past MaxSessions 1")
		}
	})
}
