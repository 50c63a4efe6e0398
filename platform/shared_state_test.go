package platform

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Two platforms on one state dir, as the old and the new process of a
// bridge's handover run: the second one's start-up sweep removes a dead
// one-off dir and leaves the first one's live one-off alone, which runs on
// with its /tmp.
func TestSecondPlatformLeavesLiveOneOffs(t *testing.T) {
	stateDir := t.TempDir()
	first := startPlatform(t, Config{StateDir: stateDir})
	o := first.run("demo", "echo kept > /tmp/kept; read x; cat /tmp/kept; echo got-$x", false, nil)
	conn, br := o.attach()
	live := first.stateEntries()
	if len(live) != 1 {
		t.Fatalf("state dir holds %v, want the one-off's dir", live)
	}
	dead := filepath.Join(stateDir, "0123456789abcdef0123456789abcdef")
	if err := os.Mkdir(dead, 0o700); err != nil {
		t.Fatal(err)
	}

	second := startPlatform(t, Config{StateDir: stateDir})
	if got := second.stateEntries(); !slices.Equal(got, live) {
		t.Errorf("after the second platform's start the state dir holds %v, want %v (the live dir alone)", got, live)
	}
	if _, err := conn.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	conn.CloseWrite()
	out, _ := io.ReadAll(br)
	if string(out) != "kept\ngot-y\n" {
		t.Errorf("the first platform's one-off wrote %q", out)
	}
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d, exit code %d", status, code)
	}
	if out, code := second.runAndCollect("echo second", false); out != "second\n" || code != 0 {
		t.Errorf("the second platform's one-off: %q, %d", out, code)
	}
}
