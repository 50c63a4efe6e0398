package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// A newcomer runs the bridge with no key flag: their own keys in ~/.ssh
// are accepted, and any other key is not.
func TestDefaultKeysOfTheUser(t *testing.T) {
	home := t.TempDir()
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(sshDir, "id_ed25519")
	if out, err := exec.Command(need(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", own).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	b := &Bridge{t: t, Key: own, DataDir: filepath.Join(home, "data"), KnownHosts: filepath.Join(home, "known_hosts"),
		args: []string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(home, "data")},
		env:  []string{"HOME=" + home, "XDG_STATE_HOME="}}
	b.start()
	t.Cleanup(b.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(b.SSHArgs(own), "-p", b.Port, "demo-app@"+b.Host, "echo welcome")
	if r := runCmd(t, exec.CommandContext(ctx, "ssh", args...), nil); r.Code != 0 || r.Stdout != "welcome\n" {
		t.Fatalf("own key: %+v", r)
	}
	args = append(b.SSHArgs(clientKey(t, "stranger")), "-p", b.Port, "demo-app@"+b.Host, "echo welcome")
	if r := runCmd(t, exec.CommandContext(ctx, "ssh", args...), nil); r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
		t.Fatalf("unknown key: %+v", r)
	}
}

func TestNoKeyRefusesToStart(t *testing.T) {
	home := t.TempDir()
	cmd := exec.Command(binary, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(home, "data"))
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_STATE_HOME=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("started with no key at all:\n%s", out)
	}
	if !strings.Contains(string(out), "ssh-keygen") {
		t.Fatalf("the refusal should say how to make a key:\n%s", out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 {
		t.Fatalf("the refusal should be said once, plainly; got %d lines:\n%s", len(lines), out)
	}
	if _, err := os.Stat(filepath.Join(home, "data")); err == nil {
		t.Fatalf("a bridge that could not start left its data directory behind")
	}
}

// The host key is made once, kept with mode 0600, and the same after a
// restart; --host-key takes an existing one.
func TestHostKeyKept(t *testing.T) {
	b := StartBridge(t, Options{})
	keyFile := filepath.Join(b.DataDir, "ssh_host_ed25519_key")
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %#o, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(b.KnownHosts)
	b.Restart()
	after, _ := os.ReadFile(b.KnownHosts)
	if string(before) != string(after) {
		t.Fatalf("host key changed across a restart:\n%s\n%s", before, after)
	}
	// StrictHostKeyChecking=yes with the pinned key: a new key would fail here.
	if r := b.Run("demo-app", nil, "true"); r.Code != 0 {
		t.Fatalf("after restart: %+v", r)
	}

	own := filepath.Join(t.TempDir(), "host_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", own).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	b2 := StartBridge(t, Options{Args: []string{"--host-key", own}})
	pub, _ := os.ReadFile(own + ".pub")
	if known, _ := os.ReadFile(b2.KnownHosts); !strings.Contains(string(known), strings.Fields(string(pub))[1]) {
		t.Fatal("the pinned key is not the given one")
	}
	if r := b2.Run("demo-app", nil, "true"); r.Code != 0 {
		t.Fatalf("with --host-key: %+v", r)
	}
}

// Client keepalives get answers: a session with ServerAliveInterval=1
// outlives several intervals.
func TestClientKeepalivesAnswered(t *testing.T) {
	b := StartBridge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"}, "sleep 3.5; echo alive"), nil)
	if r.Code != 0 || r.Stdout != "alive\n" {
		t.Fatalf("got %+v", r)
	}
}

// freezingConn stops reading once frozen, like a client whose machine
// vanished from the network.
type freezingConn struct {
	net.Conn
	frozen chan struct{}
}

func (c *freezingConn) Read(p []byte) (int, error) {
	select {
	case <-c.frozen:
		<-make(chan struct{}) // never again
	default:
	}
	return c.Conn.Read(p)
}

// freezingClient logs in as demo-app over raw, a connection to b, which
// stops reading once the freezingConn returned is frozen. The client is
// closed when the test ends.
func freezingClient(t *testing.T, b *Bridge, raw net.Conn) (*gossh.Client, *freezingConn) {
	t.Helper()
	fc := &freezingConn{Conn: raw, frozen: make(chan struct{})}
	c, chans, reqs, err := gossh.NewClientConn(fc, b.Addr, &gossh.ClientConfig{
		User: "demo-app", Auth: []gossh.AuthMethod{gossh.PublicKeys(loadSigner(t, b.Key))}, HostKeyCallback: gossh.FixedHostKey(knownHostKey(t, b)),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := gossh.NewClient(c, chans, reqs)
	t.Cleanup(func() { client.Close() })
	return client, fc
}

func TestDeadClientDropped(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--client-alive-interval", "500ms", "--client-alive-count-max", "2"}})
	raw, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, fc := freezingClient(t, b, raw)
	close(fc.frozen)
	waitFor(t, 10*time.Second, "bridge drops the silent client", func() bool {
		return strings.Contains(b.Log(), "connection closed: no answer to keepalives")
	})
}

// A client that stops reading while its sessions stream output (its
// socket's buffers full, the bridge's writes blocked) is dropped by the
// keepalives all the same: its sessions end and the connection closes,
// rather than waiting on the client for ever.
func TestClientThatStopsReadingDropped(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--client-alive-interval", "500ms", "--client-alive-count-max", "2",
		"--metrics-listen", "127.0.0.1:0"}})
	// A small receive buffer, so that the bridge's writes block soon.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	raw, err := d.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	client, fc := freezingClient(t, b, raw)
	// Their windows (2 MiB each, x/crypto's client) hold more than the
	// bridge's socket can (tcp_wmem's largest, 4 MiB on Debian), so the
	// bridge's writes block.
	const sessions = 8
	for range sessions {
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start("cat /dev/zero"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		// What the client took in before it froze is read on: its window
		// adjusts let the bridge send more than the socket can hold.
		go io.Copy(io.Discard, out)
	}
	close(fc.frozen)
	waitFor(t, 10*time.Second, "the keepalives give up on the client", func() bool {
		return strings.Contains(b.Log(), "connection closed: no answer to keepalives")
	})
	waitFor(t, 10*time.Second, "the sessions end", func() bool {
		return strings.Count(b.Log(), `msg="session end"`) == sessions
	})
	// The connection itself is gone, not only its sessions.
	addr := b.metricsAddr(t)
	waitFor(t, 10*time.Second, "the connection closed", func() bool {
		return getMetrics(t, addr).value("sshbridge_connections_open") == 0
	})
}

func TestLoginGraceTime(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--login-grace-time", "1s"}})
	conn, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	// Read the server's banner, then say nothing: the bridge must hang up.
	io.Copy(io.Discard, conn)
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("connection closed after %s, want about 1 s", d)
	}
	waitFor(t, 5*time.Second, "the grace time in the log", func() bool {
		return strings.Contains(b.Log(), "not authenticated within the login grace time")
	})
}

func TestIdleTimeout(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--idle-timeout", "1s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	// -N: a connection with no session, which the idle timeout closes.
	runCmd(t, b.SSH(ctx, "demo-app", []string{"-N"}), nil)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("idle connection lasted %s", d)
	}
	// A session longer than the idle timeout is not cut.
	if r := b.Run("demo-app", nil, "sleep 2; echo done"); r.Code != 0 || r.Stdout != "done\n" {
		t.Fatalf("busy connection: %+v", r)
	}
}

// One line at the start of each session with the connection id, user, app
// and the command (once, with its length), and one at the end with the
// duration and exit code.
func TestSessionLogLines(t *testing.T) {
	b := StartBridge(t, Options{})
	b.Run("demo-app", nil, "exit 7")
	startRE := regexp.MustCompile(`msg="session start" conn=[0-9a-f]+ remote=\S+ user=SHA256:\S+ app=demo-app kind=exec command="exit 7" command_bytes=6\n`)
	endRE := regexp.MustCompile(`msg="session end" conn=[0-9a-f]+ remote=\S+ user=SHA256:\S+ app=demo-app kind=exec duration=\S+ exit_code=7\n`)
	if log, ok := b.LogWhen(func(log string) bool { return startRE.MatchString(log) && endRE.MatchString(log) }); !ok {
		t.Fatalf("log lacks the session lines:\n%s", log)
	}
}

func loadSigner(t *testing.T, file string) gossh.Signer {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func knownHostKey(t *testing.T, b *Bridge) gossh.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(b.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, k, _, _, err := gossh.ParseKnownHosts(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
