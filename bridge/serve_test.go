package bridge

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// bridgeGoroutines counts the goroutines running one of the server's
// methods, by the outermost such method.
func bridgeGoroutines() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	counts := map[string]int{}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		outer := ""
		for line := range strings.SplitSeq(g, "\n") {
			if strings.HasPrefix(line, "created by ") || strings.HasPrefix(line, "\t") {
				continue
			}
			if i := strings.Index(line, "sshbridge/bridge.(*Server)."); i >= 0 {
				outer, _, _ = strings.Cut(line[i+len("sshbridge/bridge.(*Server)."):], "(")
			}
		}
		if outer != "" {
			counts[outer]++
		}
	}
	return counts
}

// An idle authenticated connection holds one goroutine of the bridge's
// own, serveConn: the handshake's goroutine has ended, and the login
// grace, the keepalives and the idle timeout are timers (BENCHMARKS.md,
// Idle connections).
func TestIdleConnectionHoldsOneGoroutine(t *testing.T) {
	b := startBridge(t, Config{ClientAliveInterval: time.Hour, IdleTimeout: time.Hour}, &fakePlatform{}, nil, "")
	const n = 20
	for range n {
		b.dial(t, "demo-app")
	}
	want := map[string]int{"Serve": 1, "serveConn": n}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := bridgeGoroutines()
		if len(got) == len(want) && got["Serve"] == want["Serve"] && got["serveConn"] == want["serveConn"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's goroutines with %d idle connections: %v, want %v", n, got, want)
		}
		time.Sleep(10 * time.Millisecond) // the handshakes' goroutines returning
	}
}
