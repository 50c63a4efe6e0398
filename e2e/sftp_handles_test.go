package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sftpClient opens an SSH connection with the key and an SFTP session on
// it, with x/crypto and pkg/sftp: a client that keeps files open, as no
// command-line client does.
func sftpClient(t *testing.T, b *Bridge, key, app string) *pkgsftp.Client {
	t.Helper()
	raw, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := knownhosts.New(b.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", net.JoinHostPort(b.Host, b.Port), &ssh.ClientConfig{
		User:            app,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := pkgsftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openFiles creates n files named prefix0, prefix1… and keeps them open.
func openFiles(t *testing.T, c *pkgsftp.Client, prefix string, n int) []*pkgsftp.File {
	t.Helper()
	var fs []*pkgsftp.File
	for i := range n {
		f, err := c.Create(fmt.Sprintf("%s%d", prefix, i))
		if err != nil {
			t.Fatalf("open %d of %d: %v", i+1, n, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// wantRefused checks that err is SSH_FX_FAILURE with a message naming the
// limit.
func wantRefused(t *testing.T, what string, err error, limit string) {
	t.Helper()
	var se *pkgsftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != pkgsftp.ErrSSHFxFailure || !strings.Contains(err.Error(), limit) {
		t.Fatalf("%s: %v, want SSH_FX_FAILURE naming %q", what, err, limit)
	}
}

// A session that holds its files open meets its limit, then all sessions
// together meet theirs: each open past a limit is refused with
// SSH_FX_FAILURE and a message naming it, while another user uploads and
// runs commands as usual. Closed handles are given back.
func TestSftpOpenFileLimits(t *testing.T) {
	keyB := clientKey(t, "user-b")
	b := StartBridge(t, Options{
		Args:           []string{"--sftp-max-open-files", "8", "--sftp-max-open-files-total", "12"},
		AuthorizedKeys: publicKey(t, clientKey(t, "default")) + "\n" + publicKey(t, keyB) + "\n",
	})
	dir := localTree(t, map[string][]byte{"b1": []byte("b1\n"), "b2": []byte("b2\n")})

	a1 := sftpClient(t, b, b.Key, "demo-app")
	held := openFiles(t, a1, "s1-", 8)
	_, err := a1.Create("s1-extra")
	wantRefused(t, "the 9th open of a session", err, "at most 8 per SFTP session")
	_, err = a1.ReadDir(".")
	wantRefused(t, "an opendir past the session's limit", err, "at most 8 per SFTP session")

	// Another user, at the same time, uploads as usual.
	mustOK(t, "user B's put while user A holds 8 files", b.sftpBatch(t, dir, keyB, "demo-app", "put b1\n"))

	// A second session of user A takes the last 4 of the 12.
	a2 := sftpClient(t, b, b.Key, "demo-app")
	held = append(held, openFiles(t, a2, "s2-", 4)...)
	_, err = a2.Create("s2-extra")
	wantRefused(t, "an open past the total", err, "at most 12 in all SFTP sessions")
	// Every session meets the total, with a line on stderr saying why,
	// and nothing else stalls: commands run.
	r := b.sftpBatch(t, dir, keyB, "demo-app", "put b2\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, "too many open files on the bridge (at most 12 in all SFTP sessions)") {
		t.Fatalf("user B's put at the total: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := b.Run("demo-app", nil, "echo running"); r.Code != 0 || r.Stdout != "running\n" {
		t.Fatalf("a command while SFTP sessions hold every handle: %+v", r)
	}

	// Closed handles are given back.
	for _, f := range held[:8] {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, "user B's put once handles were closed", b.sftpBatch(t, dir, keyB, "demo-app", "put b2\n"))
	if _, err := a1.ReadDir("."); err != nil {
		t.Fatalf("opendir once handles were closed: %v", err)
	}
	ls := b.sftpBatch(t, dir, keyB, "demo-app", "ls -1\n")
	if !strings.Contains(ls.Stdout, "b1") || !strings.Contains(ls.Stdout, "b2") {
		t.Fatalf("user B's pending files:\n%s", ls.Stdout)
	}
	if !b.LogHas(`msg="sftp: open refused"`) {
		t.Fatal("the refusal is not in the log")
	}
}
