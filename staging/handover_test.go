package staging

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"sshbridge/sftp"
	"sshbridge/uploads"
)

func openStore(t *testing.T, dir string) *uploads.Store {
	t.Helper()
	s, err := uploads.Open(dir, uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stage(t *testing.T, s *uploads.Store, name, content string) {
	t.Helper()
	w, err := s.Scope("alice", "demo-app").Create(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func collect(got *[]string) func(ctx context.Context, name string, size int64, r io.Reader) error {
	return func(ctx context.Context, name string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		*got = append(*got, name+"="+string(b))
		return err
	}
}

// The old process's area passes the directory on only once its delivery
// under way is committed; the new process's pending area makes its uses
// wait for the store, and then serves what the old one left.
func TestHandoverPassesTheStore(t *testing.T) {
	dir := t.TempDir()
	oldStore := openStore(t, dir)
	stage(t, oldStore, "a", "first")
	stage(t, oldStore, "b", "second")
	old := New(oldStore, sftp.NewHandles(8, 8), nil)
	ctx := context.Background()

	var sent []string
	d, err := old.Deliver(ctx, "alice", "demo-app", collect(&sent), nil)
	if err != nil || len(sent) != 2 {
		t.Fatalf("deliver: %v, sent %v", err, sent)
	}

	handedOver := make(chan error, 1)
	go func() { handedOver <- old.Handover(ctx) }()
	// No new use of the old area once the handover began.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if _, err := old.acquire(waitCtx); errors.Is(err, ErrHandedOver) {
			break
		} else if err == nil {
			old.done()
		} else {
			t.Fatal(err)
		}
	}
	if nd, err := old.Deliver(ctx, "alice", "demo-app", collect(&sent), nil); err != nil || len(nd.Files()) != 0 || len(sent) != 2 {
		t.Errorf("a delivery after the handover: %v, %v, sent %v; want none, and no error", nd, err, sent)
	}

	// The new process's area waits for the store.
	area, give := Pending(sftp.NewHandles(8, 8), nil)
	delivered := make(chan []string, 1)
	go func() {
		var got []string
		d, err := area.Deliver(ctx, "alice", "demo-app", collect(&got), nil)
		if err != nil {
			t.Error(err)
		} else if err := d.Commit(); err != nil {
			t.Error(err)
		}
		delivered <- got
	}()
	if _, err := uploads.Open(dir, uploads.Limits{}, nil); !errors.Is(err, uploads.ErrInUse) {
		t.Fatalf("open while the old process's delivery is under way: %v, want ErrInUse", err)
	}
	select {
	case err := <-handedOver:
		t.Fatalf("handover ended before the delivery's commit: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-handedOver:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handover did not end after the commit")
	}
	newStore := openStore(t, dir)
	defer area.Close()
	stage(t, newStore, "c", "third")
	give(newStore, nil)
	select {
	case got := <-delivered:
		if len(got) != 1 || got[0] != "c=third" {
			t.Errorf("the new process delivered %v, want c alone (a and b went with the old one's delivery)", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting delivery did not run once the store was given")
	}
}

// A use of a pending area ends with its context when no store comes.
func TestPendingUseEndsWithItsContext(t *testing.T) {
	area, _ := Pending(sftp.NewHandles(8, 8), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := area.Deliver(ctx, "alice", "demo-app", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deliver: %v, want the context's end", err)
	}
	if err := area.Close(); err != nil {
		t.Errorf("close of an area with no store: %v", err)
	}
}
