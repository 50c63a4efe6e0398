package platform

import (
	"io"
	"os"
	"syscall"
	"testing"
)

// BenchmarkWaitAfterLargeUpload times a one-off's end as a session sees
// it, from the attach to /wait's answer, with a 1 GiB file (on the disk)
// in its /tmp/uploads. The removal of its /tmp is not part of it.
func BenchmarkWaitAfterLargeUpload(b *testing.B) {
	tp := startPlatform(b, Config{})
	chunk := make([]byte, 1<<20)
	for b.Loop() {
		b.StopTimer()
		o := tp.run("demo", "true", false, nil)
		id, _ := o.container["id"].(string)
		f, err := os.Create(tp.oneOffByID(id).uploadDir() + "/big")
		if err != nil {
			b.Fatal(err)
		}
		for range 1024 {
			f.Write(chunk)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		b.StartTimer()
		conn, br := o.attach()
		io.Copy(io.Discard, br)
		conn.Close()
		if status, code := o.wait(); status != 200 || code != 0 {
			b.Fatalf("wait: %d, exit code %d", status, code)
		}
	}
	b.StopTimer()
	tp.removals.Wait()
}

func (tp *testPlatform) oneOffByID(id string) *oneOff {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, o := range tp.byToken {
		if o.id == id {
			return o
		}
	}
	tp.t.Fatalf("no one-off %s", id)
	return nil
}
