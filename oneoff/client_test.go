package oneoff

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, c *Client, req RunRequest) *OneOff {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if req.App == "" {
		req.App = "app"
	}
	o, err := c.Start(ctx, req)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return o
}

func TestRunBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     RunRequest
		wantTTY any // nil: absent
		size    string
	}{
		{"pipe", RunRequest{Command: "echo 'a  b'", Env: map[string]string{"TERM": "xterm"}}, false, "M"},
		{"terminal", RunRequest{Command: "bash", TTY: true, Size: "L"}, nil, "L"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			c := f.client(t, nil)
			start(t, c, tc.req)
			f.mu.Lock()
			body, auth := f.runBody, f.runAuth
			f.mu.Unlock()
			if body["command"] != tc.req.Command {
				t.Errorf("command = %q, want %q", body["command"], tc.req.Command)
			}
			if body["size"] != tc.size || body["detached"] != false || body["has_uploads"] != false {
				t.Errorf("body = %v", body)
			}
			if _, ok := body["env"].(map[string]any); !ok {
				t.Errorf("env = %#v, want an object", body["env"])
			}
			tty, ok := body["tty"]
			if tc.wantTTY == nil && ok || tc.wantTTY != nil && tty != tc.wantTTY {
				t.Errorf("tty = %v (present %v), want %v", tty, ok, tc.wantTTY)
			}
			if !strings.HasPrefix(auth, "Bearer ") || strings.Count(auth, ".") != 2 {
				t.Errorf("Authorization = %q, want a Bearer JWT", auth)
			}
		})
	}
}

func TestOperationURLSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(f *fake) http.HandlerFunc
	}{
		{"location header only", func(f *fake) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/v1/apps/app/operations/op-1")
				writeJSON(w, 200, map[string]any{"container": map[string]any{"label": "one-off-7"}})
			}
		}},
		{"operation id only", func(f *fake) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, map[string]any{"container": map[string]any{}, "operation": "op-1"})
			}
		}},
		{"body url wins over a bad header", func(f *fake) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "ftp://elsewhere/x")
				writeJSON(w, 200, map[string]any{"operation_url": f.srv.URL + "/v1/apps/app/operations/op-1"})
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.run = tc.run(f)
			o := start(t, f.client(t, nil), RunRequest{TTY: true})
			if o.ContainerID() != "ct-1" {
				t.Errorf("ContainerID = %q", o.ContainerID())
			}
			if _, polls := f.counts(); polls != 1 {
				t.Errorf("polls = %d, want 1", polls)
			}
		})
	}
}

func TestPollingBackOff(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	var times []time.Time
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n < 6 {
			writeJSON(w, 200, map[string]any{"operation": map[string]any{"status": "pending", "finished_at": nil}})
			return
		}
		writeJSON(w, 200, doneOperation(f.srv.URL+attachPath, nil))
	}
	var runAt time.Time
	run := f.run
	f.run = func(w http.ResponseWriter, r *http.Request) { runAt = time.Now(); run(w, r) }
	start(t, f.client(t, nil), RunRequest{})
	mu.Lock()
	defer mu.Unlock()
	if d := times[0].Sub(runAt); d > 20*time.Millisecond {
		t.Errorf("first poll %v after the run, want at once", d)
	}
	// Gaps of at least 25, 50, 100, 200, 400 ms: a back-off, not a hammer.
	for i := 1; i < len(times); i++ {
		if gap, least := times[i].Sub(times[i-1]), firstDelay<<(i-1); gap < least {
			t.Errorf("gap %d is %v, want at least %v", i, gap, least)
		}
	}
	if total := times[len(times)-1].Sub(times[0]); total > 3*time.Second {
		t.Errorf("6 polls took %v", total)
	}
}

func TestPollRateLimitRetried(t *testing.T) {
	f := newFake(t)
	n := 0
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, 429, map[string]string{"error": "slow down"})
			return
		}
		writeJSON(w, 200, doneOperation(f.srv.URL+attachPath, nil))
	}
	start(t, f.client(t, nil), RunRequest{})
}

func TestPipeModeOnlyWhenEchoed(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		name      string
		req       bool // TTY
		container *bool
		data      *bool
		want      bool
	}{
		{"no echo", false, nil, nil, false},
		{"echo in container", false, &no, nil, true},
		{"echo in data", false, nil, &no, true},
		{"echo in both", false, &no, &no, true},
		{"contradicted", false, &no, &yes, false},
		{"terminal asked", true, &no, &no, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.run = func(w http.ResponseWriter, r *http.Request) {
				ct := map[string]any{"id": "ct-1"}
				if tc.container != nil {
					ct["tty"] = *tc.container
				}
				writeJSON(w, 200, map[string]any{"container": ct, "operation": "op-1"})
			}
			f.operation = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, doneOperation(f.srv.URL+attachPath, tc.data))
			}
			o := start(t, f.client(t, nil), RunRequest{TTY: tc.req})
			if o.PipeMode() != tc.want {
				t.Errorf("PipeMode = %v, want %v", o.PipeMode(), tc.want)
			}
		})
	}
}

func TestTokenCachedAndShared(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	var basic string
	exchange := f.exchange
	f.exchange = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		basic = r.Header.Get("Authorization")
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		if string(b) != "{}" {
			t.Errorf("exchange body %q, want {}", b)
		}
		time.Sleep(20 * time.Millisecond) // let concurrent callers pile up
		exchange(w, r)
	}
	c := f.client(t, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Start(context.Background(), RunRequest{App: "app"}); err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	wg.Wait()
	if n, _ := f.counts(); n != 1 {
		t.Errorf("%d exchanges for 8 concurrent starts, want 1", n)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(":tk-us-test")); basic != want {
		t.Errorf("exchange Authorization = %q, want %q", basic, want)
	}
}

func TestTokenReexchangedNearExpiry(t *testing.T) {
	f := newFake(t)
	f.exchange = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"token": makeJWT(time.Now().Add(4 * time.Minute))})
	}
	c := f.client(t, func(c *Config) { c.AuthURL = f.srv.URL + "/" })
	start(t, c, RunRequest{})
	start(t, c, RunRequest{})
	// run + poll, twice, each with a token of less than 5 minutes.
	if n, _ := f.counts(); n != 4 {
		t.Errorf("%d exchanges, want 4", n)
	}
}

func TestAttachRequestAndEarlyBytes(t *testing.T) {
	f := newFake(t)
	type seen struct{ line, auth string }
	got := make(chan seen, 1)
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		conn, brw := hijack(t, w)
		if conn == nil {
			return
		}
		defer conn.Close()
		got <- seen{r.Method + " " + r.RequestURI + " " + r.Proto, r.Header.Get("Authorization")}
		// Output in the same write as the headers: must not be lost.
		conn.Write([]byte("HTTP/1.1 200 OK\r\n\r\nearly bytes|"))
		in, _ := brw.ReadString(0x04)
		conn.Write([]byte("got " + strings.TrimSuffix(in, "\x04")))
	}
	o := start(t, f.client(t, nil), RunRequest{TTY: true})
	s, err := o.Attach(context.Background())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	s.Write([]byte("hello"))
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	out, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(out) != "early bytes|got hello" {
		t.Errorf("output %q", out)
	}
	sn := <-got
	if sn.line != "CONNECT "+attachPath+" HTTP/1.1" {
		t.Errorf("request line %q", sn.line)
	}
	if !strings.HasPrefix(sn.auth, "Basic ") {
		t.Errorf("attach Authorization %q", sn.auth)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sn.auth, "Basic "))
	if !strings.HasPrefix(string(raw), ":") || strings.Count(string(raw), ".") != 2 {
		t.Errorf("attach credentials %q, want \":\"+JWT", raw)
	}
}

// pipeEcho serves a CONNECT that echoes its input back and closes after the
// client's half-close.
func pipeEcho(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, brw := hijack(t, w)
		if conn == nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}
}

func testPipeRoundTrip(t *testing.T, useTLS bool) {
	f := newFakeServer(t, useTLS)
	no := false
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, doneOperation(f.srv.URL+attachPath, &no))
	}
	f.connect = pipeEcho(t)
	o := start(t, f.client(t, nil), RunRequest{})
	if !o.PipeMode() {
		t.Fatal("pipe mode not granted")
	}
	s, err := o.Attach(context.Background())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	data := make([]byte, 1<<20)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	out, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(out) != sha256.Sum256(data) {
		t.Errorf("round trip differs: %d bytes back of %d", len(out), len(data))
	}
}

func TestPipeModeHalfClose(t *testing.T)    { testPipeRoundTrip(t, false) }
func TestPipeModeHalfCloseTLS(t *testing.T) { testPipeRoundTrip(t, true) }

func TestUploadMultipart(t *testing.T) {
	f := newFake(t)
	type part struct {
		disposition, ctype, name string
		data                     []byte
		length                   int64
		chunked                  bool
	}
	got := make(chan part, 1)
	f.files = func(w http.ResponseWriter, r *http.Request) {
		p := part{length: r.ContentLength, chunked: len(r.TransferEncoding) > 0}
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mr := multipart.NewReader(r.Body, params["boundary"])
		pt, err := mr.NextRawPart()
		if err != nil {
			t.Errorf("multipart: %v", err)
			w.WriteHeader(400)
			return
		}
		p.disposition, p.ctype, p.name = pt.Header.Get("Content-Disposition"), pt.Header.Get("Content-Type"), pt.FormName()
		p.data, _ = io.ReadAll(pt)
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("more than one part: %v", err)
		}
		got <- p
		w.WriteHeader(200)
	}
	o := start(t, f.client(t, nil), RunRequest{})
	data := make([]byte, 300_000)
	rand.Read(data)
	// A reader of unknown length: the client must still send a Content-Length.
	if err := o.Upload(context.Background(), `dir/sub/my "file".bin`, int64(len(data)), io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	p := <-got
	if p.chunked || p.length <= int64(len(data)) {
		t.Errorf("body length %d chunked %v, want a Content-Length", p.length, p.chunked)
	}
	if p.name != "file" || p.ctype != "application/octet-stream" {
		t.Errorf("part name %q type %q", p.name, p.ctype)
	}
	_, params, err := mime.ParseMediaType(p.disposition)
	if err != nil || params["filename"] != `dir/sub/my "file".bin` {
		t.Errorf("Content-Disposition %q: filename %q (%v)", p.disposition, params["filename"], err)
	}
	if !bytes.Equal(p.data, data) {
		t.Errorf("content differs")
	}
}

func TestUploadSourceSizeMismatch(t *testing.T) {
	f := newFake(t)
	o := start(t, f.client(t, nil), RunRequest{})
	err := o.Upload(context.Background(), "f", 10, strings.NewReader("short"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short source: %v, want io.ErrUnexpectedEOF", err)
	}
	err = o.Upload(context.Background(), "f", 2, strings.NewReader("longer"))
	if err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("long source: %v", err)
	}
	err = o.Upload(context.Background(), "a\r\nX-Evil: 1", 0, strings.NewReader(""))
	if !errors.Is(err, ErrUploadRefused) {
		t.Errorf("header-breaking name: %v, want ErrUploadRefused", err)
	}
	if err := o.Upload(context.Background(), "empty", 0, strings.NewReader("")); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestResizeBody(t *testing.T) {
	f := newFake(t)
	got := make(chan string, 2)
	f.resize = func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
		w.WriteHeader(200)
	}
	o := start(t, f.client(t, nil), RunRequest{TTY: true})
	if err := o.Resize(context.Background(), 0, 0); err != nil {
		t.Fatalf("Resize 0x0: %v", err)
	}
	if err := o.Resize(context.Background(), 80, 25); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if b := <-got; b != `{"width":"80","height":"25"}` {
		t.Errorf("resize body %s", b)
	}
	if len(got) != 0 {
		t.Errorf("a 0x0 size was sent")
	}
}

func TestWaitLenient(t *testing.T) {
	f := newFake(t)
	f.wait = func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"exit_code": "3", "signal": "none"}`))
	}
	o := start(t, f.client(t, nil), RunRequest{})
	code, err := o.Wait(context.Background())
	if err != nil || code != 3 {
		t.Errorf("Wait = %d, %v; want 3", code, err)
	}
}

func TestAttachURLWithoutPort(t *testing.T) {
	u, err := parseAttachURL("https://attach.example.com/tok")
	if err != nil || u.Host != "attach.example.com:443" {
		t.Errorf("got %v, %v", u, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{APIToken: "x"},
		{APIURL: "ftp://x", APIToken: "x"},
		{APIURL: "http://x"},
		{APIURL: "http://x", APIToken: "x", AuthURL: "nope"},
		{APIURL: "http://x", APIToken: "x", StartTimeout: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestRevokedCachedTokenReexchanged(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	serial := 0
	f.exchange = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serial++
		// Distinct tokens: the expiry differs by a second each time.
		tok := makeJWT(time.Now().Add(time.Hour + time.Duration(serial)*time.Second))
		mu.Unlock()
		writeJSON(w, 200, map[string]string{"token": tok})
	}
	revoked := ""
	run := f.run
	f.run = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		refuse := revoked != "" && r.Header.Get("Authorization") == revoked
		mu.Unlock()
		if refuse {
			writeJSON(w, 401, map[string]string{"error": "token revoked"})
			return
		}
		run(w, r)
	}
	c := f.client(t, nil)
	start(t, c, RunRequest{})
	mu.Lock()
	revoked = f.runAuth // as after a restart of the platform
	mu.Unlock()
	start(t, c, RunRequest{})
	if n, _ := f.counts(); n != 2 {
		t.Errorf("%d exchanges, want 2", n)
	}
}

func TestNoSecretInLogsOrErrors(t *testing.T) {
	f := newFake(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	h := slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})
	c := f.client(t, func(c *Config) { c.Logger = slog.New(h) })
	o := start(t, c, RunRequest{TTY: true})
	if err := o.Upload(context.Background(), "f", 1, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	s, err := o.Attach(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	o.Resize(context.Background(), 80, 24)
	o.Wait(context.Background())
	f.wait = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	_, werr := o.Wait(context.Background())
	f.srv.CloseClientConnections()
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("nothing logged at debug level")
	}
	tok, _ := c.bearer(context.Background())
	for _, secret := range []string{"tk-us-test", tok, "s3cr3t"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(werr.Error(), secret) {
			t.Errorf("secret %q in logs or errors:\n%s\n%v", secret, logs.String(), werr)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
