package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runLoadTool runs bridge-load against b with args after the address and
// key, and returns its -json summary and exit code.
func runLoadTool(t *testing.T, tool string, b *Bridge, key string, args ...string) (loadSummary, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"-addr", b.Addr, "-key", key, "-known-hosts", b.KnownHosts, "-json"}, args...)
	cmd := exec.CommandContext(ctx, tool, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("bridge-load: %v\n%s", err, stderr.String())
	}
	var s loadSummary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("bridge-load's summary: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	return s, code, stderr.String()
}

// TestBridgeLoadSmall: a short load of exec and shell sessions and one
// uploader comes through, with the figures the summary promises; a key
// the bridge does not accept makes every session fail, named by its step,
// and the exit status 1.
func TestBridgeLoadSmall(t *testing.T) {
	tool := buildLoadTool(t)
	// Exempt from penalties: the refused key's failures would otherwise
	// get the connections after them refused before authentication.
	b := StartBridge(t, Options{Args: []string{"--log-level", "info", "--per-source-penalty-exempt-list", "127.0.0.0/8"}})
	s, code, stderr := runLoadTool(t, tool, b, b.Key, "-sessions", "4", "-duration", "3s", "-ramp", "0s",
		"-hold", "300ms", "-shell-fraction", "0.5", "-uploads", "1", "-upload-size", "1000000")
	if code != 0 || s.Failures != 0 || s.Exec == 0 || s.Shell == 0 || s.Uploads == 0 || s.PeakInFlight != 4 {
		t.Fatalf("exit %d, summary %+v\n%s", code, s, stderr)
	}
	if s.Sessions != s.Exec+s.Shell || s.UploadedBytes != int64(s.Uploads)*1000000 ||
		s.SetupP50Ms <= 0 || s.SetupP99Ms < s.SetupP50Ms || s.SetupMaxMs < s.SetupP99Ms {
		t.Errorf("inconsistent summary %+v", s)
	}

	other := clientKey(t, "stranger")
	s, code, _ = runLoadTool(t, tool, b, other, "-sessions", "2", "-duration", "1s", "-ramp", "0s")
	if code != 1 || s.Failures == 0 || s.Sessions != 0 {
		t.Fatalf("with a key the bridge refuses: exit %d, summary %+v", code, s)
	}
	for r := range s.Reasons {
		if !strings.HasPrefix(r, "connect: ") || !strings.Contains(r, "unable to authenticate") {
			t.Errorf("failure reason %q, want the connect step's authentication failure", r)
		}
	}
}
