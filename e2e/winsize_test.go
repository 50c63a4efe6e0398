package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// OpenSSH's `ssh -tt` in a terminal of a given size, `stty size` as the
// first command, with both cores busy: the command sees that size every
// time. The bridge sends the size before it attaches, and the platform
// starts the process with it (it used to start at 80x24, the size arriving
// just after: 16 runs in 40 saw `24 80`).
func TestWindowSizeAtStartUnderLoad(t *testing.T) {
	b := StartBridge(t, Options{})
	loadCPUs(t)
	const runs = 40
	var wrong []string
	for i := range runs {
		rows, cols := 20+i, 90+i
		got := sttySizeIn(t, b, rows, cols)
		if want := fmt.Sprintf("%d %d", rows, cols); got != want {
			wrong = append(wrong, fmt.Sprintf("run %d: %q, want %q", i+1, got, want))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d runs saw the wrong size:\n%s\n%s", len(wrong), runs, strings.Join(wrong, "\n"), b.Log())
	}
}

// sttySizeIn runs `ssh -tt … 'stty size'` on a terminal of rows x cols and
// returns what it printed on its terminal, trimmed.
func sttySizeIn(t *testing.T, b *Bridge, rows, cols int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := b.SSH(ctx, "demo-app", []string{"-tt"}, "stty size")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // the bridge's progress line; stdout is the terminal
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out, _ := io.ReadAll(term) // ends with EIO once ssh has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ssh -tt 'stty size': %v (%q, stderr %q)", err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
