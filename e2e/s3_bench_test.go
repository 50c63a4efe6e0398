package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/sio"

	"sshbridge/internal/testkit"
	"sshbridge/oneoff"
)

// The S3 staging area's benchmarks (BENCHMARKS.md, "S3 staging") compare
// the bridge with the store's own cost in the same run, a PUT and a GET of
// the same bytes by a plain client of the store, and with their ceilings,
// the most any bridge can reach on the same store and machine (ceilingPut,
// deliveryCeiling). Run them with
//
//	go test -run '^$' -bench 'S3' -benchtime 1x -timeout 20m ./e2e/
const (
	s3UploadRatioMin   = 0.8 // bridge sftp put MB/s over the store's own PUT's (issue 16)
	s3DeliveryRatioMin = 0.8 // delivery MB/s over the store's own GET's (issue 16)
	// The gates while a target is missed: the bridge over the run's ceiling
	// (ceilingPut, deliveryCeiling), whether or not the ceiling shows the
	// target within reach; which it showed is reported (s3Gate). The
	// ceilings are about the targets on this machine (BENCHMARKS.md, S3
	// staging), so the targets are not claimed from these gates.
	s3UploadCeilingMin   = 0.8
	s3DeliveryCeilingMin = 0.8
	s3BenchRuns          = 5
	s3BenchSize          = 100 << 20 // the default --upload-max-file-size
)

// startS3Bench starts a store and a bridge on it, with more flags.
func startS3Bench(b *testing.B, more ...string) (*testkit.Weed, *Bridge, string) {
	b.Helper()
	store := testkit.StartWeed(b)
	prefix := "bench"
	br := StartBridge(b, Options{
		Args: append([]string{
			"--log-level", "info",
			"--staging-url", "s3://" + store.Bucket + "/" + prefix,
			"--staging-key-file", StagingKey(b),
		}, more...),
		Env: store.Env(b),
	})
	return store, br, prefix
}

// s3BenchPartSize and s3BenchPartsInFlight are the bridge's multipart
// upload's (objstage): 8 MiB parts, two in flight.
const (
	s3BenchPartSize      = 8 << 20
	s3BenchPartsInFlight = 2
)

// storePut times the store's own PUT of the file src by a plain client
// (storeUpload), then removes the object.
func storePut(b *testing.B, store *testkit.Weed, src string) time.Duration {
	b.Helper()
	start := time.Now()
	key, err := storeUpload(store, src, nil)
	d := time.Since(start)
	if err != nil {
		b.Fatalf("store PUT: %v", err)
	}
	storeDelete(b, store, key)
	return d
}

// storeUpload is the store's own PUT of the file src by a plain client, as
// a client that uploads a file of this size does it: a multipart upload,
// here with the bridge's part size and parts in flight, each part read
// from the file into a buffer of its own (its signature over HTTP hashes
// each part, as the bridge's must too); with seal, the file is encrypted
// on the way, as the bridge stores files (sealing). It returns the
// object's key, and may be called from any goroutine.
func storeUpload(store *testkit.Weed, src string, seal *sio.Config) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if seal != nil {
		if r, err = sio.EncryptReader(f, *seal); err != nil {
			return "", err
		}
	}
	ctx := context.Background()
	key := "baseline/" + randomHex(4)
	up, err := store.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &store.Bucket, Key: &key})
	if err != nil {
		return "", err
	}
	var (
		mu     sync.Mutex
		parts  []types.CompletedPart
		failed error
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, s3BenchPartsInFlight)
	for n := int32(1); ; n++ {
		buf := make([]byte, s3BenchPartSize)
		m, err := io.ReadFull(r, buf)
		if m == 0 {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			wg.Wait()
			return "", err
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := store.Client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &store.Bucket, Key: &key, UploadId: up.UploadId,
				PartNumber: aws.Int32(n), Body: bytes.NewReader(buf[:m]), ContentLength: aws.Int64(int64(m))})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		})
	}
	wg.Wait()
	if failed != nil {
		return "", fmt.Errorf("a part: %w", failed)
	}
	slices.SortFunc(parts, func(x, y types.CompletedPart) int { return int(*x.PartNumber - *y.PartNumber) })
	if _, err := store.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &store.Bucket, Key: &key,
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		return "", fmt.Errorf("complete: %w", err)
	}
	return key, nil
}

// sealing is a DARE configuration as the bridge's (DARE 2.0), with a key
// of its own: the ceilings encrypt and decrypt with it the bytes they move,
// since every bridge must (issue 16: the store holds no file in clear).
func sealing() *sio.Config {
	cfg := &sio.Config{MinVersion: sio.Version20, MaxVersion: sio.Version20, Key: make([]byte, 32)}
	rand.Read(cfg.Key)
	return cfg
}

// storePutObject times one PutObject of the whole file src, the simplest
// plain client, for information; then removes the object.
func storePutObject(b *testing.B, store *testkit.Weed, src string) time.Duration {
	b.Helper()
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	key := "baseline/" + randomHex(4)
	start := time.Now()
	if _, err := store.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &store.Bucket, Key: &key, Body: f,
		ContentLength: aws.Int64(s3BenchSize)}); err != nil {
		b.Fatalf("store PutObject: %v", err)
	}
	d := time.Since(start)
	storeDelete(b, store, key)
	return d
}

func storeDelete(b *testing.B, store *testkit.Weed, key string) {
	b.Helper()
	if _, err := store.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &store.Bucket, Key: &key}); err != nil {
		b.Fatal(err)
	}
}

// storeGet times the store's own GET of the objects keys by a plain
// client, one after the other, each saved whole into a file on the local
// disk as a download is (the delivery's end is a file on the one-off's
// disk); it returns the time and the bytes, and removes the files.
func storeGet(b *testing.B, store *testkit.Weed, keys []string) (time.Duration, int64) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	var n int64
	start := time.Now()
	for i, k := range keys {
		out, err := store.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &store.Bucket, Key: &k})
		if err != nil {
			b.Fatalf("store GET %s: %v", k, err)
		}
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		m, err := io.Copy(f, out.Body)
		out.Body.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatalf("store GET %s: %v", k, err)
		}
		n += m
	}
	d := time.Since(start)
	for i := range keys {
		if err := os.Remove(filepath.Join(dir, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	return d, n
}

// deliveryCeiling times the most any bridge can reach for a delivery of
// the file src, stored sealed (encrypted with seal) as the object sealed,
// on this store, platform and machine: the store's GET of the object,
// decrypted on the way into nothing (the platform writes the file), while,
// at the same time, the platform takes the file from the bridge's local
// disk through its upload API (PROTOCOL.md), into a one-off started
// before. That is the work every bridge has, the decryption at rest
// included, and the store's and the platform's own, at once, with nothing
// else and neither waiting on the other. It returns the time until both
// are done.
func deliveryCeiling(b *testing.B, store *testkit.Weed, sealed string, seal *sio.Config, c *oneoff.Client, src string, size int64) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o, err := c.Start(ctx, oneoff.RunRequest{App: "demo-app", Command: "true"})
	if err != nil {
		b.Fatalf("ceiling: start a one-off: %v", err)
	}
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := atOnce(
		func() error { return o.Upload(ctx, "big", size, f) },
		func() error {
			out, err := store.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &store.Bucket, Key: &sealed})
			if err != nil {
				return fmt.Errorf("store GET %s: %w", sealed, err)
			}
			defer out.Body.Close()
			plain, err := sio.DecryptReader(out.Body, *seal)
			if err != nil {
				return err
			}
			if n, err := io.Copy(io.Discard, plain); err != nil || n != size {
				return fmt.Errorf("store GET %s, decrypted: %d bytes, %v", sealed, n, err)
			}
			return nil
		})
	if err != nil {
		b.Fatalf("ceiling: %v", err)
	}
	// The one-off ends once attached: it runs `true`.
	stream, err := o.Attach(ctx)
	if err != nil {
		b.Fatalf("ceiling: attach: %v", err)
	}
	io.Copy(io.Discard, stream)
	stream.Close()
	if code, err := o.Wait(ctx); err != nil || code != 0 {
		b.Fatalf("ceiling: the one-off ended with %d, %v", code, err)
	}
	return d
}

// lastDelivered is the duration of the last upload_delivered event of the
// audit stream in file.
func lastDelivered(b *testing.B, file string) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var last time.Duration = -1
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e struct {
			Event      string  `json:"event"`
			DurationMS float64 `json:"duration_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Event == "upload_delivered" {
			last = time.Duration(e.DurationMS * float64(time.Millisecond))
		}
	}
	if last < 0 {
		b.Fatalf("no upload_delivered event in the audit stream:\n%s", tail(string(raw), 5))
	}
	return last
}

// cpuUse is CPU seconds used so far by the store and the bridge.
type cpuUse struct{ weed, bridge float64 }

// cpuOf returns a function that reads the CPU time of the store's process
// and the bridge's (its embedded platform and the one-offs it reaped
// included), for the figures given for information: on a machine of few
// cores the store and the bridge share the CPU.
func cpuOf(b *testing.B, store *testkit.Weed, br *Bridge) func() cpuUse {
	return func() cpuUse {
		return cpuUse{weed: cpuSeconds(b, store.Pid()), bridge: cpuSeconds(b, br.cmd.Process.Pid)}
	}
}

// atOnce runs each of work on a goroutine of its own, all at the same
// time, and returns when the last is done: the time it took and the
// first failure.
func atOnce(work ...func() error) (time.Duration, error) {
	start := time.Now()
	errs := make([]error, len(work))
	var wg sync.WaitGroup
	for i, w := range work {
		wg.Go(func() { errs[i] = w() })
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// ceilingPut times the most any SSH bridge on this store can reach for
// the file src on this machine: the store's own PUT of it, encrypted on
// the way with seal (storeUpload, its parts as the bridge's), while, at the
// same time, OpenSSH's sftp sends it through sshd to sftp-server, which
// drops it (/dev/null). That is the work every bridge has, its SSH as
// cheap as OpenSSH makes it and the encryption at rest, and the store's
// own, at once, with nothing else and neither waiting on the other; on a
// machine of few cores they share the CPU. It returns the time until both
// are done.
func ceilingPut(b *testing.B, store *testkit.Weed, src string, sshArgs []string, seal *sio.Config) time.Duration {
	b.Helper()
	wait := sftpStart(b, sshArgs, fmt.Sprintf("put %s /dev/null\n", src))
	var key string
	d, err := atOnce(wait, func() (err error) {
		key, err = storeUpload(store, src, seal)
		return err
	})
	if err != nil {
		b.Fatalf("ceiling: %v", err)
	}
	storeDelete(b, store, key)
	return d
}

// BenchmarkS3Upload compares `sftp put` of 100 MiB through a bridge on the
// S3 staging area (the put returns once the file is stored) with the
// store's own PUT of the same file by a plain client (storePut), and with
// the ceiling (ceilingPut), in rounds of one of each, in turns. For
// information it also times the same put through a bridge on local
// staging, which does strictly less, and the file as one PutObject.
func BenchmarkS3Upload(b *testing.B) {
	store, br, _ := startS3Bench(b)
	local := StartBridge(b, Options{Args: []string{"--log-level", "info"}})
	sshd := StartSSHD(b, br.Key)
	src := bigFile(b, s3BenchSize)
	s3Args := append(br.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", br.Port, "demo-app@"+br.Host)
	localArgs := append(local.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", local.Port, "demo-app@"+local.Host)
	// The ceiling's client and sshd agree on what the same client agrees
	// on with the bridge (bridge/algorithms.go, bridge/kexinit.go), rather
	// than on OpenSSH's own first choices (sntrup761x25519,
	// chacha20-poly1305), which cost more: the ceiling is the bridge's SSH
	// done as cheaply as OpenSSH does.
	sshdArgs := append([]string{"-o", "KexAlgorithms=curve25519-sha256", "-c", "aes128-gcm@openssh.com"},
		sftpServerArgs(b, sshd)...)
	seal := sealing()
	rate := func(d time.Duration) float64 { return s3BenchSize / 1e6 / d.Seconds() }
	put := fmt.Sprintf("put %s big\n", src)
	cpu := cpuOf(b, store, br)
	rates, cpus, ratios := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	last := func(k string) float64 { return rates[k][len(rates[k])-1] }
	for b.Loop() {
		for i := range s3BenchRuns {
			for j := range 5 {
				switch (i + j) % 5 {
				case 0:
					c0 := cpu()
					rates["bridge"] = append(rates["bridge"], rate(sftpRun(b, s3Args, put)))
					c1 := cpu()
					cpus["bridge"] = append(cpus["bridge"], c1.bridge-c0.bridge)
					cpus["bridge-weed"] = append(cpus["bridge-weed"], c1.weed-c0.weed)
					sftpRun(b, s3Args, "rm big\n")
				case 1:
					c0 := cpu()
					rates["store"] = append(rates["store"], rate(storePut(b, store, src)))
					cpus["store-weed"] = append(cpus["store-weed"], cpu().weed-c0.weed)
				case 2:
					rates["ceiling"] = append(rates["ceiling"], rate(ceilingPut(b, store, src, sshdArgs, seal)))
				case 3:
					rates["local"] = append(rates["local"], rate(sftpRun(b, localArgs, put)))
					sftpRun(b, localArgs, "rm big\n")
				case 4:
					rates["putobject"] = append(rates["putobject"], rate(storePutObject(b, store, src)))
				}
			}
			ratios["store"] = append(ratios["store"], last("bridge")/last("store"))
			ratios["ceiling"] = append(ratios["ceiling"], last("ceiling")/last("store"))
			ratios["to-ceiling"] = append(ratios["to-ceiling"], last("bridge")/last("ceiling"))
		}
	}
	bridgeRate, storeRate, localRate, ceilingRate := median(rates["bridge"]), median(rates["store"]), median(rates["local"]), median(rates["ceiling"])
	ratio, ceiling, toCeiling := median(ratios["store"]), median(ratios["ceiling"]), median(ratios["to-ceiling"])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bridgeRate, "bridge-MB/s")
	b.ReportMetric(storeRate, "store-put-MB/s")
	b.ReportMetric(ceilingRate, "ceiling-MB/s")
	b.ReportMetric(localRate, "local-MB/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(toCeiling, "ratio-to-ceiling")
	b.Logf("sftp put 100 MiB, %d rounds: bridge on S3 %.0f MB/s %.0f, the store's own PUT %.0f MB/s %.0f; ratio (median of the rounds' %.2f) %.2f (target ≥ %.1f)",
		len(rates["bridge"]), bridgeRate, rates["bridge"], storeRate, rates["store"], ratios["store"], ratio, s3UploadRatioMin)
	b.Logf("the ceiling (the store's PUT of the file, encrypted on the way, while sshd and sftp-server take it at the same time): %.0f MB/s %.0f, of the store's PUT (median of the rounds' %.2f) %.2f; the bridge over it (%.2f) %.2f",
		ceilingRate, rates["ceiling"], ratios["ceiling"], ceiling, ratios["to-ceiling"], toCeiling)
	b.Logf("for information, the bridge on local staging: %.0f MB/s %.0f; S3 staging is %.2f of it",
		localRate, rates["local"], bridgeRate/localRate)
	b.Logf("for information, the store's PUT as one PutObject: %.0f MB/s %.0f; the bridge is %.2f of it",
		median(rates["putobject"]), rates["putobject"], bridgeRate/median(rates["putobject"]))
	b.Logf("for information, CPU seconds per 100 MiB (medians): bridge put: bridge %.2f, weed %.2f; the store's PUT: weed %.2f",
		median(cpus["bridge"]), median(cpus["bridge-weed"]), median(cpus["store-weed"]))
	s3Gate(b, "sftp put on S3 staging", "the store's PUT", ratio, ceiling, toCeiling, s3UploadRatioMin, s3UploadCeilingMin)
}

// BenchmarkS3Delivery times the delivery of a staged 100 MiB file from the
// S3 staging area to the one-off (a session's start with the file pending,
// less the same start with nothing pending, as BenchmarkDelivery does),
// against the store's own GET of the objects the staged file left in the
// store, downloaded into a file by a plain client (storeGet), and against
// the ceiling (deliveryCeiling), in rounds of one of each. For information
// it also times the same delivery from local staging.
func BenchmarkS3Delivery(b *testing.B) {
	auditLog := filepath.Join(b.TempDir(), "audit")
	store, br, prefix := startS3Bench(b, "--audit-log", auditLog)
	local := StartBridge(b, Options{Args: []string{"--log-level", "info"}})
	platform, err := oneoff.New(oneoff.Config{APIURL: startPlatformProcess(b).url, APIToken: canaryToken})
	if err != nil {
		b.Fatal(err)
	}
	src := bigFile(b, s3BenchSize)
	seal := sealing()
	// The ceiling's copy of the file, stored encrypted as the bridge stores it.
	sealed, err := storeUpload(store, src, seal)
	if err != nil {
		b.Fatalf("store a sealed copy: %v", err)
	}
	put := fmt.Sprintf("put %s big\n", src)
	session := func(br *Bridge) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		r := runCmd(b, br.SSH(ctx, "demo-app", nil, "true"), nil)
		if r.Code != 0 {
			b.Fatalf("session: exit %d\n%s", r.Code, r.Stderr)
		}
		return time.Since(start)
	}
	rate := func(d time.Duration) float64 { return s3BenchSize / 1e6 / d.Seconds() }
	cpu := cpuOf(b, store, br)
	rates, cpus, ratios := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	var stored int64
	for b.Loop() {
		for range s3BenchRuns {
			before := store.Keys(prefix)
			sftpRun(b, append(br.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", br.Port, "demo-app@"+br.Host), put)
			var staged []string
			for _, k := range store.Keys(prefix) {
				if !slices.Contains(before, k) {
					staged = append(staged, k)
				}
			}
			c0 := cpu()
			d, n := storeGet(b, store, staged)
			cpus["store-weed"] = append(cpus["store-weed"], cpu().weed-c0.weed)
			if n < s3BenchSize {
				b.Fatalf("the staged file left %d bytes in the store (%d objects), less than the file", n, len(staged))
			}
			stored = n
			rates["store"] = append(rates["store"], rate(d))
			rates["ceiling"] = append(rates["ceiling"], rate(deliveryCeiling(b, store, sealed, seal, platform, src, s3BenchSize)))
			c0 = cpu()
			withFile := session(br)
			c1 := cpu()
			empty := session(br)
			c2 := cpu()
			cpus["bridge"] = append(cpus["bridge"], (c1.bridge-c0.bridge)-(c2.bridge-c1.bridge))
			cpus["bridge-weed"] = append(cpus["bridge-weed"], (c1.weed-c0.weed)-(c2.weed-c1.weed))
			rates["transfer"] = append(rates["transfer"], rate(lastDelivered(b, auditLog)))
			rates["delivery"] = append(rates["delivery"], rate(withFile-empty))
			last := func(k string) float64 { return rates[k][len(rates[k])-1] }
			ratios["store"] = append(ratios["store"], last("delivery")/last("store"))
			ratios["ceiling"] = append(ratios["ceiling"], last("ceiling")/last("store"))
			ratios["to-ceiling"] = append(ratios["to-ceiling"], last("delivery")/last("ceiling"))

			sftpRun(b, append(local.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", local.Port, "demo-app@"+local.Host), put)
			withFile, empty = session(local), session(local)
			rates["local"] = append(rates["local"], rate(withFile-empty))
		}
	}
	deliveryRate, storeRate, localRate, ceilingRate := median(rates["delivery"]), median(rates["store"]), median(rates["local"]), median(rates["ceiling"])
	ratio, ceiling, toCeiling := median(ratios["store"]), median(ratios["ceiling"]), median(ratios["to-ceiling"])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(deliveryRate, "delivery-MB/s")
	b.ReportMetric(storeRate, "store-get-MB/s")
	b.ReportMetric(ceilingRate, "ceiling-MB/s")
	b.ReportMetric(localRate, "local-MB/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(toCeiling, "ratio-to-ceiling")
	b.Logf("delivery of 100 MiB, %d rounds: from S3 %.0f MB/s %.0f, the store's own GET of its %d stored bytes %.0f MB/s %.0f; ratio (median of the rounds' %.2f) %.2f (target ≥ %.1f)",
		len(rates["delivery"]), deliveryRate, rates["delivery"], stored, storeRate, rates["store"], ratios["store"], ratio, s3DeliveryRatioMin)
	b.Logf("the ceiling (the store's GET of a sealed copy, decrypted, while the platform takes the file from disk at the same time): %.0f MB/s %.0f, of the store's GET (median of the rounds' %.2f) %.2f; the delivery over it (%.2f) %.2f",
		ceilingRate, rates["ceiling"], ratios["ceiling"], ceiling, ratios["to-ceiling"], toCeiling)
	b.Logf("for information, delivery from local staging: %.0f MB/s %.0f; S3 staging is %.2f of it",
		localRate, rates["local"], deliveryRate/localRate)
	b.Logf("for information, the file's own time in the delivery (the audit stream's upload_delivered: from the start of the delivery, its listing and lease included, to the platform's answer): %.0f MB/s %.0f, %.2f of the GET",
		median(rates["transfer"]), rates["transfer"], median(rates["transfer"])/storeRate)
	b.Logf("for information, CPU seconds per 100 MiB (medians): delivery: bridge with its embedded platform %.2f, weed %.2f; the store's GET: weed %.2f",
		median(cpus["bridge"]), median(cpus["bridge-weed"]), median(cpus["store-weed"]))
	s3Gate(b, "delivery from S3 staging", "the store's GET", ratio, ceiling, toCeiling, s3DeliveryRatioMin, s3DeliveryCeilingMin)
}

// s3Gate checks ratio (the bridge's rate over the store's own, the median
// of the rounds') against the target. While that is missed, it
// reports whether the run's ceiling (ceiling, over the store's own rate)
// put the target within reach, and holds the bridge to minToCeiling of the
// ceiling (toCeiling, the median of the rounds').
func s3Gate(b *testing.B, what, storeName string, ratio, ceiling, toCeiling, target, minToCeiling float64) {
	b.Helper()
	if ratio >= target {
		b.Logf("issue target ≥ %.1f of %s: met (%.2f)", target, storeName, ratio)
		return
	}
	reach := "out of reach in this run"
	if ceiling >= target {
		reach = "within reach in this run"
	}
	b.Logf("issue target ≥ %.1f of %s: MISSED (%.2f), %s: the ceiling is %.2f of it; gate: the bridge over the ceiling %.2f (want ≥ %.1f)",
		target, storeName, ratio, reach, ceiling, toCeiling, minToCeiling)
	if toCeiling < minToCeiling {
		b.Fatalf("%s: %.2f of the ceiling, want at least %.1f", what, toCeiling, minToCeiling)
	}
}
