package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sshbridge/bridge"
)

// TestLinesNeverInterleave: two Logs on one file (as two bridge processes
// during a handover), written from many goroutines, leave whole lines,
// each one JSON object, none lost.
func TestLinesNeverInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	logs := make([]*Log, 2)
	for i := range logs {
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	const writers, each = 8, 200
	long := strings.Repeat("x", 3000) // past a pipe's atomic size, within one write
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[w%2]
			for range each {
				l.SessionEnd(bridge.SessionEvent{ConnID: "c", User: long, App: "demo-app", Kind: "exec", Mode: "session",
					ExitCode: 3, Outcome: "command", BytesIn: 1, BytesOut: 2, Duration: time.Second})
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not one JSON object: %v", n+1, err)
		}
		if e["event"] != "session_end" || e["exit_code"] != 3.0 || e["duration_ms"] != 1000.0 || e["user"] != long {
			t.Fatalf("line %d: %v", n+1, e)
		}
		n++
	}
	if n != writers*each {
		t.Fatalf("%d lines, want %d", n, writers*each)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestEventNames: each event has its stable name.
func TestEventNames(t *testing.T) {
	var b strings.Builder
	l := New(&b)
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	l.Connection(bridge.ConnectionEvent{Phase: "open", ConnID: "c1", Remote: "192.0.2.1:5"})
	l.Auth(bridge.AuthEvent{ConnID: "c1", Method: "publickey", User: "app", App: "app", Reason: "unknown_key"})
	l.SessionStart(bridge.SessionEvent{Kind: "shell"})
	l.SessionEnd(bridge.SessionEvent{Kind: "shell", ExitCode: -1, Outcome: "client_gone"})
	for _, e := range []string{"staged", "delivered", "refused", "expired"} {
		l.Upload(bridge.UploadEvent{Event: e, Name: "f"})
	}
	l.Forward(bridge.ForwardEvent{Type: "direct-tcpip", Target: "localhost:80", Outcome: "opened"})
	l.Forward(bridge.ForwardEvent{Type: "tcpip-forward", Target: "0.0.0.0:80", Outcome: "refused"})
	l.Connection(bridge.ConnectionEvent{Phase: "close", ConnID: "c1", Outcome: "authenticated", Duration: 1500 * time.Millisecond})
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e["time"] != "2026-01-02T03:04:05Z" {
			t.Fatalf("time %v", e["time"])
		}
		if _, has := e["exit_code"]; has && e["outcome"] == "client_gone" {
			t.Fatalf("a session the client left has no exit code: %s", line)
		}
		names = append(names, e["event"].(string))
	}
	want := "connection auth session_start session_end upload_staged upload_delivered upload_refused upload_expired forward_opened forward_refused connection"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
}
