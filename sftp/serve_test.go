package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/internal/testkit"
	"sshbridge/uploads"
)

func newStore(t *testing.T, lim uploads.Limits) *uploads.Store {
	t.Helper()
	s, err := uploads.Open(t.TempDir(), lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type session struct {
	client *pkgsftp.Client
	conn   net.Conn
	done   chan error // Serve's result
	stderr *syncBuffer
}

// syncBuffer is the test kit's buffer, safe for concurrent writers and
// readers.
type syncBuffer = testkit.Buffer

// connect serves one SFTP session over a real loopback TCP connection (not
// net.Pipe, which deadlocks when both ends write first) and dials it with
// pkg/sftp's client.
func connect(t *testing.T, sc *uploads.Scope, opts ...pkgsftp.ClientOption) *session {
	t.Helper()
	return connectTB(t, sc, opts...)
}

func connectTB(t testing.TB, sc *uploads.Scope, opts ...pkgsftp.ClientOption) *session {
	t.Helper()
	return connectWith(t, sc, Options{}, opts...)
}

// connectWith is connect with the server's options; their Stderr is the
// session's.
func connectWith(t testing.TB, sc uploads.Files, serverOpts Options, opts ...pkgsftp.ClientOption) *session {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &session{done: make(chan error, 1), stderr: &syncBuffer{}}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			s.done <- err
			return
		}
		accepted <- c
		serverOpts.Stderr = s.stderr
		s.done <- Serve(context.Background(), c, sc, serverOpts)
		c.Close()
	}()
	s.conn, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	t.Cleanup(func() {
		s.conn.Close()
		if server != nil {
			server.Close()
		}
		<-s.done
	})
	s.client, err = pkgsftp.NewClientPipe(s.conn, s.conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// end closes the client and returns what Serve returned.
func (s *session) end(t *testing.T) error {
	t.Helper()
	s.client.Close()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the client closed")
		return nil
	}
}

func upload(t *testing.T, c *pkgsftp.Client, name string, data []byte) error {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func download(t *testing.T, c *pkgsftp.Client, name string) []byte {
	t.Helper()
	f, err := c.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b.Bytes()
}

func pending(t *testing.T, sc *uploads.Scope) string {
	t.Helper()
	es, err := sc.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestPutGetSizes(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("SHA256:user", "demo-app")
	s := connect(t, sc, pkgsftp.UseConcurrentWrites(true), pkgsftp.MaxConcurrentRequestsPerFile(64))
	wd, err := s.client.Getwd()
	if err != nil || wd != Home {
		t.Fatalf("getwd = %q, %v", wd, err)
	}
	files := map[string][]byte{
		"zero":               nil,
		"one":                {'x'},
		"/tmp/uploads/multi": randomBytes(5<<20 + 17),
		"with space ünï":     []byte("unicode"),
		"-dash":              []byte("dash"),
	}
	for name, data := range files {
		if err := upload(t, s.client, name, data); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	for name, data := range files {
		if got := download(t, s.client, name); !bytes.Equal(got, data) {
			t.Errorf("get %s: %d bytes, want %d", name, len(got), len(data))
		}
		fi, err := s.client.Stat(name)
		if err != nil || fi.Size() != int64(len(data)) {
			t.Errorf("stat %s = %v, %v", name, fi, err)
		}
	}
	if got := pending(t, sc); got != "-dash,multi,one,with space ünï,zero" {
		t.Fatalf("pending = %q", got)
	}
	if err := s.end(t); err != nil {
		t.Fatalf("Serve after a clean end = %v", err)
	}
}

func TestTreeCommands(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connect(t, sc)
	c := s.client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Mkdir("d"))
	must(c.MkdirAll("d/sub/deeper"))
	must(upload(t, c, "d/sub/f", []byte("f")))
	must(upload(t, c, "d/g.tmp", []byte("g")))
	must(c.PosixRename("d/g.tmp", "d/g"))
	must(upload(t, c, "d/h", []byte("h")))
	must(c.Rename("d/h", "/tmp/uploads/h2"))
	must(c.Chmod("d/g", 0o600))
	mtime := time.Unix(1_600_000_000, 0)
	must(c.Chtimes("d/g", mtime, mtime))
	fi, err := c.Lstat("d/g")
	must(err)
	if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("lstat after chmod/chtimes: %v %v", fi.Mode(), fi.ModTime())
	}
	ls, err := c.ReadDir("d")
	must(err)
	var names []string
	for _, fi := range ls {
		names = append(names, fi.Name())
	}
	if strings.Join(names, ",") != "g,sub" || !ls[1].IsDir() {
		t.Fatalf("ls d = %q", names)
	}
	if err := c.RemoveDirectory("d/sub"); err == nil {
		t.Fatal("rmdir of a non-empty directory succeeded")
	}
	must(c.Remove("d/sub/f"))
	must(c.RemoveDirectory("d/sub/deeper"))
	must(c.RemoveDirectory("d/sub"))
	if got := pending(t, sc); got != "d/g,h2" {
		t.Fatalf("pending = %q", got)
	}
	if _, err := c.Stat("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat missing = %v", err)
	}
	rp, err := c.RealPath(".")
	if err != nil || rp != Home {
		t.Fatalf("realpath . = %q, %v", rp, err)
	}
	vfs, err := c.StatVFS(".")
	if err != nil || vfs.Namemax != 255 || vfs.Blocks == 0 {
		t.Fatalf("statvfs = %+v, %v", vfs, err)
	}
	if err := c.Symlink("d/g", "link"); err == nil {
		t.Fatal("symlink succeeded")
	}
}

// statusCode is the SFTP status behind a client error (pkg/sftp's client
// turns the common ones into os errors).
func statusCode(err error) uint32 {
	var se *pkgsftp.StatusError
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, os.ErrNotExist):
		return codeNoSuchFile
	case errors.Is(err, os.ErrPermission):
		return codePermission
	}
	return 0
}

const (
	codeNoSuchFile  = 2
	codePermission  = 3
	codeFailure     = 4
	codeUnsupported = 8
)

func TestOutsideAndBadNamesRefused(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connect(t, sc)
	c := s.client
	for _, p := range []string{"/", "/etc/passwd", "/tmp", "../../etc/passwd", "/tmp/uploads/../uploads2/x", "..", "/tmp/uploadsx"} {
		if _, err := c.Stat(p); statusCode(err) != codePermission {
			t.Errorf("stat %q: %v", p, err)
		}
		if _, err := c.Open(p); statusCode(err) != codePermission {
			t.Errorf("open %q: %v", p, err)
		}
		if _, err := c.Create(p); statusCode(err) != codePermission {
			t.Errorf("create %q: %v", p, err)
		}
		if _, err := c.ReadDir(p); statusCode(err) != codePermission {
			t.Errorf("readdir %q: %v", p, err)
		}
	}
	for _, p := range []string{"a\x00b", "new\nline", "\x00"} {
		if _, err := c.Create(p); statusCode(err) != codePermission {
			t.Errorf("create %q: %v", p, err)
		}
	}
	if err := upload(t, c, "ok", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("ok", "/etc/ok"); statusCode(err) != codePermission {
		t.Errorf("rename out: %v", err)
	}
	if got := pending(t, sc); got != "ok" {
		t.Fatalf("pending = %q", got)
	}
}

func TestLimitsRefusedDuringWrite(t *testing.T) {
	store := newStore(t, uploads.Limits{MaxFileSize: 1 << 20, UserQuota: 3 << 19})
	sc := store.Scope("u", "a")
	s := connect(t, sc, pkgsftp.UseConcurrentWrites(true))
	err := upload(t, s.client, "too-big", randomBytes(2<<20))
	if statusCode(err) != codeFailure || !strings.Contains(err.Error(), "per-file upload limit") {
		t.Fatalf("over-size upload: %v", err)
	}
	if !strings.Contains(s.stderr.String(), `"too-big": file exceeds the per-file upload limit (1 MiB)`) {
		t.Fatalf("stderr = %q", s.stderr.String())
	}
	if got := pending(t, sc); got != "" {
		t.Fatalf("pending after over-size = %q", got)
	}
	if err := upload(t, s.client, "first", randomBytes(1<<20)); err != nil {
		t.Fatal(err)
	}
	// The quota counts the user's files of every app.
	s2 := connect(t, store.Scope("u", "other-app"))
	err = upload(t, s2.client, "second", randomBytes(1<<20))
	if statusCode(err) != codeFailure || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("over-quota upload: %v", err)
	}
	if got := pending(t, store.Scope("u", "other-app")); got != "" {
		t.Fatalf("pending after over-quota = %q", got)
	}
	if used, _ := sc.Usage(); used != 1<<20 {
		t.Fatalf("usage = %d", used)
	}
}

func TestBrokenTransferLeavesNothingPending(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connect(t, sc)
	f, err := s.client.Create("partial")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(100 << 10)); err != nil {
		t.Fatal(err)
	}
	// The client dies: the connection goes without a close of the file.
	s.conn.Close()
	select {
	case err := <-s.done:
		s.done <- err
		if err == nil {
			t.Fatal("Serve returned nil for a broken session")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got := pending(t, sc); got != "" {
		t.Fatalf("pending after a broken transfer = %q", got)
	}
	if ls, _ := sc.List(""); len(ls) != 0 {
		t.Fatalf("tree after a broken transfer = %+v", ls)
	}
}

func TestIsolation(t *testing.T) {
	store := newStore(t, uploads.Limits{})
	a := connect(t, store.Scope("alice", "app"))
	if err := upload(t, a.client, "secret", []byte("s")); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []*uploads.Scope{store.Scope("bob", "app"), store.Scope("alice", "other")} {
		s := connect(t, sc)
		ls, err := s.client.ReadDir(".")
		if err != nil || len(ls) != 0 {
			t.Fatalf("%s/%s ls = %v, %v", sc.User(), sc.App(), ls, err)
		}
		if _, err := s.client.Open("secret"); statusCode(err) != codeNoSuchFile {
			t.Fatalf("%s/%s open = %v", sc.User(), sc.App(), err)
		}
	}
}

func TestServeEndsWithContext(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, server, sc, Options{}) }()
	cause := errors.New("session over")
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve ignored its context")
	}
}

// IDE deployment: upload to a temporary name, set attributes on the open
// handle (fsetstat, as `put -p` does), then rename over the real name.
func TestTempThenRenameOver(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connect(t, sc)
	c := s.client
	if err := upload(t, c, "app.js", []byte("old")); err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("app.js.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	mtime := time.Unix(1_500_000_000, 0)
	if err := f.Chmod(0o640); err != nil {
		t.Fatalf("fsetstat mode: %v", err)
	}
	if err := c.Chtimes("app.js.tmp", mtime, mtime); err != nil {
		t.Fatalf("setstat times while open: %v", err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 3 {
		t.Fatalf("fstat while open = %v, %v", fi, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.PosixRename("app.js.tmp", "app.js"); err != nil {
		t.Fatal(err)
	}
	if got := download(t, c, "app.js"); string(got) != "new" {
		t.Fatalf("after posix-rename: %q", got)
	}
	fi, err := c.Stat("app.js")
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("attributes after rename: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	// Plain rename never replaces (draft-ietf-secsh-filexfer-02 6.5):
	// SSH_FX_FAILURE, and both files stay as they were.
	if err := upload(t, c, "b", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("b", "app.js"); statusCode(err) != codeFailure {
		t.Fatalf("plain rename over a file = %v", err)
	}
	if err := c.Rename("b", "b"); statusCode(err) != codeFailure {
		t.Fatalf("plain rename onto itself = %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Mkdir("dir"))
	if err := c.Rename("b", "dir"); statusCode(err) != codeFailure {
		t.Fatalf("plain rename over a directory = %v", err)
	}
	if err := c.Rename("missing", "app.js"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("plain rename of a missing file over a file = %v", err)
	}
	if got := download(t, c, "app.js"); string(got) != "new" {
		t.Fatalf("app.js after a refused rename: %q", got)
	}
	if got := pending(t, sc); got != "app.js,b" {
		t.Fatalf("pending = %q", got)
	}
	// To a free name it moves; posix-rename replaces.
	must(c.Rename("b", "c"))
	must(c.PosixRename("c", "app.js"))
	if got := pending(t, sc); got != "app.js" {
		t.Fatalf("pending = %q", got)
	}
	if used, _ := sc.Usage(); used != 1 {
		t.Fatalf("usage = %d", used)
	}
}

// The server announces exactly the extensions it serves: no hardlink.
func TestExtensionsAnnounced(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	c := connect(t, sc).client
	for _, name := range []string{"posix-rename@openssh.com", "statvfs@openssh.com"} {
		if _, ok := c.HasExtension(name); !ok {
			t.Errorf("%s not announced", name)
		}
	}
	for _, name := range []string{"hardlink@openssh.com", "fsync@openssh.com", "lsetstat@openssh.com"} {
		if _, ok := c.HasExtension(name); ok {
			t.Errorf("%s announced", name)
		}
	}
	if err := upload(t, c, "f", []byte("f")); err != nil {
		t.Fatal(err)
	}
	if err := c.Link("f", "g"); statusCode(err) != codeUnsupported {
		t.Fatalf("hardlink = %v", err)
	}
}

func TestBadNameExplainedOnStderr(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connect(t, sc)
	if _, err := s.client.Create("bad\nname"); statusCode(err) != codePermission {
		t.Fatalf("create: %v", err)
	}
	if !strings.Contains(s.stderr.String(), `upload refused: invalid file name "bad\nname": control characters`) {
		t.Fatalf("stderr = %q", s.stderr.String())
	}
}

// closeFails is a staging area whose files fail at Close with err, as an
// S3 staging area's does when the store is lost after the last write.
type closeFails struct {
	uploads.Files
	err error
}

func (c closeFails) CreateFile(name string, flag int, mode fs.FileMode) (uploads.FileWriter, error) {
	w, err := c.Files.CreateFile(name, flag, mode)
	if err != nil {
		return nil, err
	}
	return failingClose{w, c.err}, nil
}

type failingClose struct {
	uploads.FileWriter
	err error
}

func (f failingClose) Close() error {
	f.FileWriter.Abort(f.err)
	f.FileWriter.Close()
	return f.err
}

// A file refused at its close is explained on stderr as a refused write
// is: OpenSSH's sftp shows only "close remote: Failure".
func TestCloseRefusalExplainedOnStderr(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
	s := connectWith(t, closeFails{sc, fmt.Errorf("%q: not staged: %w", "f", uploads.ErrStoreUnavailable)}, Options{})
	f, err := s.client.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("close succeeded")
	}
	if want := `upload refused: "f": not staged: the upload store is unavailable; try again later`; !strings.Contains(s.stderr.String(), want) {
		t.Fatalf("stderr = %q, want %q", s.stderr.String(), want)
	}
}
