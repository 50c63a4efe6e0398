package platform

import (
	"strings"
	"testing"
	"time"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	for _, tc := range []struct {
		name    string
		command string
		tty     bool
		out     string
		code    int
	}{
		{"tty echo", "echo hello", true, "hello\r\n", 0},
		{"pipe echo", "echo hello", false, "hello\n", 0},
		{"exit 3", "exit 3", false, "", 3},
		{"not found", "no-such-command-xyz 2>/dev/null", false, "", 127},
		{"signal", "kill -9 $$", false, "", 137},
		{"stderr merged", "echo out; echo err >&2", false, "out\nerr\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := tp.runAndCollect(tc.command, tc.tty)
			if out != tc.out || code != tc.code {
				t.Errorf("got %q code %d, want %q code %d", out, code, tc.out, tc.code)
			}
		})
	}
	if left := tp.stateEntries(); len(left) != 0 {
		t.Errorf("state dir not cleaned: %v", left)
	}
}

// TestCommandOverBeforeAttachAnswered: a command may be over before its
// attach is answered; its output must still come.
func TestCommandOverBeforeAttachAnswered(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	tp.hookAfterStart = func(pr *process) {
		<-pr.done
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) { // until its end is recorded
			if tp.byOperationDone(pr) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, tty := range []bool{false, true} {
		out, code := tp.runAndCollect("echo ok", tty)
		if strings.TrimSpace(out) != "ok" || code != 0 {
			t.Errorf("tty %v: got %q exit %d", tty, out, code)
		}
	}
}

// byOperationDone reports whether the one-off running pr has ended.
func (tp *testPlatform) byOperationDone(pr *process) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, o := range tp.byToken {
		o.mu.Lock()
		ended := o.proc == pr && o.reason != endNone
		o.mu.Unlock()
		if ended {
			return true
		}
	}
	return false
}

// TestEndedBeforeAttachArmsNoIdleTimer: a command over before its attach
// is answered leaves no inactivity timer running, which would hold the
// ended one-off (its process, pipes and connection) for
// InactivityTimeout and then log it as inactive.
func TestEndedBeforeAttachArmsNoIdleTimer(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	tp.hookAfterStart = func(pr *process) {
		<-pr.done
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && !tp.byOperationDone(pr) {
			time.Sleep(time.Millisecond)
		}
	}
	if out, code := tp.runAndCollect("echo ok", false); strings.TrimSpace(out) != "ok" || code != 0 {
		t.Fatalf("got %q exit %d", out, code)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.byToken) == 0 {
		t.Fatal("the one-off is not retained")
	}
	for _, o := range tp.byToken {
		o.mu.Lock()
		armed := o.idleTimer != nil && o.idleTimer.Stop()
		o.mu.Unlock()
		if armed {
			t.Errorf("one-off %s ended before its attach, and its inactivity timer runs", o.id)
		}
	}
}
