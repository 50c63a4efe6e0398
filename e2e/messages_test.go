package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"
)

// What a user reads on stderr: progress, refusals and the bridge's own ends.

// A terminal session shows the one-off's start time in tenths of a second,
// as the README shows it ("done in 0.4 s").
func TestProgressInTenthsOfASecond(t *testing.T) {
	b := StartBridge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt"}, "true"), nil)
	progress := regexp.MustCompile(`^Starting one-off container for demo-app\.\.\. done in [0-9]+\.[0-9] s\r\n$`)
	if r.Code != 0 || !progress.MatchString(r.Stderr) {
		t.Fatalf("got %+v, want stderr matching %s", r, progress)
	}
}
