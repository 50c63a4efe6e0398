package uploads

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"testing"
)

// BenchmarkDeliver measures the staging area's side of a delivery: reading
// a pending file back through the reader handed to send.
func BenchmarkDeliver(b *testing.B) {
	s, err := Open(b.TempDir(), Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("u", "a")
	data := make([]byte, 256<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		w, err := sc.Create("f", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, err := sc.Deliver(context.Background(), func(_ context.Context, _ string, _ int64, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}, nil)
		if err == nil {
			err = d.Commit()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
