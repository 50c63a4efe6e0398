package bridge

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sshbridge/oneoff"
)

// recorder is an Observer that keeps every event as a line.
type recorder struct {
	NopObserver
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, a...))
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) SessionEnd(e SessionEvent) {
	r.add("session_end %s %s %d", e.Kind, e.Outcome, e.ExitCode)
}
func (r *recorder) PlatformError(kind string) { r.add("platform_error %s", kind) }
func (r *recorder) Forward(e ForwardEvent)    { r.add("forward %s %s %s", e.Type, e.Target, e.Outcome) }

// waitEvent waits up to 5 s for the recorder to hold line.
func (r *recorder) waitEvent(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(r.lines(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("no event %q in %q", line, r.lines())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestObserverSeesPlatformErrorsByKind: a failed start is reported by
// oneoff's kind, and the session's outcome by the bridge's code's name.
func TestObserverSeesPlatformErrorsByKind(t *testing.T) {
	for _, c := range []struct {
		err           error
		kind, outcome string
	}{
		{&oneoff.APIError{Op: "run", Status: 429, Kind: oneoff.ErrQuota}, "quota", "quota"},
		{&oneoff.APIError{Op: "run", Status: 404, Kind: oneoff.ErrAppNotFound}, "app_not_found", "app_not_found"},
		{&oneoff.APIError{Op: "run", Kind: oneoff.ErrUnreachable}, "unreachable", "platform_down"},
	} {
		rec := &recorder{}
		b := startBridgeWith(t, Config{}, &fakePlatform{err: c.err}, nil, "", func(d *Deps) { d.Observer = rec })
		_, _, code := output(t, b.dial(t, "demo-app"), "true")
		if ExitCodeName(code) != c.outcome {
			t.Fatalf("%v: exit %d (%s), want %s", c.err, code, ExitCodeName(code), c.outcome)
		}
		rec.waitEvent(t, "session_end exec "+c.outcome+fmt.Sprint(" ", code))
		rec.waitEvent(t, "platform_error "+c.kind)
	}
}

// TestObserverSeesRefusedForwards: in per-session mode a direct-tcpip
// channel is refused, and reported with its type and target.
func TestObserverSeesRefusedForwards(t *testing.T) {
	rec := &recorder{}
	b := startBridgeWith(t, Config{}, &fakePlatform{}, nil, "", func(d *Deps) { d.Observer = rec })
	c := b.dial(t, "demo-app")
	if _, err := c.Dial("tcp", "127.0.0.1:9"); err == nil {
		t.Fatal("direct-tcpip accepted in per-session mode")
	}
	rec.waitEvent(t, "forward direct-tcpip 127.0.0.1:9 refused")
}

// TestEveryExitCodeHasAName: each of the bridge's own codes (240-254,
// exitcode.go) has one name of its own, for metrics and the audit.
func TestEveryExitCodeHasAName(t *testing.T) {
	seen := map[string]int{}
	for code := ExitAccessDenied; code <= ExitAgent; code++ {
		name := ExitCodeName(code)
		if name == "" {
			t.Fatalf("exit code %d has no name", code)
		}
		if other, ok := seen[name]; ok {
			t.Fatalf("codes %d and %d are both %q", other, code, name)
		}
		seen[name] = code
	}
}
