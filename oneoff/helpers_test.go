package oneoff

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// makeJWT builds an unsigned-looking JWT with the given expiry; the client
// never verifies signatures.
func makeJWT(exp time.Time) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"test","exp":%d}`, exp.Unix())))
	return head + "." + body + "." + enc.EncodeToString([]byte("signature"))
}

// checkGoroutines fails the test if goroutines started during it are still
// there once its other cleanups ran. Call it first in a test.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

const attachPath = "/attach/s3cr3t-token"

// fake is an in-process server of the API and the attach service whose
// every route can be replaced by a test.
type fake struct {
	srv *httptest.Server

	exchange, run, operation, files, connect, resize, wait http.HandlerFunc

	mu        sync.Mutex
	exchanges int
	polls     int
	runBody   map[string]any
	runAuth   string
}

func newFake(t *testing.T) *fake {
	return newFakeServer(t, false)
}

func newFakeServer(t *testing.T, useTLS bool) *fake {
	t.Helper()
	f := &fake{}
	f.exchange = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"token": makeJWT(time.Now().Add(time.Hour))})
	}
	f.run = func(w http.ResponseWriter, r *http.Request) {
		u := f.srv.URL + "/v1/apps/app/operations/op-1"
		w.Header().Set("Location", u)
		writeJSON(w, 200, map[string]any{
			"container":     map[string]any{"id": "ct-1", "label": "one-off-1", "state": "booting"},
			"operation_url": u,
			"operation":     "op-1",
		})
	}
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, doneOperation(f.srv.URL+attachPath, nil))
	}
	f.files = func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
	}
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}
	f.resize = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }
	f.wait = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]int{"exit_code": 0})
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case r.Method == "POST" && p == "/v1/tokens/exchange":
			f.mu.Lock()
			f.exchanges++
			f.mu.Unlock()
			f.exchange(w, r)
		case r.Method == "POST" && strings.HasPrefix(p, "/v1/apps/") && strings.HasSuffix(p, "/run"):
			var body map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			f.mu.Lock()
			f.runBody, f.runAuth = body, r.Header.Get("Authorization")
			f.mu.Unlock()
			f.run(w, r)
		case r.Method == "GET" && strings.Contains(p, "/operations/"):
			f.mu.Lock()
			f.polls++
			f.mu.Unlock()
			f.operation(w, r)
		case r.Method == "POST" && p == attachPath+"/files":
			f.files(w, r)
		case r.Method == "CONNECT" && p == attachPath:
			f.connect(w, r)
		case r.Method == "PUT" && p == attachPath:
			f.resize(w, r)
		case r.Method == "GET" && p == attachPath+"/wait":
			f.wait(w, r)
		default:
			http.Error(w, `{"error":"no route"}`, 404)
		}
	})
	if useTLS {
		f.srv = httptest.NewTLSServer(handler)
	} else {
		f.srv = httptest.NewServer(handler)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func doneOperation(attachURL string, tty *bool) map[string]any {
	data := map[string]any{"attach_url": attachURL, "container_id": "ct-1"}
	if tty != nil {
		data["tty"] = *tty
	}
	return map[string]any{"operation": map[string]any{
		"id": "op-1", "type": "start-one-off", "status": "done", "error": "",
		"created_at": time.Now().Format(time.RFC3339), "finished_at": time.Now().Format(time.RFC3339),
		"start_one_off_data": data,
	}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// client returns a client of f, adjusted by mod.
func (f *fake) client(t *testing.T, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{APIURL: f.srv.URL, APIToken: "tk-us-test", StartTimeout: 5 * time.Second}
	if f.srv.TLS != nil {
		cfg.HTTP = f.srv.Client()
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func (f *fake) counts() (exchanges, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges, f.polls
}

// hijack takes over the connection of a CONNECT request.
func hijack(t *testing.T, w http.ResponseWriter) (net.Conn, *bufio.ReadWriter) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return nil, nil
	}
	return conn, brw
}
