package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An exec on a terminal (`ssh -tt H 'uname -sm'`, as JetBrains Gateway
// probes a host) reads the command's own bytes and nothing else: no line
// about the one-off starting, nor about the pending file delivered to it.
func TestPtyExecOutputIsTheCommands(t *testing.T) {
	local, err := exec.Command("uname", "-sm").Output()
	if err != nil {
		t.Fatal(err)
	}
	b := StartBridge(t, Options{})
	dir := localTree(t, map[string][]byte{"probe.txt": []byte("probe\n")})
	mustOK(t, "put", b.sftpBatch(t, dir, "", "demo-app", "put probe.txt\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt"}, "uname -sm"), nil)
	want := strings.TrimSpace(string(local)) + "\r\n"
	if r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Fatalf("got %+v, want exit 0, stdout %q and nothing on stderr", r, want)
	}
	if got := pendingList(t, b, dir); got != "" {
		t.Fatalf("pending after the session: %q, want probe.txt delivered", got)
	}
}
