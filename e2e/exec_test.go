package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestExecOutputAndExitCodes(t *testing.T) {
	b := StartBridge(t, Options{})
	for _, tc := range []struct {
		command string
		stdout  string
		code    int
	}{
		{"echo hello from the one-off", "hello from the one-off\n", 0},
		{"exit 1", "", 1},
		{"echo partial; exit 3", "partial\n", 3},
		// stdout and stderr share the one-off's stream (PROTOCOL.md 4).
		{"no-such-command-anywhere", "sh: 1: no-such-command-anywhere: not found\n", 127},
		// The command string reaches the shell verbatim: quoting and
		// double spaces survive.
		{`printf '%s|' "a  b" 'c d'`, "a  b|c d|", 0},
	} {
		t.Run(tc.command, func(t *testing.T) {
			r := b.Run("demo-app", nil, tc.command)
			if r.Code != tc.code || r.Stdout != tc.stdout {
				t.Fatalf("got code %d stdout %q stderr %q; want code %d stdout %q", r.Code, r.Stdout, r.Stderr, tc.code, tc.stdout)
			}
		})
	}
}

func TestExecBinaryStdinRoundTrip(t *testing.T) {
	b := StartBridge(t, Options{})
	data := make([]byte, 10<<20)
	rand.Read(data)
	want := sha256.Sum256(data)
	r := b.Run("demo-app", bytes.NewReader(data), "cat")
	got := sha256.Sum256([]byte(r.Stdout))
	if r.Code != 0 || got != want {
		t.Fatalf("code %d, %d bytes back (sha256 %s), want %d bytes (sha256 %s); stderr %q",
			r.Code, len(r.Stdout), hex.EncodeToString(got[:8]), len(data), hex.EncodeToString(want[:8]), r.Stderr)
	}
}

func TestExecStdinEOF(t *testing.T) {
	b := StartBridge(t, Options{})
	r := b.Run("demo-app", strings.NewReader(strings.Repeat("x", 12345)), "wc -c")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "12345" {
		t.Fatalf("wc -c: code %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// No progress chatter on a session without a terminal: it would corrupt
	// the output of tools that parse it.
	if r.Stderr != "" {
		t.Fatalf("stderr should be empty without a pty, got %q", r.Stderr)
	}
}

// Twenty sessions of one key at once, each on its own connection, with the
// limits on one-offs (per key, per app, in all) raised above twenty.
func TestConcurrentSessions(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--max-one-offs-per-key", "25", "--platform-app-quota", "25", "--platform-total-quota", "25"}})
	const n = 20
	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Go(func() {
			results[i] = b.Run("demo-app", nil, fmt.Sprintf("echo session-%d", i))
		})
	}
	wg.Wait()
	for i, r := range results {
		if want := fmt.Sprintf("session-%d\n", i); r.Code != 0 || r.Stdout != want {
			t.Errorf("session %d: code %d stdout %q stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
}
