package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const rsyncUploadLine = "rsync cannot upload through this bridge: a one-off's files end with it. Use scp or sftp (they land in /tmp/uploads of your next session), or run rsync inside one session."

// rsync runs the real rsync with the bridge as its remote shell's host.
func rsync(t *testing.T, b *Bridge, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shell := "ssh " + strings.Join(append(b.SSHArgs(""), "-p", b.Port, "-o", "LogLevel=ERROR"), " ")
	return runCmd(t, exec.CommandContext(ctx, need(t, "rsync"), append([]string{"-e", shell}, args...)...), nil)
}

// An rsync upload would land in a one-off that ends with its session, and
// rsync would report success: the bridge refuses it with one line and exit
// code 253, before anything starts on the platform, and rsync fails.
func TestRsyncUploadRefused(t *testing.T) {
	b := StartBridge(t, Options{})
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte("data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{f, "demo-app@" + b.Host + ":/tmp/uploads/"},
		// --protect-args sends the paths in-band: the command has none.
		{"-a", "--protect-args", f, "demo-app@" + b.Host + ":/tmp/uploads/"},
	} {
		r := rsync(t, b, args...)
		if r.Code == 0 || !strings.HasPrefix(r.Stderr, rsyncUploadLine+"\n") {
			t.Errorf("rsync %q: %+v, want a failure whose stderr starts with %q", args, r, rsyncUploadLine)
		}
	}
	log, ok := b.LogWhen(func(log string) bool { return strings.Count(log, "exit_code=253") >= 4 })
	if !ok {
		t.Fatalf("want two sessions that failed and ended with 253, log:\n%s", log)
	}
	if strings.Contains(log, `msg="one-off created"`) || strings.Contains(log, `msg="one-off started"`) {
		t.Fatalf("a refused rsync upload started a one-off:\n%s", log)
	}
}

// An rsync download (--sender on the server side) loses nothing: it still
// runs in a one-off, verbatim.
func TestRsyncDownload(t *testing.T) {
	b := StartBridge(t, Options{})
	want := b.Run("demo-app", nil, "cat", "/etc/hostname")
	if want.Code != 0 || want.Stdout == "" {
		t.Fatalf("cat /etc/hostname: %+v", want)
	}
	dir := t.TempDir()
	for i, extra := range [][]string{nil, {"--protect-args"}} {
		dest := filepath.Join(dir, "hostname"+string(rune('0'+i)))
		args := append(append([]string(nil), extra...), "demo-app@"+b.Host+":/etc/hostname", dest)
		if r := rsync(t, b, args...); r.Code != 0 {
			t.Fatalf("rsync %q: %+v", args, r)
		}
		got, err := os.ReadFile(dest)
		if err != nil || string(got) != want.Stdout {
			t.Fatalf("rsync %q gave %q (%v), want %q", args, got, err, want.Stdout)
		}
	}
}
