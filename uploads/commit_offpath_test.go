package uploads

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// Commit does not wait for a delivered file's unlink, which can take
// hundreds of milliseconds for a large file: the session that committed
// goes on while it runs, and Close waits for it.
func TestCommitLeavesTheUnlinkOffThePath(t *testing.T) {
	unlinking := make(chan string, 1)
	unblock := make(chan struct{})
	removeBlob = func(p string) error {
		unlinking <- p
		<-unblock
		return os.Remove(p)
	}
	t.Cleanup(func() { removeBlob = os.Remove })

	s, err := Open(t.TempDir(), Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Scope("u", "a")
	w, err := sc.Create("f", os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := sc.Deliver(context.Background(), func(_ context.Context, _ string, _ int64, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	committed := make(chan error, 1)
	go func() { committed <- d.Commit() }()
	var blob string
	select {
	case blob = <-unlinking:
	case <-time.After(10 * time.Second):
		t.Fatal("the blob's unlink never started")
	}
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(unblock)
		t.Fatal("Commit waited for the blob's unlink")
	}
	if _, err := sc.Stat("f"); err == nil {
		t.Fatal("f is still pending after Commit")
	}

	var closed sync.WaitGroup
	closed.Add(1)
	closeDone := make(chan struct{})
	go func() { defer closed.Done(); s.Close(); close(closeDone) }()
	select {
	case <-closeDone:
		t.Fatal("Close returned while the unlink was still under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(unblock)
	closed.Wait()
	if _, err := os.Stat(blob); !os.IsNotExist(err) {
		t.Fatalf("blob %s after Close: %v", blob, err)
	}
}
