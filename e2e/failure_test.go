package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

const canaryToken = "tk-us-canary-0123456789abcdef"

// startPlatform runs `bridge platform` as its own process and returns its URL.
func startPlatform(t *testing.T, args ...string) string {
	t.Helper()
	return startPlatformProcess(t, args...).url
}

func remoteBridge(t *testing.T, apiURL string, args ...string) *Bridge {
	return StartBridge(t, Options{
		Args: append([]string{"--api-url", apiURL}, args...),
		Env:  []string{"ONEOFF_API_TOKEN=" + canaryToken},
	})
}

// A platform that answers 500 for one app: that app's users get one clear
// line and the bridge's exit code, and the bridge goes on serving the
// others. The platform's token never reaches the log.
func TestPlatformErrorOneApp(t *testing.T) {
	real, err := url.Parse(startPlatform(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(real)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/apps/down-app/") {
			http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	b := remoteBridge(t, front.URL)

	r := b.Run("down-app", nil, "echo never")
	if r.Code != 242 || r.Stderr != "The platform is unavailable; try again later.\n" || r.Stdout != "" {
		t.Fatalf("down-app: %+v", r)
	}
	r = b.Run("demo-app", nil, "echo still serving")
	if r.Code != 0 || r.Stdout != "still serving\n" {
		t.Fatalf("demo-app after the failure: %+v", r)
	}
	if strings.Contains(b.Log(), canaryToken) {
		t.Fatal("the API token appears in the bridge's log")
	}
	jwtLike := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`)
	if jwtLike.MatchString(b.Log()) {
		t.Fatal("a bearer token appears in the bridge's log")
	}
}

func TestPlatformUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	b := remoteBridge(t, "http://"+addr)
	for range 2 {
		r := b.Run("demo-app", nil, "true")
		if r.Code != 242 || r.Stderr != "The platform is unavailable; try again later.\n" {
			t.Fatalf("got %+v", r)
		}
	}
	if !b.LogHas("session failed") {
		t.Fatalf("the cause should be in the log:\n%s", b.Log())
	}
}

// fakePlatform answers the token exchange and run, then reports the
// operation as failed: a fault the embedded platform does not produce.
func TestOperationError(t *testing.T) {
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens/exchange", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"token": "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9."})
	})
	mux.HandleFunc("POST /v1/apps/{app}/run", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"container":     map[string]any{"id": "c1", "type": "one-off", "label": "one-off-1", "state": "booting"},
			"operation_url": base + "/v1/apps/demo-app/operations/op1",
		})
	})
	mux.HandleFunc("GET /v1/apps/{app}/operations/{id}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"operation": map[string]any{
			"id": "op1", "status": "error", "error": "no capacity left in region", "type": "start-one-off", "finished_at": nil,
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	b := remoteBridge(t, srv.URL)
	r := b.Run("demo-app", nil, "true")
	if r.Code != 244 || r.Stderr != "The one-off container failed to start: no capacity left in region\n" {
		t.Fatalf("got %+v", r)
	}
}

func TestInactivityTimeout(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--platform-inactivity-timeout", "2s"}})
	start := time.Now()
	r := b.Run("demo-app", nil, "sleep 60")
	if r.Code != 246 || r.Stderr != "The platform stopped the one-off container after a period of inactivity.\n" {
		t.Fatalf("got %+v", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestQuotaRefusal(t *testing.T) {
	// A refused session waits for a slot up to --start-timeout (slot_wait_test.go).
	b := StartBridge(t, Options{Args: []string{"--platform-app-quota", "1", "--start-timeout", "1s"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := b.SSH(ctx, "demo-app", nil, "sleep 7777.5")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	waitFor(t, 30*time.Second, "first one-off running", func() bool { return len(findProcesses("sleep 7777.5")) > 0 })
	r := b.Run("demo-app", nil, "true")
	if r.Code != 243 || !strings.HasPrefix(r.Stderr, "The platform refused to start another one-off container for demo-app") {
		t.Fatalf("got %+v", r)
	}
	cancel()
}
