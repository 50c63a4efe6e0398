package e2e

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// A session the platform refuses for now (429: the app's one-offs are all
// taken) waits for a free slot within --start-timeout; only a shell session
// on a terminal says so, and 243 comes only when the time is out.

const quotaLine = "The platform refused to start another one-off container for demo-app (quota or rate limit); try again later."

// 20 concurrent `ssh H 'echo N'` against the default platform quota of 10
// one-offs per app all succeed, and print nothing but their output. The
// per-key cap is raised so that one key reaches the platform's quota.
func TestFanOutWaitsForSlots(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--max-one-offs-per-key", "20"}})
	const n = 20
	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The sleep keeps each one-off alive long enough for the 20 to
			// overlap, so that the quota is surely reached.
			results[i] = b.Run("demo-app", nil, fmt.Sprintf("echo %d; sleep 1", i))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if want := fmt.Sprintf("%d\n", i); r.Code != 0 || r.Stdout != want || r.Stderr != "" {
			t.Errorf("session %d: %+v, want exit 0 and %q only", i, r, want)
		}
	}
	if !b.LogHas(`msg="waiting for a free one-off slot"`) {
		t.Fatalf("no session waited: the quota was never reached, and the test proves nothing")
	}
}

// With the app's only slot held, a session gets 243 once --start-timeout
// has passed, not before: a command without a terminal reads the failure
// line alone, an exec on a terminal too, and a shell on a terminal sees
// that it waited.
func TestSlotWaitEndsAtStartTimeout(t *testing.T) {
	const timeout = 3 * time.Second
	b := StartBridge(t, Options{Args: []string{"--platform-app-quota", "1", "--start-timeout", timeout.String()}})
	holdKeyOneOff(t, b, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name   string
		extra  []string
		cmd    []string
		stderr string
	}{
		{"no terminal", nil, []string{"true"}, quotaLine + "\n"},
		{"exec on a terminal", []string{"-tt"}, []string{"true"}, quotaLine + "\r\n"},
		{"shell on a terminal", []string{"-tt"}, nil, "Starting one-off container for demo-app... busy\r\n" +
			"Waiting for a free one-off slot for demo-app... failed\r\n" + quotaLine + "\r\n"},
	} {
		begin := time.Now()
		r := runCmd(t, b.SSH(ctx, "demo-app", tc.extra, tc.cmd...), strings.NewReader("exit\n"))
		took := time.Since(begin)
		if r.Code != 243 || r.Stdout != "" || r.Stderr != tc.stderr {
			t.Errorf("%s: %+v, want 243 and stderr %q", tc.name, r, tc.stderr)
		}
		if took < timeout || took > timeout+3*time.Second {
			t.Errorf("%s: 243 after %s, want about %s", tc.name, took, timeout)
		}
	}
}

// A shell on a terminal that waited starts once the slot is free, and its
// progress says so.
func TestShellWaitsForSlot(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--platform-app-quota", "1"}})
	held, heldDone := holdKeyOneOff(t, b, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shell := startBackground(t, b.SSH(ctx, "demo-app", []string{"-tt"}))
	waiting := "Starting one-off container for demo-app... busy\r\nWaiting for a free one-off slot for demo-app... "
	waitFor(t, 30*time.Second, "the shell waiting", func() bool { return shell.stderr.String() == waiting })
	held.Close()
	if r := <-heldDone; r.Code != 0 {
		t.Fatalf("held one-off: %+v", r)
	}
	done := regexp.MustCompile(`^` + regexp.QuoteMeta(waiting) + `done in [0-9]+\.[0-9] s\r\n$`)
	waitFor(t, 30*time.Second, "the shell started", func() bool { return done.MatchString(shell.stderr.String()) })
	io.WriteString(shell.stdin, "exit\n")
	shell.stdin.Close()
	if code := shell.wait(t, 30*time.Second, "the shell"); code != 0 {
		t.Fatalf("the shell: exit %d, stderr %q", code, shell.stderr.String())
	}
}
