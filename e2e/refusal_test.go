package e2e

import (
	"context"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

const prohibited = "administratively prohibited: port forwarding is not supported by this bridge"

// Every form of forwarding is refused: the client says so, the session goes
// on, and the log has a line with what was asked for (never the X11 cookie).
func TestForwardingRefused(t *testing.T) {
	b := StartBridge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()

	// -W opens a direct-tcpip channel for ssh's own stdin and stdout.
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-o", "LogLevel=INFO", "-W", "127.0.0.1:9"}), nil)
	if r.Code != 255 || !strings.Contains(r.Stderr, prohibited) {
		t.Fatalf("-W: %+v", r)
	}
	// -R asks for tcpip-forward, or streamlocal-forward@openssh.com for a
	// socket path.
	for _, spec := range []string{"127.0.0.1:7777:127.0.0.1:9", "/run/remote.sock:127.0.0.1:9"} {
		r = runCmd(t, b.SSH(ctx, "demo-app", []string{"-R", spec, "-o", "ExitOnForwardFailure=yes"}, "true"), nil)
		if r.Code != 255 || !strings.Contains(r.Stderr, "remote port forwarding failed") {
			t.Fatalf("-R %s: %+v", spec, r)
		}
	}

	// -L and -D open a channel for each connection to their local end:
	// direct-tcpip, or direct-streamlocal@openssh.com for a socket path.
	socks := freePort(t)
	fwd := &syncBuffer{}
	cmd := b.SSH(ctx, "demo-app", []string{"-N", "-o", "LogLevel=DEBUG1",
		"-L", dir + "/tcp.sock:10.1.2.3:4444", "-L", dir + "/unix.sock:/run/app.sock", "-D", "127.0.0.1:" + socks})
	cmd.Stderr = fwd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitFor(t, 20*time.Second, "ssh -L -D listening", func() bool {
		return strings.Count(fwd.String(), "Local forwarding listening on") == 3
	})
	refusals := 0
	refused := func(what string, conn net.Conn) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("%s: %v, want the connection closed", what, err)
		}
		conn.Close()
		refusals++
		waitFor(t, 10*time.Second, what+" refused", func() bool {
			return strings.Count(fwd.String(), "open failed: "+prohibited) == refusals
		})
	}
	for _, sock := range []string{"tcp.sock", "unix.sock"} {
		conn, err := net.Dial("unix", dir+"/"+sock)
		if err != nil {
			t.Fatal(err)
		}
		refused("-L "+sock, conn)
	}
	conn, err := net.Dial("tcp", "127.0.0.1:"+socks)
	if err != nil {
		t.Fatal(err)
	}
	// SOCKS5: no authentication, then CONNECT 10.9.8.7:5555.
	conn.Write([]byte{5, 1, 0})
	if hello := make([]byte, 2); !readFull(conn, hello) || hello[0] != 5 || hello[1] != 0 {
		t.Fatalf("SOCKS5 greeting: %v", hello)
	}
	conn.Write([]byte{5, 1, 0, 1, 10, 9, 8, 7, 5555 >> 8, 5555 & 0xff})
	refused("-D", conn)

	// Agent and X11 forwarding are session requests.
	c := goClient(t, b, "demo-app")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok || err != nil {
		t.Fatalf("agent forwarding: ok=%v err=%v, want a plain no", ok, err)
	}
	const cookie = "5ec2e7c00c1e5ec2e7c00c1e5ec2e7c0"
	x11 := gossh.Marshal(struct {
		Single           bool
		Protocol, Cookie string
		Screen           uint32
	}{false, "MIT-MAGIC-COOKIE-1", cookie, 3})
	if ok, err := s.SendRequest("x11-req", true, x11); ok || err != nil {
		t.Fatalf("X11 forwarding: ok=%v err=%v, want a plain no", ok, err)
	}
	// The session still works after the refusals.
	out, err := s.Output("echo fine")
	if err != nil || string(out) != "fine\n" {
		t.Fatalf("session after refusals: %q %v", out, err)
	}

	var lines []*regexp.Regexp
	for _, want := range []string{
		"type=direct-tcpip target=127.0.0.1:9",
		"type=tcpip-forward target=127.0.0.1:7777",
		"type=streamlocal-forward@openssh.com target=/run/remote.sock",
		"type=direct-tcpip target=10.1.2.3:4444",
		"type=direct-streamlocal@openssh.com target=/run/app.sock",
		"type=direct-tcpip target=10.9.8.7:5555",
		"type=auth-agent-req@openssh.com",
		"type=x11-req screen=3",
	} {
		lines = append(lines, regexp.MustCompile(`msg="refused forwarding" conn=\S+ remote=\S+ user=SHA256:\S+ app=demo-app `+regexp.QuoteMeta(want)+`\n`))
	}
	log, _ := b.LogWhen(func(log string) bool {
		for _, line := range lines {
			if !line.MatchString(log) {
				return false
			}
		}
		return true
	})
	for _, line := range lines {
		if !line.MatchString(log) {
			t.Errorf("no log line matching %s", line)
		}
	}
	if strings.Contains(log, cookie) {
		t.Error("the X11 cookie is in the log")
	}
	if t.Failed() {
		t.Logf("ssh -L -D said:\n%s", fwd.String())
	}
}

func readFull(r io.Reader, p []byte) bool {
	_, err := io.ReadFull(r, p)
	return err == nil
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
	// The one warning allowed: the encrypt-and-MAC MAC that Dropbear's
	// dbclient needs (README, Security notes). Algorithms this ssh-audit
	// does not know yet are not warnings about the bridge.
	allowed := regexp.MustCompile(`^\(mac\) hmac-sha2-256 +-- \[warn\] using encrypt-and-MAC mode$`)
	var warnings []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "[fail]") {
			t.Errorf("ssh-audit failure: %s", line)
		}
		if strings.Contains(line, "[warn]") && !strings.Contains(line, "unknown algorithm") {
			warnings = append(warnings, strings.TrimSpace(line))
		}
	}
	if len(warnings) != 1 || !allowed.MatchString(warnings[0]) {
		t.Errorf("ssh-audit warnings %q, want exactly the one for hmac-sha2-256 (encrypt-and-MAC)", warnings)
	}
	if t.Failed() {
		t.Logf("full report:\n%s", text)
	}
}
