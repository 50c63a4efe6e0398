package bridge

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// The end of a session channel, RFC 4254 section 6.10: the output, then
// exit-status, then EOF, then close; nothing after exit-status but EOF
// and close. Pinned at the server's channel (one call, one message, in
// the order of the wire) and at a raw client channel: once its output
// ends, the exit-status request is already there.
func TestTeardownOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		start    error
		command  string
		want     []string
		wantCode uint32
		wantOut  string
	}{
		{"output and code", nil, "cat", []string{"data", "exit-status", "eof", "close"}, 3, "in"},
		{"failure line", &oneoff.APIError{Kind: oneoff.ErrQuota}, "cat", []string{"stderr", "exit-status", "eof", "close"}, ExitQuota, ""},
		{"blank command", nil, " ", []string{"exit-status", "eof", "close"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlatform{err: tc.start, oneOff: func() *fakeOneOff { return &fakeOneOff{prog: echo(3)} }}
			b := startBridge(t, Config{}, p, nil, "")
			f := recordChannels(b)
			ch, reqs, err := b.dial(t, "demo").OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := ch.SendRequest("exec", true, gossh.Marshal(&stringMsg{tc.command})); !ok || err != nil {
				t.Fatalf("exec: %v %v", ok, err)
			}
			io.WriteString(ch, "in")
			ch.CloseWrite()
			out, err := io.ReadAll(ch)
			if err != nil || string(out) != tc.wantOut {
				t.Errorf("output %q, %v; want %q", out, err, tc.wantOut)
			}
			select {
			case req := <-reqs:
				var msg exitStatusMsg
				if req.Type != "exit-status" || gossh.Unmarshal(req.Payload, &msg) != nil || msg.Status != tc.wantCode {
					t.Errorf("after the output: request %q %x, want exit-status %d", req.Type, req.Payload, tc.wantCode)
				}
			default:
				t.Fatal("the output ended before exit-status came")
			}
			for req := range reqs {
				t.Errorf("request %q after exit-status", req.Type)
			}
			if got := f.get(); !slices.Equal(got, tc.want) {
				t.Errorf("the server sent %q, want %q", got, tc.want)
			}
		})
	}
}

// A session the bridge's stop ends: a notice when the stop begins, at the
// end of the grace its last line, then ExitBridgeStopped in the teardown
// order; the one-off's end is awaited.
func TestShutdownNotices(t *testing.T) {
	p := &fakePlatform{}
	b := startBridge(t, Config{}, p, nil, "")
	f := recordChannels(b)
	s, in, errOut := startExec(t, b.dial(t, "demo"), "cat")
	io.WriteString(in, "x")
	o := startedOneOff(t, p)
	<-o.attached
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- b.srv.Shutdown(ctx) }()
	line := readUntil(t, errOut, "\n")
	if line != "The bridge is stopping: this session ends in 1 s.\n" {
		t.Errorf("notice %q", line)
	}
	if line := readUntil(t, errOut, "\n"); line != stopFailure.message+"\n" {
		t.Errorf("last line %q", line)
	}
	if code := exitCode(t, s.Wait()); code != ExitBridgeStopped {
		t.Errorf("exit code %d, want %d", code, ExitBridgeStopped)
	}
	if err := <-stopped; err == nil {
		t.Error("Shutdown past its grace returned nil")
	}
	select {
	case <-o.exit:
	default:
		t.Error("Shutdown returned before the one-off ended")
	}
	if got := f.get(); !slices.Equal(got[len(got)-4:], []string{"stderr", "exit-status", "eof", "close"}) {
		t.Errorf("the server sent %q, want it to end with stderr, exit-status, eof, close", got)
	}
	// Stopped: a new connection is refused.
	if _, err := gossh.Dial("tcp", b.addr, &gossh.ClientConfig{User: "demo", Auth: []gossh.AuthMethod{gossh.PublicKeys(b.userKey)}, HostKeyCallback: gossh.FixedHostKey(b.hostKey)}); err == nil {
		t.Error("a connection was accepted after Shutdown")
	}
}

// A session that ends within the grace ends as usual, and Shutdown
// returns nil.
func TestShutdownWithinGrace(t *testing.T) {
	b := startBridge(t, Config{}, &fakePlatform{}, nil, "")
	c := b.dial(t, "demo")
	s, in, errOut := startExec(t, c, "cat")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- b.srv.Shutdown(ctx) }()
	if line := readUntil(t, errOut, "\n"); !strings.HasPrefix(line, "The bridge is stopping: this session ends in ") {
		t.Errorf("notice %q", line)
	}
	if _, err := c.NewSession(); err == nil {
		t.Error("a new session was accepted while stopping")
	}
	in.Close()
	if code := exitCode(t, s.Wait()); code != 0 {
		t.Errorf("exit code %d", code)
	}
	c.Close() // as ssh does once its session ended
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// startedOneOff waits for the platform's first one-off.
func startedOneOff(t *testing.T, p *fakePlatform) *fakeOneOff {
	t.Helper()
	select {
	case o := <-p.startedCh():
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no one-off started")
		return nil
	}
}
