package objstage

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"sshbridge/uploads"
)

// faultProxy stands in front of the real store and fails the requests
// fail selects with 500: the faults the real store does not make.
type faultProxy struct {
	srv  *httptest.Server
	fail atomic.Pointer[func(*http.Request) bool]
	hits atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := p.fail.Load(); f != nil && (*f)(r) {
			p.hits.Add(1)
			http.Error(w, "<Error><Code>InternalError</Code><Message>injected</Message></Error>", http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) failWhen(f func(*http.Request) bool) { p.fail.Store(&f) }

func isBlobWrite(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/b/")
}

// The store fails the parts while a transfer runs: the writes fail with
// a clear error, the close too, and nothing is pending; once the store is
// back, uploads work again.
func TestStoreFailsDuringUpload(t *testing.T) {
	ep, bucket := newBucket(t)
	p := newFaultProxy(t, ep)
	s := open(t, ep, bucket, opts{ep: p.srv.URL})
	f := s.Files("u", "app")
	p.failWhen(isBlobWrite)
	w, err := f.CreateFile("f", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	cerr := w.Close()
	if !errors.Is(cerr, uploads.ErrStoreUnavailable) || !strings.Contains(cerr.Error(), `"f"`) {
		t.Fatalf("close: %v", cerr)
	}
	if werr != nil && !errors.Is(werr, uploads.ErrStoreUnavailable) {
		t.Fatalf("write: %v", werr)
	}
	if p.hits.Load() == 0 {
		t.Fatal("no request failed")
	}
	p.failWhen(func(*http.Request) bool { return false })
	if got := pendingNames(t, f); got != "" {
		t.Fatalf("pending after a failed store: %q", got)
	}
	stage(t, f, "g", []byte("back"))
	if got := pendingNames(t, f); got != "g" {
		t.Fatalf("pending once back: %q", got)
	}
}

// A store down at Close (a small file is one PutObject there) gives the
// close its clear error, and the file is not pending.
func TestStoreDownAtClose(t *testing.T) {
	ep, bucket := newBucket(t)
	p := newFaultProxy(t, ep)
	s := open(t, ep, bucket, opts{ep: p.srv.URL})
	f := s.Files("u", "app")
	w, err := f.CreateFile("small", os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	p.failWhen(func(*http.Request) bool { return true })
	err = w.Close()
	if !errors.Is(err, uploads.ErrStoreUnavailable) {
		t.Fatalf("close with the store down: %v", err)
	}
	if _, err := f.Pending(); !errors.Is(err, uploads.ErrStoreUnavailable) {
		t.Fatalf("pending with the store down: %v", err)
	}
	if err := s.CheckWritable(); err == nil {
		t.Fatal("ready with the store down")
	}
	p.failWhen(func(*http.Request) bool { return false })
	if got := pendingNames(t, f); got != "" {
		t.Fatalf("pending: %q", got)
	}
}
