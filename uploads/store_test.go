package uploads

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(t *testing.T, dir string, lim Limits) (*Store, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := open(dir, lim, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

func put(t *testing.T, sc *Scope, name string, data []byte) {
	t.Helper()
	w, err := sc.Create(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write %q: %v", name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %q: %v", name, err)
	}
}

func pendingNames(t *testing.T, sc *Scope) []string {
	t.Helper()
	es, err := sc.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func readAll(t *testing.T, sc *Scope, name string) []byte {
	t.Helper()
	f, _, err := sc.Open(name)
	if err != nil {
		t.Fatalf("open %q: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteCommitReadBack(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("SHA256:abc", "demo-app")
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one", []byte("x")},
		{"with space ünïcode", []byte("hello")},
		{"-leading-dash", []byte("dash")},
	} {
		put(t, sc, tc.name, tc.data)
		if got := readAll(t, sc, tc.name); !bytes.Equal(got, tc.data) {
			t.Errorf("%q: read back %q, want %q", tc.name, got, tc.data)
		}
		e, err := sc.Stat(tc.name)
		if err != nil || e.Size != int64(len(tc.data)) || e.Mode != 0o644 || e.Writing {
			t.Errorf("stat %q = %+v, %v", tc.name, e, err)
		}
	}
	if got := pendingNames(t, sc); len(got) != 4 {
		t.Errorf("pending = %q", got)
	}
}

func TestConcurrentOutOfOrderWrites(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w, err := sc.Create("big.bin", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 32 << 10
	var offs []int
	for off := 0; off < len(data); off += chunk {
		offs = append(offs, off)
	}
	rand.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(offs))
	for _, off := range offs {
		wg.Go(func() {
			end := min(off+chunk, len(data))
			if _, err := w.WriteAt(data[off:end], int64(off)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := pendingNames(t, sc); len(got) != 0 {
		t.Fatalf("pending before close: %q", got)
	}
	if e, err := sc.Stat("big.bin"); err != nil || !e.Writing || e.Size != int64(len(data)) {
		t.Fatalf("stat while writing = %+v, %v", e, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, sc, "big.bin"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if used, _ := sc.Usage(); used != int64(len(data)) {
		t.Errorf("usage = %d, want %d", used, len(data))
	}
}

func TestLimitsRefuseDuringWrite(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{MaxFileSize: 1000, UserQuota: 1500})
	sc := s.Scope("u", "a")
	w, err := sc.Create("big", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(make([]byte, 600), 0); err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteAt(make([]byte, 600), 600)
	if !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), `"big"`) {
		t.Fatalf("over-size write: %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("close after refusal: %v", err)
	}
	if got := pendingNames(t, sc); len(got) != 0 {
		t.Fatalf("pending after refusal: %q", got)
	}
	if used, _ := sc.Usage(); used != 0 {
		t.Fatalf("usage after refusal = %d", used)
	}

	// The quota spans apps of one user; another user has their own.
	put(t, sc, "a", make([]byte, 1000))
	other := s.Scope("u", "other-app")
	w, err = other.Create("b", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 600))
	if !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over-quota write: %v", err)
	}
	w.Close()
	if got := pendingNames(t, other); len(got) != 0 {
		t.Fatalf("pending after quota refusal: %q", got)
	}
	put(t, s.Scope("v", "a"), "b", make([]byte, 1000))
	if used, _ := sc.Usage(); used != 1000 {
		t.Fatalf("usage = %d", used)
	}
	if n := countFiles(t, s.stagingDir()); n != 0 {
		t.Fatalf("%d files left in staging", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestBrokenTransferLeavesNothing(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	put(t, sc, "f", []byte("old"))
	w, err := sc.Create("f", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial new content"))
	w.TransferError(io.ErrUnexpectedEOF)
	if err := w.Close(); !errors.Is(err, ErrBroken) {
		t.Fatalf("close = %v", err)
	}
	// The complete old file stays; the partial never replaced it.
	if got := readAll(t, sc, "f"); string(got) != "old" {
		t.Fatalf("content = %q", got)
	}
	w, _ = sc.Create("g", os.O_CREATE|os.O_WRONLY, 0)
	w.Write([]byte("x"))
	w.Abort(nil)
	w.Close()
	if got := pendingNames(t, sc); len(got) != 1 {
		t.Fatalf("pending = %q", got)
	}
	if used, _ := sc.Usage(); used != 3 {
		t.Fatalf("usage = %d", used)
	}
}

func TestNames(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	for _, bad := range []string{"..", "../x", "a/../b", "/etc/passwd", "a\x00b", "a\nb", "a//b", "a/", ".",
		strings.Repeat("x", 256), "\xff"} {
		if _, err := sc.Create(bad, os.O_CREATE|os.O_WRONLY, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("create %q: %v", bad, err)
		}
		if err := sc.Mkdir(bad, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("mkdir %q: %v", bad, err)
		}
	}
	if _, err := sc.Create("missing/f", os.O_CREATE|os.O_WRONLY, 0); !errors.Is(err, ErrNotExist) {
		t.Errorf("create in missing dir: %v", err)
	}
	if err := sc.Remove(""); !errors.Is(err, ErrPermission) {
		t.Errorf("remove root: %v", err)
	}
}

func TestTreeOperations(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sc.Mkdir("d", 0o700))
	must(sc.Mkdir("d/sub", 0))
	put(t, sc, "d/sub/f", []byte("1"))
	put(t, sc, "d/g", []byte("22"))
	if err := sc.Mkdir("d", 0); !errors.Is(err, ErrExist) {
		t.Fatalf("mkdir existing: %v", err)
	}
	if err := sc.Rmdir("d"); !errors.Is(err, ErrDirNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := sc.Remove("d"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("remove dir: %v", err)
	}
	ls, err := sc.List("d")
	must(err)
	if len(ls) != 2 || ls[0].Name != "d/g" || !ls[1].IsDir() {
		t.Fatalf("list = %+v", ls)
	}
	// IDE style: upload to a temporary name, rename over the real one.
	put(t, sc, "d/g.tmp", []byte("333"))
	must(sc.Rename("d/g.tmp", "d/g"))
	if got := readAll(t, sc, "d/g"); string(got) != "333" {
		t.Fatalf("after rename over: %q", got)
	}
	must(sc.Rename("d", "e"))
	if got := pendingNames(t, sc); strings.Join(got, ",") != "e/g,e/sub/f" {
		t.Fatalf("pending after dir rename = %q", got)
	}
	if err := sc.Rename("e", "e/sub/x"); err == nil {
		t.Fatal("rename into itself accepted")
	}
	mode := fs.FileMode(0o600)
	mtime := time.Unix(1e9, 0)
	must(sc.Setattr("e/g", Attrs{Mode: &mode, ModTime: &mtime}))
	e, err := sc.Stat("e/g")
	must(err)
	if e.Mode != 0o600 || !e.ModTime.Equal(mtime) {
		t.Fatalf("stat after setattr = %+v", e)
	}
	must(sc.Remove("e/g"))
	must(sc.Remove("e/sub/f"))
	must(sc.Rmdir("e/sub"))
	if used, _ := sc.Usage(); used != 0 {
		t.Fatalf("usage = %d", used)
	}
}

func TestIsolation(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	a := s.Scope("id=alice serial=1 ca=SHA256:x/../y", "app")
	put(t, a, "secret", []byte("s"))
	for _, sc := range []*Scope{s.Scope("bob", "app"), s.Scope("id=alice serial=1 ca=SHA256:x/../y", "other")} {
		if got := pendingNames(t, sc); len(got) != 0 {
			t.Fatalf("%s/%s sees %q", sc.User(), sc.App(), got)
		}
		if _, err := sc.Stat("secret"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("stat from other scope: %v", err)
		}
	}
	if got := pendingNames(t, s.Scope("id=alice serial=1 ca=SHA256:x/../y", "app")); len(got) != 1 {
		t.Fatalf("same scope again sees %q", got)
	}
}

func TestRestartKeepsPendingDropsPartials(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir, Limits{})
	sc := s.Scope("u", "a")
	sc.Mkdir("d", 0)
	put(t, sc, "d/f", []byte("kept"))
	w, _ := sc.Create("partial", os.O_CREATE|os.O_WRONLY, 0)
	w.Write([]byte("half"))
	if _, err := Open(dir, Limits{}, nil); err == nil {
		t.Fatal("second Open of a directory in use succeeded")
	}
	s.Close() // the writer is abandoned, as by a crash

	s2, _ := newStore(t, dir, Limits{})
	sc2 := s2.Scope("u", "a")
	if got := pendingNames(t, sc2); strings.Join(got, ",") != "d/f" {
		t.Fatalf("pending after restart = %q", got)
	}
	if got := readAll(t, sc2, "d/f"); string(got) != "kept" {
		t.Fatalf("content after restart = %q", got)
	}
	if n := countFiles(t, s2.stagingDir()); n != 0 {
		t.Fatalf("%d partials survived", n)
	}
	if used, _ := sc2.Usage(); used != 4 {
		t.Fatalf("usage after restart = %d", used)
	}
}

func TestExpiry(t *testing.T) {
	s, c := newStore(t, t.TempDir(), Limits{Expiry: time.Hour})
	sc := s.Scope("u", "a")
	sc.Mkdir("d", 0)
	put(t, sc, "d/old", []byte("o"))
	c.Add(50 * time.Minute)
	put(t, sc, "new", []byte("n"))
	c.Add(20 * time.Minute)
	if got := pendingNames(t, sc); strings.Join(got, ",") != "new" {
		t.Fatalf("pending = %q", got)
	}
	if _, err := sc.Stat("d"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("emptied old dir still there: %v", err)
	}
	if used, _ := sc.Usage(); used != 1 {
		t.Fatalf("usage = %d", used)
	}
}

// sendAll is a SendFunc that reads every file and records it as sent.
func sendAll(sent *[]string) SendFunc {
	return func(ctx context.Context, name string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		*sent = append(*sent, name+"="+string(b))
		return err
	}
}

func TestDeliver(t *testing.T) {
	s, c := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	sc.Mkdir("dir", 0)
	sc.Mkdir("dir/sub", 0)
	put(t, sc, "first", []byte("1"))
	c.Add(time.Second)
	put(t, sc, "dir/sub/f", []byte("22"))
	c.Add(time.Second)
	put(t, sc, "last", []byte("333"))

	var got []string
	fail := errors.New("413 too large")
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			// A later file in flight when an earlier one failed: its
			// last byte is never handed over.
			return err
		}
		if int64(len(b)) != size {
			t.Errorf("%s: read %d of %d", name, len(b), size)
		}
		if name == "dir/sub/f" {
			return fail
		}
		got = append(got, name+"="+string(b))
		return nil
	}
	d, err := sc.Deliver(context.Background(), send, nil)
	var de *DeliveryError
	if d != nil || !errors.Is(err, fail) || !strings.Contains(err.Error(), `"dir/sub/f"`) || !errors.As(err, &de) {
		t.Fatalf("deliver = %v, %v", d, err)
	}
	if de.File != "dir/sub/f" || strings.Join(de.Pending, ",") != "first,dir/sub/f,last" {
		t.Fatalf("failure names %q, pending %q", de.File, de.Pending)
	}
	if strings.Join(got, ",") != "first=1" {
		t.Fatalf("sent %q", got)
	}
	// The file sent before the failure stays pending too: its one-off
	// never attached.
	if p := pendingNames(t, sc); strings.Join(p, ",") != "first,dir/sub/f,last" {
		t.Fatalf("pending after failure = %q", p)
	}

	got = nil
	var accepted int64
	d, err = sc.Deliver(context.Background(), sendAll(&got), func(name string, sent, size int64, ok bool) {
		if ok {
			accepted += size
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "first=1,dir/sub/f=22,last=333" || accepted != 6 {
		t.Fatalf("sent %q, accepted %d bytes", got, accepted)
	}
	if strings.Join(d.Files(), ",") != "first,dir/sub/f,last" {
		t.Fatalf("delivery files = %q", d.Files())
	}
	if p := pendingNames(t, sc); strings.Join(p, ",") != "first,dir/sub/f,last" {
		t.Fatalf("pending before commit = %q", p)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if ls, _ := sc.List(""); len(ls) != 0 {
		t.Fatalf("tree after delivery = %+v", ls)
	}
	if used, _ := sc.Usage(); used != 0 {
		t.Fatalf("usage = %d", used)
	}
	// A send that does not read the file is not trusted.
	put(t, sc, "unread", []byte("data"))
	_, err = sc.Deliver(context.Background(), func(context.Context, string, int64, io.Reader) error { return nil }, nil)
	if err == nil || len(pendingNames(t, sc)) != 1 {
		t.Fatalf("unread send: %v", err)
	}
}

// A delivery released (its one-off never attached) leaves every file
// pending, as it was; the next delivery sends them again.
func TestDeliverReleased(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir, Limits{})
	sc := s.Scope("u", "a")
	sc.Mkdir("d", 0)
	for _, n := range []string{"d/f1", "f2", "f3"} {
		put(t, sc, n, []byte(n))
	}
	want := tree(t, sc)
	var sent []string
	d, err := sc.Deliver(context.Background(), sendAll(&sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Release()
	d.Commit() // after Release: does nothing
	if got := tree(t, sc); got != want {
		t.Fatalf("tree after release:\n%s\nwant\n%s", got, want)
	}
	if used, _ := sc.Usage(); used != 8 {
		t.Fatalf("usage after release = %d", used)
	}
	s.Close()
	s2, _ := newStore(t, dir, Limits{})
	sc2 := s2.Scope("u", "a")
	sent = nil
	d, err = sc2.Deliver(context.Background(), sendAll(&sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(sent, ",") != "d/f1=d/f1,f2=f2,f3=f3" {
		t.Fatalf("sent again %q", sent)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, sc2); got != "" {
		t.Fatalf("tree after commit:\n%s", got)
	}
}

// A file is accepted only once send returned nil for it, never when its
// last byte was read.
func TestDeliverProgressAcceptedAfterSend(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	put(t, sc, "f", []byte("read to the end"))
	var events []string
	_, err := sc.Deliver(context.Background(), func(ctx context.Context, name string, size int64, r io.Reader) error {
		io.Copy(io.Discard, r)
		return errors.New("connection reset")
	}, func(name string, sent, size int64, accepted bool) {
		events = append(events, fmt.Sprintf("%s %d/%d %v", name, sent, size, accepted))
	})
	if err == nil {
		t.Fatal("deliver succeeded")
	}
	if got := strings.Join(events, "; "); got != "f 0/15 false; f 15/15 false" {
		t.Fatalf("progress = %q", got)
	}
}

func TestDeliverConcurrentWithWrites(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	put(t, sc, "a", []byte("a"))
	w, _ := sc.Create("writing", os.O_CREATE|os.O_WRONLY, 0)
	w.Write([]byte("not yet"))

	var sent []string
	d, err := sc.Deliver(context.Background(), sendAll(&sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second delivery of the same scope waits until the first ends: no
	// file goes to two one-offs.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := sc.Deliver(ctx, sendAll(&sent), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second delivery while the first is open = %v", err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	d, err = sc.Deliver(context.Background(), sendAll(&sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Commit()
	if strings.Join(sent, ",") != "a=a" {
		t.Fatalf("sent %q", sent)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := pendingNames(t, sc); strings.Join(got, ",") != "writing" {
		t.Fatalf("pending = %q", got)
	}
}

// A delivery that sent nothing does not hold up the next one: sessions
// with no files do not wait for each other's attach.
func TestDeliverNothingDoesNotWait(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	var sent []string
	d1, err := sc.Deliver(context.Background(), sendAll(&sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d2, err := sc.Deliver(ctx, sendAll(&sent), nil)
	if err != nil {
		t.Fatalf("second delivery with nothing pending: %v", err)
	}
	d2.Commit()
}

func TestPatchExisting(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	put(t, sc, "f", []byte("hello world"))
	w, err := sc.Create("f", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("HELLO"), 0)
	w.WriteAt([]byte("!"), 11)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, sc, "f"); string(got) != "HELLO world!" {
		t.Fatalf("patched = %q", got)
	}
	if _, err := sc.Create("f", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0); !errors.Is(err, ErrExist) {
		t.Fatalf("exclusive create of existing: %v", err)
	}
	if _, err := sc.Create("nope", os.O_WRONLY, 0); !errors.Is(err, ErrNotExist) {
		t.Fatalf("open missing without create: %v", err)
	}
}

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"a", "a b", "-rf", "ünï/cödé", "a/b/c", strings.Repeat("x", 255)} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("CheckPath(%q) = %v", ok, err)
		}
	}
}

// The store forgets scopes that hold nothing.
func TestIdleScopesForgotten(t *testing.T) {
	s, _ := newStore(t, t.TempDir(), Limits{})
	for i := range 10 {
		sc := s.Scope(fmt.Sprint("user", i), "app")
		sc.List("")
		if d, err := sc.Deliver(context.Background(), func(context.Context, string, int64, io.Reader) error { return nil }, nil); err == nil {
			d.Commit()
		}
	}
	sc := s.Scope("u", "a")
	put(t, sc, "f", []byte("x"))
	sc.Remove("f")
	s.mu.Lock()
	n := len(s.scopes)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d scopes kept", n)
	}
}
