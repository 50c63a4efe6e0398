package oneoff

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A platform that takes a resize only once attached (409 before): the size
// sent before attach is refused without an error and arrives right after
// the attach, before Attach returns.
func TestResizeRefusedBeforeAttachSentAfter(t *testing.T) {
	f := newFake(t)
	var (
		mu       sync.Mutex
		attached bool
		events   []string
	)
	connect := f.connect
	f.connect = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attached = true
		events = append(events, "CONNECT")
		mu.Unlock()
		connect(w, r)
	}
	f.resize = func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		if !attached {
			events = append(events, "PUT refused")
			writeJSON(w, 409, map[string]string{"error": "the container is not attached"})
			return
		}
		events = append(events, fmt.Sprintf("PUT %sx%s", body["width"], body["height"]))
		w.WriteHeader(200)
	}
	o := start(t, f.client(t, nil), RunRequest{App: "app"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.Resize(ctx, 120, 33); err != nil {
		t.Fatalf("Resize before attach: %v, want nil (kept for after attach)", err)
	}
	s, err := o.Attach(ctx)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	mu.Lock()
	got := fmt.Sprint(events)
	mu.Unlock()
	if want := "[PUT refused CONNECT PUT 120x33]"; got != want {
		t.Fatalf("the platform saw %s, want %s", got, want)
	}
	// Once attached, a refusal is an error again.
	f.resize = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(409) }
	if err := o.Resize(ctx, 100, 30); err == nil {
		t.Fatal("Resize refused after attach: nil error")
	}
}
