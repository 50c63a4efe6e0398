package auth

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// startServer serves a with a real gliderlabs server on loopback; each
// session prints the connection's grant.
func startServer(t *testing.T, a *Authority) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := newKey(t)
	srv := &ssh.Server{
		Handler: func(s ssh.Session) {
			g, ok := GrantFrom(s.Context())
			if !ok {
				fmt.Fprint(s, "no grant")
				return
			}
			fmt.Fprintf(s, "allowed=%v command=%q identity=%s", g.Allowed, g.ForceCommand, g.Identity)
		},
		PublicKeyHandler: a.PublicKeyHandler,
		ServerConfigCallback: func(ctx ssh.Context) *gossh.ServerConfig {
			return &gossh.ServerConfig{MaxAuthTries: MaxAuthTries, VerifiedPublicKeyCallback: a.VerifiedPublicKeyCallback(ctx)}
		},
	}
	srv.AddHostKey(host)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

func dial(addr, user, from string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c, chans, reqs, err := gossh.NewClientConn(conn, addr, &gossh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return gossh.NewClient(c, chans, reqs), nil
}

func run(t *testing.T, c *gossh.Client) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output("")
	if err != nil && !errors.Is(err, io.EOF) {
		var exit *gossh.ExitMissingError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
	}
	return string(out)
}

// TestServerOfferedKeyDoesNotAuthorize is CVE-2024-45337 end to end with
// the OpenSSH client: key A's public half is offered and accepted, but its
// private key is locked by a passphrase that BatchMode cannot ask for, so
// the client goes on and authenticates with key B. The session must get
// B's grant.
func TestServerOfferedKeyDoesNotAuthorize(t *testing.T) {
	needKeygen(t)
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal("ssh is needed by this test and is not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	keygen(t, "-q", "-t", "ed25519", "-N", "locked-passphrase", "-f", keyA)
	keygen(t, "-q", "-t", "ed25519", "-N", "", "-f", keyB)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`command="A"`, readPub(t, keyA+".pub"))+authLine(`command="B"`, readPub(t, keyB+".pub")))
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file})
	addr := startServer(t, a)
	host, port, _ := net.SplitHostPort(addr)

	cmd := exec.Command(sshBin, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-i", keyA, "-i", keyB, "-p", port, "demo-app@"+host, "x")
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `command="B"`) {
		t.Fatalf("session sees %s", out)
	}
	// Key A was accepted as an offer: the scenario really happened.
	fpA := gossh.FingerprintSHA256(readPub(t, keyA+".pub"))
	offered := false
	for _, l := range strings.Split(logs.String(), "\n") {
		offered = offered || strings.Contains(l, "fingerprint="+fpA) && strings.Contains(l, "decision=accept")
	}
	if !offered {
		t.Fatalf("key A was never accepted as an offer:\n%s", logs)
	}
}

func TestServerAppDeniedAndReload(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine(`apps="demo-*"`, k.PublicKey()))
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file, ReloadInterval: -1})
	addr := startServer(t, a)

	c, err := dial(addr, "demo-app", "", gossh.PublicKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := run(t, c); !strings.Contains(got, "allowed=true") {
		t.Fatalf("demo-app: %s", got)
	}
	other, err := dial(addr, "other-app", "", gossh.PublicKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, other); !strings.Contains(got, "allowed=false") {
		t.Fatalf("other-app: %s", got)
	}
	other.Close()

	// The key is removed: new connections are refused, the live one keeps
	// its grant.
	writeFile(t, dir, "authorized_keys", authLine("", newKey(t).PublicKey()))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, "demo-app", "", gossh.PublicKeys(k)); err == nil {
		t.Fatal("removed key still accepted")
	}
	if got := run(t, c); !strings.Contains(got, "allowed=true") {
		t.Fatalf("live connection after reload: %s", got)
	}
	if !strings.Contains(logs.String(), "decision=refuse") {
		t.Fatalf("no refusal logged:\n%s", logs)
	}
}

// waitFor polls a condition the server reaches asynchronously.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
