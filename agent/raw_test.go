package agent_test

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"

	"sshbridge/agent"
)

// allBytes is every byte value once, the control characters a cooked
// terminal would act on included.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestMakeRawPassesEveryByteBothWays(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	restore, err := agent.MakeRaw(tty)
	if err != nil {
		t.Fatal(err)
	}

	want := allBytes()
	if got := pass(t, ptmx, tty, want); !bytes.Equal(got, want) {
		t.Fatalf("terminal input changed:\n got %q\nwant %q", got, want)
	}
	if got := pass(t, tty, ptmx, want); !bytes.Equal(got, want) {
		t.Fatalf("terminal output changed:\n got %q\nwant %q", got, want)
	}

	if err := restore(); err != nil {
		t.Fatal(err)
	}
}

func TestMakeRawLeavesAPipeAlone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	restore, err := agent.MakeRaw(r)
	if err != nil {
		t.Fatalf("MakeRaw on a pipe: %v, want nil", err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
}

// pass writes b to w and reads as many bytes from r. A terminal that is
// not raw holds the bytes back (no newline ends the line), so the read
// fails after 10 s rather than hanging.
func pass(t *testing.T, w, r *os.File, b []byte) []byte {
	t.Helper()
	go w.Write(b)
	got := make([]byte, len(b))
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(r, got)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("only part of the %d bytes came through the terminal after 10 s", len(b))
	}
	return got
}
