package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	concurrentUploads      = 20
	concurrentUploadSize   = 100 << 20
	concurrentRSSMaxKiB    = concurrentUploads * uploadRSSMaxKiB // the single upload's budget, each
	concurrentUploadMaxRun = 10 * time.Minute
)

// BenchmarkUploadSftpConcurrent runs 20 OpenSSH `sftp put` of 100 MiB at
// once, each its own connection and file, and checks the bridge's RSS
// growth over them all against 20 times the single upload's budget, then
// that every file reached a one-off intact (sha256 of each, delivered).
func BenchmarkUploadSftpConcurrent(b *testing.B) {
	br := StartBridge(b, Options{Args: uploadBenchArgs})
	args := append(br.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", br.Port)
	// Distinct random files, so that bytes crossing from one upload into
	// another would show.
	srcDir := b.TempDir()
	want := make([]string, concurrentUploads)
	for i := range concurrentUploads {
		name := fmt.Sprintf("f%02d", i)
		sum := fileSHA256(b, bigFileAt(b, filepath.Join(srcDir, name), concurrentUploadSize))
		want[i] = name + "=" + sum
	}
	sort.Strings(want)
	pid := br.cmd.Process.Pid
	idle := settledRSS(b, pid)
	peak := 0
	var elapsed time.Duration
	for b.Loop() {
		stop := watchRSS(pid, &peak)
		start := time.Now()
		errs := make([]error, concurrentUploads)
		var wg sync.WaitGroup
		for i := range concurrentUploads {
			wg.Go(func() {
				errs[i] = sftpPut(srcDir, args, "demo-app@"+br.Host, fmt.Sprintf("f%02d", i))
			})
		}
		wg.Wait()
		elapsed = time.Since(start)
		stop()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("upload %d of %d: %v", i+1, concurrentUploads, err)
			}
		}
	}
	growth := peak - idle
	total := float64(concurrentUploads) * concurrentUploadSize
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(total/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(growth), "rss-growth-KiB")
	b.Logf("%d concurrent sftp put of %d MiB: %.0f MB/s in all (%.1f s)", concurrentUploads, concurrentUploadSize>>20,
		total/1e6/elapsed.Seconds(), elapsed.Seconds())
	b.Logf("bridge RSS: idle %d KiB, peak %d KiB, growth %d KiB, %d KiB per upload (target ≤ %d in all, %d each)",
		idle, peak, growth, growth/concurrentUploads, concurrentRSSMaxKiB, uploadRSSMaxKiB)
	if growth > concurrentRSSMaxKiB {
		b.Fatalf("bridge RSS grew %d KiB during %d concurrent uploads, want at most %d", growth, concurrentUploads, concurrentRSSMaxKiB)
	}
	got := remoteHashes(b, br, "demo-app")
	if got != strings.Join(want, "\n") {
		b.Fatalf("one-off has\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// sftpPut uploads dir/name as name with OpenSSH's sftp in batch mode. No
// b.Fatal: it runs in goroutines.
func sftpPut(dir string, args []string, dest, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), concurrentUploadMaxRun)
	defer cancel()
	batch := filepath.Join(dir, name+".batch")
	if err := os.WriteFile(batch, []byte("put "+name+"\n"), 0o644); err != nil {
		return err
	}
	sftp, err := exec.LookPath("sftp")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, sftp, append(append([]string{}, args...), "-b", batch, dest)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sftp: %w\n%s", err, out)
	}
	return nil
}

// bigFileAt writes size random bytes at path, as bigFile does.
func bigFileAt(b *testing.B, path string, size int64) string {
	b.Helper()
	tmp := bigFile(b, size)
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

func fileSHA256(b *testing.B, path string) string {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
