package oneoff

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Each fault ends in a typed error within its deadline and leaves no
// goroutine behind.

func TestFaultRunStatuses(t *testing.T) {
	for _, tc := range []struct {
		status  int
		body    string
		kind    error
		message string
	}{
		{500, `oops`, ErrUnreachable, "oops"},
		{503, ``, ErrUnreachable, ""},
		{401, `{"error":"invalid token"}`, ErrUnauthorized, "invalid token"},
		{404, `{"resource":"app","error":"not found"}`, ErrAppNotFound, "not found"},
		{422, `{"errors":{"command":["can't be blank"],"size":["is invalid","too big"]}}`, ErrInvalid, "command can't be blank; size is invalid, too big"},
		{429, `{"error":"rate limit"}`, ErrQuota, "rate limit"},
		{402, `{"error":"pay"}`, ErrQuota, "pay"},
		{403, `{"error":"too many one-offs"}`, ErrQuota, "too many one-offs"},
		{409, `{"error":"busy"}`, ErrQuota, "busy"},
		{418, `{}`, ErrMalformed, ""},
		{302, ``, ErrMalformed, ""},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			checkGoroutines(t)
			f := newFake(t)
			f.run = func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}
			// A 429 is asked again until StartTimeout (slot_wait_test.go).
			c := f.client(t, func(c *Config) { c.StartTimeout = 300 * time.Millisecond })
			_, err := c.Start(context.Background(), RunRequest{App: "app"})
			var ae *APIError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ae) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if ae.Status != tc.status || ae.Message != tc.message || ae.Op != "run" {
				t.Errorf("got %+v, want status %d message %q", ae, tc.status, tc.message)
			}
		})
	}
}

func TestFaultTokenExchange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle http.HandlerFunc
		kind   error
	}{
		{"401", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 401, map[string]string{"error": "bad api token"})
		}, ErrUnauthorized},
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, ErrUnreachable},
		{"not json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, ErrMalformed},
		{"not a jwt", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"token":"abc"}`)) }, ErrMalformed},
		{"no exp", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}`))
		}, ErrMalformed},
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token":"` + strings.Repeat("a", 2<<20) + `"}`))
		}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			f := newFake(t)
			f.exchange = tc.handle
			_, err := f.client(t, nil).Start(context.Background(), RunRequest{App: "app"})
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
		})
	}
}

func TestFaultMalformedAnswers(t *testing.T) {
	big := `{"operation":{"status":"pending","error":"` + strings.Repeat("x", 1<<20) + `"}}`
	for _, tc := range []struct {
		name      string
		run, poll string
	}{
		{"run not json", `{"container":`, ""},
		{"run json array", `[1,2]`, ""},
		{"run no operation", `{"container":{"id":"x"}}`, ""},
		{"run oversized", `{"container":{"id":"` + strings.Repeat("x", 2<<20) + `"},"operation":"op-1"}`, ""},
		{"operation not json", "", `{"operation":{"status":"do`},
		{"operation oversized", "", big},
		{"operation no status", "", `{"operation":{"id":"x"}}`},
		{"operation null", "", `{"operation":null}`},
		{"done without attach url", "", `{"operation":{"status":"done","start_one_off_data":{}}}`},
		{"done with a bad attach url", "", `{"operation":{"status":"done","start_one_off_data":{"attach_url":"unix:/x"}}}`},
		{"done with a numeric attach url", "", `{"operation":{"status":"done","start_one_off_data":{"attach_url":5}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			f := newFake(t)
			if tc.run != "" {
				f.run = func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.run)) }
			}
			if tc.poll != "" {
				f.operation = func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.poll)) }
			}
			_, err := f.client(t, nil).Start(context.Background(), RunRequest{App: "app"})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestFaultOperationNeverDone(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"operation": map[string]any{"status": "running", "finished_at": nil}})
	}
	c := f.client(t, func(c *Config) { c.StartTimeout = 400 * time.Millisecond })
	begin := time.Now()
	_, err := c.Start(context.Background(), RunRequest{App: "app"})
	took := time.Since(begin)
	if !errors.Is(err, ErrStartTimeout) {
		t.Fatalf("err = %v, want ErrStartTimeout", err)
	}
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("gave up after %v, want about 400ms", took)
	}
	if !strings.Contains(err.Error(), "running") {
		t.Errorf("error %q does not say the last status", err)
	}
}

func TestFaultOperationHungPollCancelled(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.operation = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	c := f.client(t, func(c *Config) { c.StartTimeout = 300 * time.Millisecond })
	begin := time.Now()
	_, err := c.Start(context.Background(), RunRequest{App: "app"})
	if !errors.Is(err, ErrStartTimeout) {
		t.Fatalf("hung poll: err = %v, want ErrStartTimeout", err)
	}
	if took := time.Since(begin); took > 1500*time.Millisecond {
		t.Errorf("gave up after %v", took)
	}

	// The caller's ctx cancels polling: its cause, not a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c = f.client(t, nil)
	_, err = c.Start(ctx, RunRequest{App: "app"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStartTimeout) {
		t.Fatalf("cancelled: err = %v, want the ctx's deadline", err)
	}
}

func TestFaultOperationError(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.operation = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"operation": map[string]any{
			"status": "error", "error": "image pull failed:\n\x1b[31mno space\x1b[0m", "finished_at": time.Now()}})
	}
	_, err := f.client(t, nil).Start(context.Background(), RunRequest{App: "app"})
	var ae *APIError
	if !errors.Is(err, ErrOperationFailed) || !errors.As(err, &ae) {
		t.Fatalf("err = %v, want ErrOperationFailed", err)
	}
	if ae.Message != "image pull failed: [31mno space [0m" {
		t.Errorf("message %q", ae.Message)
	}
}

func TestFaultUnreachable(t *testing.T) {
	checkGoroutines(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Config{APIURL: "http://" + addr, APIToken: "tk"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	_, err = c.Start(context.Background(), RunRequest{App: "app"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestFaultAttachService(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(f *fake)
		call   func(ctx context.Context, o *OneOff) error
		kind   error
		status int
	}{
		{"connect refused", func(f *fake) {
			f.connect = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 409, map[string]string{"error": "already attached"})
			}
		}, attachOnly, ErrAttachRefused, 409},
		{"connect 502", func(f *fake) {
			f.connect = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }
		}, attachOnly, ErrUnreachable, 502},
		{"connect garbage", func(f *fake) {
			f.connect = func(w http.ResponseWriter, r *http.Request) {
				conn, _ := hijack(t, w)
				conn.Write([]byte("SSH-2.0-nope\r\n\r\n"))
				conn.Close()
			}
		}, attachOnly, ErrMalformed, 0},
		{"connect closed", func(f *fake) {
			f.connect = func(w http.ResponseWriter, r *http.Request) {
				conn, _ := hijack(t, w)
				conn.Close()
			}
		}, attachOnly, ErrUnreachable, 0},
		{"upload 413", func(f *fake) {
			f.files = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 413, map[string]string{"error": "file too large"})
			}
		}, uploadSmall, ErrUploadRefused, 413},
		{"upload 201", func(f *fake) {
			f.files = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }
		}, uploadSmall, ErrUploadRefused, 201},
		{"upload 500", func(f *fake) {
			f.files = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
		}, uploadSmall, ErrUnreachable, 500},
		{"resize 404", func(f *fake) {
			f.resize = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }
		}, func(ctx context.Context, o *OneOff) error {
			// Refused before attach, a size is kept for after it (resize_test.go).
			if err := attachOnly(ctx, o); err != nil {
				return err
			}
			return o.Resize(ctx, 80, 24)
		}, ErrAttachRefused, 404},
		{"wait 408", func(f *fake) {
			f.wait = func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 408, map[string]string{"error": "inactivity"})
			}
		}, waitOnly, ErrInactivity, 408},
		{"wait 401", func(f *fake) {
			f.wait = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }
		}, waitOnly, ErrAttachRefused, 401},
		{"wait 500", func(f *fake) {
			f.wait = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
		}, waitOnly, ErrUnreachable, 500},
		{"wait malformed", func(f *fake) {
			f.wait = func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"exit_code":"x"}`)) }
		}, waitOnly, ErrMalformed, 200},
		{"wait oversized", func(f *fake) {
			f.wait = func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"exit_code":0,"pad":"` + strings.Repeat("x", 2<<20) + `"}`))
			}
		}, waitOnly, ErrMalformed, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			f := newFake(t)
			tc.mod(f)
			o := start(t, f.client(t, nil), RunRequest{App: "app"})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := tc.call(ctx, o)
			var ae *APIError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ae) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if ae.Status != tc.status {
				t.Errorf("status %d, want %d", ae.Status, tc.status)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q shows the attach secret", err)
			}
		})
	}
}

func attachOnly(ctx context.Context, o *OneOff) error {
	s, err := o.Attach(ctx)
	if err == nil {
		s.Close()
	}
	return err
}

func uploadSmall(ctx context.Context, o *OneOff) error {
	return o.Upload(ctx, "f.txt", 5, strings.NewReader("hello"))
}

func waitOnly(ctx context.Context, o *OneOff) error {
	_, err := o.Wait(ctx)
	return err
}

func TestFaultAttachDroppedMidStream(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		conn, _ := hijack(t, w)
		if conn == nil {
			return
		}
		conn.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
		conn.Write([]byte("partial output"))
		// A reset, not an orderly close: the platform went away.
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
	f.wait = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	s, err := o.Attach(context.Background())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(s)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end after the drop")
	}
	if err != nil && !errors.Is(err, ErrUnreachable) {
		t.Errorf("read err = %v, want EOF or ErrUnreachable", err)
	}
	if _, err := o.Wait(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Wait err = %v, want ErrUnreachable", err)
	}
}

func TestFaultAttachContextEndsStream(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		conn, brw := hijack(t, w)
		if conn == nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
		io.Copy(io.Discard, brw) // silent until the client goes
	}
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s, err := o.Attach(ctx)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	begin := time.Now()
	_, err = s.Read(make([]byte, 10))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read err = %v, want the ctx deadline", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("read ended after %v", took)
	}
}

func TestFaultAttachNeverAnswers(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		conn, brw := hijack(t, w)
		if conn == nil {
			return
		}
		defer conn.Close()
		io.Copy(io.Discard, brw)
	}
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := o.Attach(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the ctx deadline", err)
	}
}

func TestFaultWaitHung(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.wait = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := o.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the ctx deadline", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Wait ended after %v", took)
	}
}

func TestFaultUploadHungServer(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	f.files = func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client gone only once the body is read.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := uploadSmall(ctx, o); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the ctx deadline", err)
	}
}
