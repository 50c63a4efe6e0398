package oneoff

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A run answered 429 waits for a slot within StartTimeout: after the
// answer's Retry-After when it has one, else after a back-off; Waiting is
// told once; other quota statuses fail at once.

// full answers the first n runs with 429 and header (when not ""), then
// the fake's usual answer; it records when each run came.
func full(f *fake, n int, header string) func() []time.Time {
	var mu sync.Mutex
	var at []time.Time
	ok := f.run
	f.run = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		refuse := len(at) <= n
		mu.Unlock()
		if !refuse {
			ok(w, r)
			return
		}
		if header != "" {
			w.Header().Set("Retry-After", header)
		}
		writeJSON(w, 429, map[string]string{"error": "app quota: 10 one-offs at most per app"})
	}
	return func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), at...)
	}
}

func TestSlotWaitHonoursRetryAfter(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name   string
		header func() string
	}{
		{"seconds", func() string { return "1" }},
		{"date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			runs := full(f, 1, tc.header())
			waiting := 0
			c := f.client(t, nil)
			if _, err := c.Start(context.Background(), RunRequest{App: "app", Waiting: func() { waiting++ }}); err != nil {
				t.Fatalf("Start: %v", err)
			}
			at := runs()
			// An HTTP date has whole seconds: at least 1 s from now.
			if len(at) != 2 || at[1].Sub(at[0]) < 900*time.Millisecond || at[1].Sub(at[0]) > 2500*time.Millisecond {
				t.Fatalf("runs at %v, want two about the Retry-After apart", at)
			}
			if waiting != 1 {
				t.Errorf("Waiting called %d times, want 1", waiting)
			}
		})
	}
}

func TestSlotWaitBacksOff(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	runs := full(f, 4, "")
	waiting := 0
	c := f.client(t, nil)
	begin := time.Now()
	if _, err := c.Start(context.Background(), RunRequest{App: "app", Waiting: func() { waiting++ }}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	at := runs()
	if len(at) != 5 || waiting != 1 {
		t.Fatalf("%d runs, Waiting called %d times; want 5 and 1", len(at), waiting)
	}
	// Steps of 250, 500, 1000 and 2000 ms, each wait in the upper half.
	for i, step := range []time.Duration{250, 500, 1000, 2000} {
		step *= time.Millisecond
		if d := at[i+1].Sub(at[i]); d < step/2 || d > step+300*time.Millisecond {
			t.Errorf("wait %d was %s, want %s to %s", i+1, d, step/2, step)
		}
	}
	if took := time.Since(begin); took > 4500*time.Millisecond {
		t.Errorf("took %s", took)
	}
}

func TestSlotWaitEndsAtStartTimeout(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	runs := full(f, 1<<30, "")
	c := f.client(t, func(c *Config) { c.StartTimeout = 1500 * time.Millisecond })
	begin := time.Now()
	_, err := c.Start(context.Background(), RunRequest{App: "app"})
	took := time.Since(begin)
	var ae *APIError
	if !errors.Is(err, ErrQuota) || !errors.As(err, &ae) || ae.Status != 429 {
		t.Fatalf("err = %v, want the last 429", err)
	}
	if took < 1500*time.Millisecond || took > 2500*time.Millisecond {
		t.Errorf("gave up after %s, want about 1.5 s", took)
	}
	if n := len(runs()); n < 3 {
		t.Errorf("%d runs in 1.5 s, want the back-off to ask again", n)
	}

	// A Retry-After past the deadline: no slot can come in time.
	f = newFake(t)
	runs = full(f, 1<<30, "60")
	c = f.client(t, func(c *Config) { c.StartTimeout = 5 * time.Second })
	begin = time.Now()
	_, err = c.Start(context.Background(), RunRequest{App: "app", Waiting: func() { t.Error("Waiting called") }})
	if !errors.Is(err, ErrQuota) || time.Since(begin) > time.Second || len(runs()) != 1 {
		t.Fatalf("err = %v after %s and %d runs, want ErrQuota at once", err, time.Since(begin), len(runs()))
	}

	// The caller's ctx ends the wait with its cause.
	f = newFake(t)
	full(f, 1<<30, "")
	c = f.client(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if _, err = c.Start(ctx, RunRequest{App: "app"}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrQuota) {
		t.Fatalf("cancelled: err = %v, want the ctx's deadline", err)
	}
}

// Quota statuses other than 429 say nothing of a slot coming free.
func TestSlotWaitOnlyOn429(t *testing.T) {
	checkGoroutines(t)
	f := newFake(t)
	n := 0
	f.run = func(w http.ResponseWriter, r *http.Request) {
		n++
		writeJSON(w, 403, map[string]string{"error": "too many one-offs"})
	}
	c := f.client(t, nil)
	if _, err := c.Start(context.Background(), RunRequest{App: "app"}); !errors.Is(err, ErrQuota) || n != 1 {
		t.Fatalf("err = %v after %d runs, want ErrQuota after one", err, n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v  string
		d  time.Duration
		ok bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"+3", 0, false},
		{"Fri, 02 Jan 2026 03:04:35 GMT", 30 * time.Second, true},
		{"Fri, 02 Jan 2026 03:00:00 GMT", 0, true},
		{"soon", 0, false},
	} {
		if d, ok := parseRetryAfter(tc.v, now); d != tc.d || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.v, d, ok, tc.d, tc.ok)
		}
	}
}
