package uploads

import (
	"context"
	"io"
	"os"
	"syscall"
	"testing"
)

// BenchmarkCommitLargeFile times Delivery.Commit of one delivered 1 GiB
// file that has reached the disk: what the session waits for between its
// attach and its first byte. The file's unlink is not part of it.
func BenchmarkCommitLargeFile(b *testing.B) {
	s, err := Open(b.TempDir(), Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("u", "a")
	chunk := make([]byte, 1<<20)
	for b.Loop() {
		b.StopTimer()
		w, err := sc.Create("big", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		for range 1024 {
			w.Write(chunk)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		d, err := sc.Deliver(context.Background(), func(_ context.Context, _ string, _ int64, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		b.StartTimer()
		if err := d.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
