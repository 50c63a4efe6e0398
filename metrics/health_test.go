package metrics

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sshbridge/oneoff"
	"sshbridge/uploads"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestReadyThenDraining(t *testing.T) {
	store, err := uploads.Open(t.TempDir(), uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var pings atomic.Int32
	h := &Health{Staging: store.CheckWritable, Platform: func(context.Context) error { pings.Add(1); return nil }}
	srv := httptest.NewServer(Handler(New("test", store.Pending), h))
	defer srv.Close()
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	for range 3 {
		if code, body := get(t, srv.URL+"/readyz"); code != 200 || body != "ready\n" {
			t.Fatalf("/readyz: %d %q", code, body)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("the platform was asked %d times for 3 probes within the cache time, want 1", n)
	}
	h.SetDraining()
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz while draining: %d, want 200: the process is alive", code)
	}
}

func TestNotReadyWhenStagingUnwritable(t *testing.T) {
	dir := t.TempDir()
	store, err := uploads.Open(dir, uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h := &Health{Staging: store.CheckWritable, Cache: time.Nanosecond}
	srv := httptest.NewServer(Handler(nil, h))
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	// Where transfers are written is gone (root ignores modes): no new
	// upload could be taken.
	if err := os.RemoveAll(filepath.Join(dir, "staging")); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "staging area not writable") {
		t.Fatalf("/readyz without a writable staging area: %d %q", code, body)
	}
}

func TestNotReadyWhenPlatformDown(t *testing.T) {
	h := &Health{Cache: time.Nanosecond, Platform: func(context.Context) error {
		return &oneoff.APIError{Op: "ping", Kind: oneoff.ErrUnreachable, Err: errors.New("dial tcp http://secret.example/: refused")}
	}}
	srv := httptest.NewServer(Handler(nil, h))
	defer srv.Close()
	code, body := get(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(body, "platform: unreachable") || strings.Contains(body, "secret") {
		t.Fatalf("/readyz with the platform down: %d %q; want 503, its kind, not its URL", code, body)
	}
}

// TestPingAgainstPlatform pings an API of PROTOCOL.md through the real
// client: the token exchange, then GET /v1/users/self with the bearer.
func TestPingAgainstPlatform(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d}`, time.Now().Add(time.Hour).Unix()))
	jwt := "e30." + payload + ".sig"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/tokens/exchange":
			fmt.Fprintf(w, `{"token":%q}`, jwt)
		case "/v1/users/self":
			if r.Header.Get("Authorization") != "Bearer "+jwt {
				w.WriteHeader(401)
				return
			}
			io.WriteString(w, `{"user":{"id":"1"}}`)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	c, err := oneoff.New(oneoff.Config{APIURL: srv.URL, APIToken: "tk-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	srv.Close()
	if err := c.Ping(context.Background()); !errors.Is(err, oneoff.ErrUnreachable) {
		t.Fatalf("ping of a closed server: %v, want ErrUnreachable", err)
	}
}
