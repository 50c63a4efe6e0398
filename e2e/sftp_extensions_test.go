package e2e

import (
	binenc "encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// OpenSSH's sftp: `rename -l` sends the legacy SSH_FXP_RENAME, which must
// fail when the target exists (draft-ietf-secsh-filexfer-02 section 6.5,
// as OpenSSH's sftp-server fails) and leave both files as they were; plain
// `rename` uses posix-rename@openssh.com and replaces.
func TestSftpLegacyRenameDoesNotReplace(t *testing.T) {
	b := StartBridge(t, Options{})
	dir := localTree(t, map[string][]byte{"r1.txt": []byte("one\n"), "r2.txt": []byte("two\n")})
	r := b.sftpBatch(t, dir, "", "demo-app", "put r1.txt\nput r2.txt\nrename -l r2.txt r1.txt\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, `remote rename "/tmp/uploads/r2.txt" to "/tmp/uploads/r1.txt": Failure`) {
		t.Fatalf("rename -l over an existing file: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	mustOK(t, "get both", b.sftpBatch(t, dir, "", "demo-app", "get r1.txt back1\nget r2.txt back2\n"))
	for name, want := range map[string]string{"back1": "one\n", "back2": "two\n"} {
		if got := readFile(t, dir, name); got != want {
			t.Errorf("%s after the refused rename = %q, want %q", name, got, want)
		}
	}
	// To a free name, the legacy rename moves.
	mustOK(t, "rename -l to a free name", b.sftpBatch(t, dir, "", "demo-app", "rename -l r2.txt r3.txt\n"))
	// posix-rename replaces.
	mustOK(t, "posix rename", b.sftpBatch(t, dir, "", "demo-app", "rename r3.txt r1.txt\n"))
	got := b.Run("demo-app", nil, "cd /tmp/uploads && ls && cat r1.txt")
	if got.Code != 0 || got.Stdout != "r1.txt\ntwo\n" {
		t.Fatalf("one-off after the renames: exit %d, %q\n%s", got.Code, got.Stdout, got.Stderr)
	}
}

// The server announces only the extensions it serves. OpenSSH's sftp reads
// the list: `ln` (a hard link) stops at the client with "Server does not
// support hardlink@openssh.com extension", while `ln -s` (SSH_FXP_SYMLINK,
// in the base protocol) is refused by the bridge. Every announced extension
// works, through pkg/sftp's client.
func TestSftpExtensionsAnnouncedWork(t *testing.T) {
	b := StartBridge(t, Options{})
	dir := localTree(t, map[string][]byte{"f": []byte("f\n")})
	r := b.sftpBatch(t, dir, "", "demo-app", "put f\nln f hard\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Server does not support hardlink@openssh.com extension") {
		t.Fatalf("sftp ln: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	r = b.sftpBatch(t, dir, "", "demo-app", "ln -s f soft\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Operation unsupported") {
		t.Fatalf("sftp ln -s: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}

	exts := announcedExtensions(t, b)
	c := sftpClient(t, b, b.Key, "demo-app")
	works := map[string]func() error{
		"posix-rename@openssh.com": func() error {
			if err := putFile(c, "g", "g\n"); err != nil {
				return err
			}
			if err := c.PosixRename("g", "f"); err != nil {
				return err
			}
			return wantContent(c, "f", "g\n")
		},
		"statvfs@openssh.com": func() error {
			vfs, err := c.StatVFS("/tmp/uploads")
			if err == nil && (vfs.Bsize == 0 || vfs.Blocks == 0 || vfs.Namemax != 255) {
				err = errors.New("implausible statvfs answer")
			}
			return err
		},
	}
	if len(exts) == 0 {
		t.Fatal("no extension announced")
	}
	for _, name := range exts {
		if name == "hardlink@openssh.com" {
			t.Errorf("hardlink@openssh.com is announced")
			continue
		}
		check, ok := works[name]
		if !ok {
			t.Errorf("%s is announced and this test does not know how to check it", name)
			continue
		}
		if err := check(); err != nil {
			t.Errorf("%s announced but fails: %v", name, err)
		}
	}
	if err := c.Link("f", "hard"); err == nil {
		t.Error("a hard link was made")
	}
}

// announcedExtensions reads the names in the server's SSH_FXP_VERSION
// (draft-ietf-secsh-filexfer-02 section 4), over a raw SFTP subsystem.
func announcedExtensions(t *testing.T, b *Bridge) []string {
	t.Helper()
	hostKeys, err := knownhosts.New(b.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", net.JoinHostPort(b.Host, b.Port), &ssh.ClientConfig{
		User:            "demo-app",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(loadSigner(t, b.Key))},
		HostKeyCallback: hostKeys,
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	// SSH_FXP_INIT, version 3.
	if _, err := w.Write([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3}); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binenc.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(rd, body); err != nil {
		t.Fatal(err)
	}
	if len(body) < 5 || body[0] != 2 {
		t.Fatalf("init answered with packet type %d", body[0])
	}
	var names []string
	rest := body[5:]
	str := func() string {
		if len(rest) < 4 || uint32(len(rest)-4) < binenc.BigEndian.Uint32(rest) {
			t.Fatalf("malformed SSH_FXP_VERSION: % x", body)
		}
		n := binenc.BigEndian.Uint32(rest)
		v := string(rest[4 : 4+n])
		rest = rest[4+n:]
		return v
	}
	for len(rest) > 0 {
		names = append(names, str())
		str() // its version data
	}
	return names
}

func putFile(c *pkgsftp.Client, name, content string) error {
	f, err := c.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(content)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func wantContent(c *pkgsftp.Client, name, want string) error {
	f, err := c.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if string(got) != want {
		return errors.New(name + " holds " + string(got))
	}
	return nil
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
