package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
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

// A user name that is no app name gets a sentence saying what app names
// are and exit code 250, before any call to the platform, and the same
// answer whatever the key may use: it tells nothing about the apps.
func TestInvalidAppName(t *testing.T) {
	other := clientKey(t, "apps-nothing")
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, "") + `apps="nothing" ` + publicKey(t, other) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"Demo-App", "demo_app", "demo.app", ""} {
		// OpenSSH takes an empty user name from -l, not from "@host".
		dest := []string{name + "@" + b.Host}
		if name == "" {
			dest = []string{"-l", "", b.Host}
		}
		want := fmt.Sprintf("%q is not a valid app name: app names are "+
			"1 to 64 lowercase letters, digits and dashes, starting with a letter or a digit.\n", name)
		for _, key := range []string{b.Key, other} {
			args := append(b.SSHArgs(key), "-p", b.Port, "-o", "LogLevel=ERROR")
			args = append(append(args, dest...), "echo in")
			r := runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
			if r.Code != 250 || r.Stderr != want || r.Stdout != "" {
				t.Errorf("user %q, key %s: %+v, want 250 and %q", name, key, r, want)
			}
		}
	}
	ended := regexp.MustCompile(`msg="session end" .* exit_code=250\n`)
	log, _ := b.LogWhen(func(log string) bool { return len(ended.FindAllString(log, -1)) == 8 })
	if n := len(ended.FindAllString(log, -1)); n != 8 {
		t.Errorf("%d sessions logged their end with exit code 250, want 8:\n%s", n, log)
	}
	if strings.Count(log, `reason="not a valid app name"`) != 4 {
		t.Errorf("the key that may use every app is not logged as refused for the name:\n%s", log)
	}
	if strings.Contains(log, "component=oneoff") || strings.Contains(log, "one-off created") {
		t.Errorf("the platform was called:\n%s", log)
	}
}
