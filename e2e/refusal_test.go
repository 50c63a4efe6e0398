package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func TestForwardingRefused(t *testing.T) {
	b := StartBridge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// -W opens a direct-tcpip channel: local port forwarding.
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-o", "LogLevel=INFO", "-W", "127.0.0.1:9"}), nil)
	if r.Code != 255 || !strings.Contains(r.Stderr, "administratively prohibited: port forwarding is not supported by this bridge") {
		t.Fatalf("local forwarding: %+v", r)
	}
	// -R asks for a tcpip-forward global request: remote forwarding.
	r = runCmd(t, b.SSH(ctx, "demo-app", []string{"-R", "0:127.0.0.1:9", "-o", "ExitOnForwardFailure=yes"}, "true"), nil)
	if r.Code != 255 || !strings.Contains(r.Stderr, "remote port forwarding failed") {
		t.Fatalf("remote forwarding: %+v", r)
	}

	c := goClient(t, b, "demo-app")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok || err != nil {
		t.Fatalf("agent forwarding: ok=%v err=%v, want a plain no", ok, err)
	}
	x11 := gossh.Marshal(struct {
		Single           bool
		Protocol, Cookie string
		Screen           uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})
	if ok, err := s.SendRequest("x11-req", true, x11); ok || err != nil {
		t.Fatalf("X11 forwarding: ok=%v err=%v, want a plain no", ok, err)
	}
	// The session still works after the refusals.
	out, err := s.Output("echo fine")
	if err != nil || string(out) != "fine\n" {
		t.Fatalf("session after refusals: %q %v", out, err)
	}
}

func TestEnvAllowList(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--env-allow", "DEPLOY_*,COLOR"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	extra := []string{"-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C DEPLOY_ENV=staging COLOR=blue NOT_ALLOWED=1"}
	r := runCmd(t, b.SSH(ctx, "demo-app", extra, `echo "$LANG|$LC_TIME|$DEPLOY_ENV|$COLOR|${NOT_ALLOWED-unset}"`), nil)
	if r.Code != 0 || r.Stdout != "C.UTF-8|C|staging|blue|unset\n" {
		t.Fatalf("got %+v", r)
	}
}

// Sessions beyond the per-connection limit are refused, the others go on.
func TestMaxSessionsPerConnection(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--max-sessions", "2"}})
	c := goClient(t, b, "demo-app")
	var open []*gossh.Session
	for range 2 {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	if _, err := c.NewSession(); err == nil || !strings.Contains(err.Error(), "too many sessions") {
		t.Fatalf("third session: %v, want a refusal", err)
	}
	open[0].Close()
	// Once one is closed a new one may open.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := c.NewSession()
		if err == nil {
			s.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after closing one: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSSHAudit(t *testing.T) {
	b := StartBridge(t, Options{})
	out, _ := exec.Command(need(t, "ssh-audit"), "-n", "-p", b.Port, b.Host).CombinedOutput()
	text := string(out)
	if !strings.Contains(text, "ssh-ed25519") {
		t.Fatalf("ssh-audit did not audit the bridge:\n%s", text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "[fail]") {
			t.Errorf("ssh-audit failure: %s", line)
		}
		if strings.Contains(line, "[warn]") && !strings.Contains(line, "unknown algorithm") {
			t.Errorf("ssh-audit warning: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("full report:\n%s", text)
	}
}
