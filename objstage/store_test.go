package objstage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/internal/testkit"
	"sshbridge/uploads"
)

var testKey = bytes.Repeat([]byte{7}, KeySize)

type opts struct {
	lim    uploads.Limits
	lease  time.Duration
	spool  int64
	prefix string
	ep     string // another endpoint (a fault proxy)
}

func open(t testing.TB, ep, bucket string, o opts) *Store {
	t.Helper()
	if o.ep != "" {
		ep = o.ep
	}
	s, err := Open(context.Background(), Config{
		URL: "s3://" + bucket + "/" + o.prefix, Key: testKey, SpoolDir: t.TempDir(),
		SpoolSize: o.spool, Lease: o.lease, Limits: o.lim, Client: testClient(t, ep),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// stage writes a file through f and closes it.
func stage(t testing.TB, f uploads.Files, name string, data []byte) {
	t.Helper()
	w, err := f.CreateFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func pendingNames(t testing.TB, f uploads.Files) string {
	t.Helper()
	es, err := f.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name)
	}
	return strings.Join(n, ",")
}

// collect is a SendFunc that keeps what it was sent.
type collect struct {
	mu    sync.Mutex
	files map[string][]byte
	sends atomic.Int64
}

func (c *collect) send(_ context.Context, name string, size int64, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.sends.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string][]byte{}
	}
	c.files[name] = b
	return nil
}

// objects lists every key of a bucket.
func objects(t testing.TB, ep, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(testClient(t, ep), &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// A file is pending only once its blob and entry are stored: while the
// writer is open no bridge lists it as pending, and after Close every
// bridge does, with the same bytes.
func TestPendingOnlyAfterStored(t *testing.T) {
	ep, bucket := newBucket(t)
	a, b := open(t, ep, bucket, opts{}), open(t, ep, bucket, opts{})
	fa, fb := a.Files("alice", "app"), b.Files("alice", "app")
	data := randBytes(t, 20<<20+12345) // several parts and a short last one
	w, err := fa.CreateFile("big.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// Out of order: the second half first, then the first.
	half := len(data) / 2
	if _, err := w.WriteAt(data[half:], int64(half)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data[:half], 0); err != nil {
		t.Fatal(err)
	}
	if got := pendingNames(t, fa) + "|" + pendingNames(t, fb); got != "|" {
		t.Fatalf("pending while written: %q", got)
	}
	if e, err := fa.Stat("big.bin"); err != nil || !e.Writing {
		t.Fatalf("stat on the writing bridge: %+v, %v", e, err)
	}
	if _, err := fb.Stat("big.bin"); !errors.Is(err, uploads.ErrNotExist) {
		t.Fatalf("stat on the other bridge while written: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []uploads.Files{fa, fb} {
		es, err := f.List("")
		if err != nil || len(es) != 1 || es[0].Name != "big.bin" || es[0].Size != int64(len(data)) || es[0].Mode.Perm() != 0o600 || es[0].Writing {
			t.Fatalf("list: %+v, %v", es, err)
		}
	}
	r, _, err := fb.OpenFile("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back through the other bridge: %d bytes, %v", len(got), err)
	}
}

// The store holds no plaintext: a marker written many times is in no
// object, and the blob is bigger than the file by DARE's overhead only.
func TestNoPlaintextInStore(t *testing.T) {
	ep, bucket := newBucket(t)
	s := open(t, ep, bucket, opts{})
	marker := []byte("PLAINTEXT-MARKER-4f1c2e")
	data := bytes.Repeat(marker, (9<<20)/len(marker))
	stage(t, s.Files("alice", "app"), "secret.txt", data)
	stage(t, s.Files("alice", "app"), "small.txt", marker)
	c := testClient(t, ep)
	keys := objects(t, ep, bucket)
	blobs := 0
	for _, k := range keys {
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &k})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, marker) || bytes.Contains(b, marker[:8]) {
			t.Fatalf("object %s holds the plaintext", k)
		}
		if strings.Contains(k, "/b/") || strings.HasPrefix(k, "b/") {
			blobs++
			if n := int64(len(b)); n != encryptedSize(int64(len(data))) && n != encryptedSize(int64(len(marker))) {
				t.Fatalf("blob %s of %d bytes", k, n)
			}
		}
	}
	if blobs != 2 {
		t.Fatalf("%d blobs in %v", blobs, keys)
	}
}

// Another key does not decrypt: a delivery with the wrong key fails and
// leaves the file pending.
func TestWrongKeyFails(t *testing.T) {
	ep, bucket := newBucket(t)
	a := open(t, ep, bucket, opts{})
	stage(t, a.Files("u", "a"), "f", []byte("hello"))
	b := open(t, ep, bucket, opts{})
	b.key = bytes.Repeat([]byte{8}, KeySize)
	var c collect
	_, err := b.Files("u", "a").DeliverFiles(context.Background(), c.send, nil)
	if err == nil {
		t.Fatal("delivered with another key")
	}
	if got := pendingNames(t, a.Files("u", "a")); got != "f" {
		t.Fatalf("pending after the failed delivery: %q", got)
	}
}

// Two bridges deliver one scope at once: each file goes to exactly one
// of them, and nothing is left once both committed.
func TestDeliveredOnce(t *testing.T) {
	ep, bucket := newBucket(t)
	a, b := open(t, ep, bucket, opts{}), open(t, ep, bucket, opts{})
	want := map[string][]byte{}
	for _, n := range []string{"one", "two", "three", "four"} {
		want[n] = randBytes(t, 1000+len(n))
		stage(t, a.Files("u", "app"), n, want[n])
	}
	want["empty"] = []byte{}
	stage(t, a.Files("u", "app"), "empty", nil)
	var ca, cb collect
	var wg sync.WaitGroup
	for _, x := range []struct {
		s *Store
		c *collect
	}{{a, &ca}, {b, &cb}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := x.s.Files("u", "app").DeliverFiles(context.Background(), x.c.send, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if err := d.Commit(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := ca.sends.Load() + cb.sends.Load(); n != 5 {
		t.Fatalf("%d sends for 5 files (a %d, b %d)", n, ca.sends.Load(), cb.sends.Load())
	}
	for n, data := range want {
		got, ok := ca.files[n]
		if !ok {
			got = cb.files[n]
		}
		if !bytes.Equal(got, data) || (ca.files[n] == nil && cb.files[n] == nil) {
			t.Fatalf("%s: delivered %d bytes, want %d", n, len(got), len(data))
		}
	}
	if p := pendingNames(t, b.Files("u", "app")); p != "" {
		t.Fatalf("pending after both commits: %q", p)
	}
	for _, k := range objects(t, ep, bucket) {
		t.Errorf("object left: %s", k)
	}
}

// A lease is exclusive across bridges (the store's 412), and a delivery
// holds its files: another bridge's delivery skips them, its Remove is
// refused, and a Release leaves them pending for the next.
func TestLeaseExclusive(t *testing.T) {
	ep, bucket := newBucket(t)
	a, b := open(t, ep, bucket, opts{}), open(t, ep, bucket, opts{})
	stage(t, a.Files("u", "app"), "f", []byte("data"))
	key := a.leaseKey(scopeKey{hashName("u"), hashName("app")}, "0123456789abcdef0123456789abcdef")
	l, err := a.acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquire(context.Background(), key); !errors.Is(err, errLeaseHeld) {
		t.Fatalf("second acquire: %v, want held", err)
	}
	a.release(l)
	if l2, err := b.acquire(context.Background(), key); err != nil {
		t.Fatalf("acquire after release: %v", err)
	} else {
		b.release(l2)
	}

	var ca, cb collect
	d, err := a.Files("u", "app").DeliverFiles(context.Background(), ca.send, nil)
	if err != nil || strings.Join(d.Files(), ",") != "f" {
		t.Fatalf("delivery a: %v, %v", d, err)
	}
	db, err := b.Files("u", "app").DeliverFiles(context.Background(), cb.send, nil)
	if err != nil || len(db.Files()) != 0 || cb.sends.Load() != 0 {
		t.Fatalf("delivery b while a holds the file: %v, %v", db, err)
	}
	if err := b.Files("u", "app").Remove("f"); !errors.Is(err, uploads.ErrBusy) {
		t.Fatalf("remove while delivered: %v", err)
	}
	if p := pendingNames(t, b.Files("u", "app")); p != "f" {
		t.Fatalf("pending while delivered: %q", p)
	}
	d.Release()
	db, err = b.Files("u", "app").DeliverFiles(context.Background(), cb.send, nil)
	if err != nil || strings.Join(db.Files(), ",") != "f" {
		t.Fatalf("delivery b after a released: %v, %v", db, err)
	}
	if err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if p := pendingNames(t, a.Files("u", "app")); p != "" {
		t.Fatalf("pending after commit: %q", p)
	}
}

// A bridge that dies mid-delivery leaves a lease that expires: the next
// session, on another bridge, delivers the file, once.
func TestLeaseExpiry(t *testing.T) {
	ep, bucket := newBucket(t)
	// Long enough that a loaded machine's slow requests do not pass it.
	lease := 5 * time.Second
	a, b := open(t, ep, bucket, opts{lease: lease}), open(t, ep, bucket, opts{lease: lease})
	data := randBytes(t, 3<<20)
	stage(t, a.Files("u", "app"), "f", data)
	var ca, cb collect
	d, err := a.Files("u", "app").DeliverFiles(context.Background(), ca.send, nil)
	if err != nil || len(d.Files()) != 1 {
		t.Fatalf("delivery a: %v", err)
	}
	// Bridge a dies: its renewals stop, nothing is released.
	d.(*delivery).renew.end()
	died := time.Now()
	// Within the lease, b delivers nothing.
	db, err := b.Files("u", "app").DeliverFiles(context.Background(), cb.send, nil)
	if err != nil || len(db.Files()) != 0 {
		t.Fatalf("delivery b within the lease: %v, %v", db.Files(), err)
	}
	for time.Since(died) < lease+500*time.Millisecond {
		time.Sleep(100 * time.Millisecond) // the lease's life is what this test waits for
	}
	db, err = b.Files("u", "app").DeliverFiles(context.Background(), cb.send, nil)
	if err != nil || len(db.Files()) != 1 || !bytes.Equal(cb.files["f"], data) {
		t.Fatalf("delivery b after the lease expired: %v, %v", db.Files(), err)
	}
	if err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := cb.sends.Load(); n != 1 {
		t.Fatalf("b sent %d times", n)
	}
	if p := pendingNames(t, a.Files("u", "app")); p != "" {
		t.Fatalf("pending after b's commit: %q", p)
	}
}

// The quota holds across bridges: what one bridge staged counts on the
// other.
func TestQuotaAcrossBridges(t *testing.T) {
	ep, bucket := newBucket(t)
	lim := uploads.Limits{UserQuota: 10 << 20}
	a, b := open(t, ep, bucket, opts{lim: lim}), open(t, ep, bucket, opts{lim: lim})
	stage(t, a.Files("alice", "app1"), "f", randBytes(t, 6<<20))
	if used, quota := b.Files("alice", "app2").Usage(); used != 6<<20 || quota != 10<<20 {
		t.Fatalf("usage on b: %d of %d", used, quota)
	}
	if err := b.Files("alice", "app2").CheckSize("g", 5<<20); !errors.Is(err, uploads.ErrQuotaExceeded) {
		t.Fatalf("CheckSize on b: %v", err)
	}
	w, err := b.Files("alice", "app2").CreateFile("g", os.O_WRONLY|os.O_CREATE, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(randBytes(t, 5<<20))
	cerr := w.Close()
	if !errors.Is(werr, uploads.ErrQuotaExceeded) || !errors.Is(cerr, uploads.ErrQuotaExceeded) {
		t.Fatalf("write past the quota on b: %v, close: %v", werr, cerr)
	}
	if p := pendingNames(t, b.Files("alice", "app2")); p != "" {
		t.Fatalf("pending after the refusal: %q", p)
	}
	// Another user is not counted.
	stage(t, b.Files("bob", "app2"), "g", randBytes(t, 5<<20))
}

// The expiry sweepers of two bridges remove an expired file once, and
// leave nothing of it in the store.
func TestExpirySweepTwoBridges(t *testing.T) {
	ep, bucket := newBucket(t)
	lim := uploads.Limits{Expiry: 2 * time.Second}
	a, b := open(t, ep, bucket, opts{lim: lim}), open(t, ep, bucket, opts{lim: lim})
	var expired atomic.Int64
	for _, s := range []*Store{a, b} {
		s.Observe(func(e uploads.Event) {
			if e.Kind == "expired" {
				expired.Add(1)
			}
		})
	}
	f := a.Files("u", "app")
	if err := f.Mkdir("dir", 0); err != nil {
		t.Fatal(err)
	}
	stage(t, f, "dir/f", randBytes(t, 100))
	stage(t, f, "g", randBytes(t, 100))
	deadline := time.Now().Add(20 * time.Second)
	for len(objects(t, ep, bucket)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("left after the expiry: %v", objects(t, ep, bucket))
		}
		time.Sleep(200 * time.Millisecond) // the sweepers run every second
	}
	if n := expired.Load(); n != 2 {
		t.Fatalf("%d expired events for 2 files", n)
	}
}

// Names: renames, chmod and utimes, directories, and the refusals.
func TestTreeOperations(t *testing.T) {
	ep, bucket := newBucket(t)
	a, b := open(t, ep, bucket, opts{}), open(t, ep, bucket, opts{})
	fa, fb := a.Files("u", "app"), b.Files("u", "app")
	if err := fa.Mkdir("d", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fa.Mkdir("d", 0); !errors.Is(err, uploads.ErrExist) {
		t.Fatalf("mkdir twice: %v", err)
	}
	if _, err := fa.CreateFile("nodir/f", os.O_CREATE|os.O_WRONLY, 0); !errors.Is(err, uploads.ErrNotExist) {
		t.Fatalf("create under a missing dir: %v", err)
	}
	stage(t, fa, "d/x.tmp", []byte("one"))
	if err := fb.Rename("d/x.tmp", "d/x"); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_600_000_000, 0)
	mode := os.FileMode(0o640)
	if err := fb.Setattr("d/x", uploads.Attrs{Mode: &mode, ModTime: &mt}); err != nil {
		t.Fatal(err)
	}
	e, err := fa.Stat("d/x")
	if err != nil || e.Size != 3 || e.Mode.Perm() != 0o640 || !e.ModTime.Equal(mt) {
		t.Fatalf("stat after rename and setattr: %+v, %v", e, err)
	}
	if _, err := fa.Stat("d/x.tmp"); !errors.Is(err, uploads.ErrNotExist) {
		t.Fatalf("old name: %v", err)
	}
	if err := fa.Rename("d", "e"); !errors.Is(err, uploads.ErrUnsupported) {
		t.Fatalf("rename a directory: %v", err)
	}
	if err := fa.Rmdir("d"); !errors.Is(err, uploads.ErrDirNotEmpty) {
		t.Fatalf("rmdir a full dir: %v", err)
	}
	es, err := fb.List("d")
	if err != nil || len(es) != 1 || es[0].Name != "d/x" {
		t.Fatalf("list d: %+v, %v", es, err)
	}
	// A new upload of a name replaces the old one.
	stage(t, fb, "d/x", []byte("second"))
	r, e, err := fa.OpenFile("d/x")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "second" || e.Size != 6 {
		t.Fatalf("after the replacement: %q %+v", got, e)
	}
	if err := fa.Remove("d/x"); err != nil {
		t.Fatal(err)
	}
	if err := fb.Rmdir("d"); err != nil {
		t.Fatal(err)
	}
	if p, err := fa.List(""); err != nil || len(p) != 0 {
		t.Fatalf("left: %+v, %v", p, err)
	}
	// A patch (open without O_TRUNC) starts from the pending file.
	stage(t, fa, "p", []byte("hello world"))
	w, err := fb.CreateFile("p", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("HELLO"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var c collect
	d, err := fa.DeliverFiles(context.Background(), c.send, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.files["p"]) != "HELLO world" {
		t.Fatalf("patched: %q", c.files["p"])
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, k := range objects(t, ep, bucket) {
		t.Errorf("object left: %s", k)
	}
}

// The spool bound refuses a write past it, clearly; nothing is pending.
func TestSpoolFull(t *testing.T) {
	ep, bucket := newBucket(t)
	s := open(t, ep, bucket, opts{spool: 1 << 20})
	w, err := s.Files("u", "a").CreateFile("f", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.WriteAt(make([]byte, 2<<20), 0)
	if !errors.Is(werr, uploads.ErrSpoolFull) {
		t.Fatalf("write past the spool: %v", werr)
	}
	if err := w.Close(); !errors.Is(err, uploads.ErrSpoolFull) {
		t.Fatalf("close: %v", err)
	}
	if s.spoolUsed.Load() != 0 {
		t.Fatalf("spool still counts %d bytes", s.spoolUsed.Load())
	}
	stage(t, s.Files("u", "a"), "g", make([]byte, 1<<20))
}

// The start's errors: a bad key file names the file; a missing bucket says so.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ content, want string }{
		{"not base64!", "want a 256-bit key"},
		{"c2hvcnQ=", "want a 256-bit key"},
	} {
		p := filepath.Join(dir, "key")
		os.WriteFile(p, []byte(c.content), 0o600)
		_, err := ReadKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.content) {
			t.Fatalf("key file %q: %v", c.content, err)
		}
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600)
	if k, err := ReadKeyFile(good); err != nil || len(k) != KeySize || k[31] != 31 {
		t.Fatalf("good key: %v", err)
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing key file read")
	}
	ep := testkit.SharedWeed(t).Endpoint
	_, err := Open(context.Background(), Config{URL: "s3://no-such-bucket-here/p", Key: testKey, SpoolDir: t.TempDir(), Client: testClient(t, ep)}, nil)
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket-here" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	// A store that does not answer at all: one line naming the bucket.
	l := testkit.FreePorts(t, 1)[0]
	_, err = Open(context.Background(), Config{URL: "s3://b/p", Key: testKey, SpoolDir: t.TempDir(),
		Client: testClient(t, "http://127.0.0.1:"+strconv.Itoa(l))}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), `staging store: bucket "b": `) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("store down: %v", err)
	}
	if _, err := Open(context.Background(), Config{URL: "http://x/y", Key: testKey, SpoolDir: t.TempDir()}, nil); err == nil {
		t.Fatal("a non-s3 URL opened")
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b":        "b|",
		"s3://b/":       "b|",
		"s3://b/p":      "b|p/",
		"s3://b/p/q/":   "b|p/q/",
		"s3:///p":       "error",
		"https://b/p":   "error",
		"s3://u:pw@b/p": "error",
		"s3://b/p?x=1":  "error",
	} {
		b, p, err := ParseURL(in)
		got := b + "|" + p
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// A delivery that takes longer than the lease keeps its files: the
// renewals hold the lease, so another bridge does not send them too.
func TestLeaseRenewedWhileDelivering(t *testing.T) {
	ep, bucket := newBucket(t)
	// Renewed every second: a loaded machine's slow requests stay well
	// within it.
	lease := 3 * time.Second
	a, b := open(t, ep, bucket, opts{lease: lease}), open(t, ep, bucket, opts{lease: lease})
	stage(t, a.Files("u", "app"), "f", []byte("slow"))
	inSend := make(chan struct{})
	release := make(chan struct{})
	var ca collect
	slow := func(ctx context.Context, name string, size int64, r io.Reader) error {
		close(inSend)
		<-release
		return ca.send(ctx, name, size, r)
	}
	done := make(chan error, 1)
	go func() {
		d, err := a.Files("u", "app").DeliverFiles(context.Background(), slow, nil)
		if err == nil {
			err = d.Commit()
		}
		done <- err
	}()
	<-inSend
	start := time.Now()
	var cb collect
	for time.Since(start) < 2*lease {
		d, err := b.Files("u", "app").DeliverFiles(context.Background(), cb.send, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Files()) != 0 {
			t.Fatalf("b delivered %v while a's delivery runs", d.Files())
		}
		time.Sleep(200 * time.Millisecond) // b's sessions keep coming while a's delivery outlives its lease
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ca.sends.Load() != 1 || cb.sends.Load() != 0 {
		t.Fatalf("sends: a %d, b %d", ca.sends.Load(), cb.sends.Load())
	}
	if p := pendingNames(t, b.Files("u", "app")); p != "" {
		t.Fatalf("pending after a's commit: %q", p)
	}
}

// A name whose keys would pass S3's 1024 bytes is refused as an invalid
// name; one just under is kept, and its key parses back to it.
func TestKeyLength(t *testing.T) {
	s := &Store{prefix: "prefix/"}
	k := scopeKey{hashName("u"), hashName("a")}
	long := strings.Repeat("x", 250) + "/" + strings.Repeat("y", 250) + "/" + strings.Repeat("z", 200)
	if err := s.checkKeyLen(k, long); !errors.Is(err, uploads.ErrInvalidName) {
		t.Fatalf("%d bytes: %v", len(long), err)
	}
	ok := strings.Repeat("x", 250) + "/" + strings.Repeat("y", 250) + "/" + strings.Repeat("é", 50)
	if err := s.checkKeyLen(k, ok); err != nil {
		t.Fatalf("%d bytes: %v", len(ok), err)
	}
	f := &fileEnt{name: ok, created: time.Unix(0, 1234), id: strings.Repeat("ab", 16), size: 99, mode: 0o640, mtime: time.Unix(-5, 0)}
	key := s.fileKey(k, f)
	got, _, parsed := parseKey(key, strings.TrimPrefix(key, s.scopePrefix(k)))
	if !parsed || got.name != ok || !got.created.Equal(f.created) || got.id != f.id || got.size != 99 || got.mode != 0o640 || !got.mtime.Equal(f.mtime) {
		t.Fatalf("parsed %+v from %s", got, key)
	}
}

// Deliveries of one scope through one Store run one after the other, and
// a scope no one delivers is forgotten.
func TestDeliveriesTakeTurns(t *testing.T) {
	ep, bucket := newBucket(t)
	s := open(t, ep, bucket, opts{})
	stage(t, s.Files("u", "app"), "f", []byte("x"))
	var c collect
	d, err := s.Files("u", "app").DeliverFiles(context.Background(), c.send, nil)
	if err != nil || len(d.Files()) != 1 {
		t.Fatalf("first: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Files("u", "app").DeliverFiles(ctx, c.send, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second while the first runs: %v", err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	d2, err := s.Files("u", "app").DeliverFiles(context.Background(), c.send, nil)
	if err != nil || len(d2.Files()) != 0 {
		t.Fatalf("after the commit: %v, %v", d2, err)
	}
	d2.Commit()
	s.mu.Lock()
	n := len(s.delivering)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d turns kept", n)
	}
}
