package platform

import (
	"strings"
	"testing"
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
	_ = strings.TrimSpace
}
