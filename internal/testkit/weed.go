package testkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// WeedEnv names the environment variable that gives the SeaweedFS binary
// (`weed`, which .ci/run builds and sets it to). A test that needs the
// store fails when it is unset; it is never skipped.
const WeedEnv = "BRIDGE_TEST_WEED"

// weedReadyWithin bounds a start: the time from exec to the first real
// write and read through the S3 gateway (about 10 s on a quiet machine).
const weedReadyWithin = 90 * time.Second

// Weed is a real S3-compatible store for tests: SeaweedFS (`weed server`
// with its filer and S3 gateway), the binary WeedEnv names, bound to
// 127.0.0.1 on free ports, telemetry off, one identity with its keys (the
// identities file s3.json in Dir), and Bucket made. Its Unix sockets are in
// Dir, and those it makes in /tmp for its gRPC ports are removed when it
// ends. StartWeed gives a test a store of its own, which it may Stop and
// Start; SharedWeed gives the store the tests of a binary share.
type Weed struct {
	Endpoint  string     // the S3 gateway, http://127.0.0.1:PORT
	Bucket    string     // made before the store is handed out: "bridge-staging"
	Region    string     // the region clients sign with: us-east-1 (SeaweedFS takes any)
	AccessKey string     // the identity's access key ID, random per store
	SecretKey string     // the identity's secret access key, random per store
	Client    *s3.Client // a client of Endpoint with the keys (NewClient's, with no retry quota)
	Dir       string     // data, metadata, the identities file, weed.log, the local sockets

	t      testing.TB // fails for Stop, Start, Keys and Get
	shared bool       // SharedWeed's: never stopped by a test
	proc   *weedProc  // shared by the copies SharedWeed hands out
}

// weedProc is the running weed, if any, of a store.
type weedProc struct {
	bin    string
	args   []string       // the same at every start: the same ports and Dir
	grpc   map[string]int // the gRPC port of each server (master, volume, filer, s3)
	cmd    *exec.Cmd      // nil while stopped
	exited chan struct{}  // closed when cmd has been waited for
}

// WeedBinary returns the path WeedEnv gives, failing the test when it is
// unset or not an executable file.
func WeedBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv(WeedEnv)
	if p == "" {
		t.Fatalf("%s is not set: it names the SeaweedFS binary the S3 tests need (.ci/run builds it and sets it)", WeedEnv)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (%v)", WeedEnv, p, err)
	}
	return p
}

// StartWeed starts a store of the test's own, with its data in a
// t.TempDir, and returns once a real write, read and delete through its S3
// gateway succeed. It is killed when the test ends, and the last lines of
// its log are logged if the test failed. It fails the test if the store
// does not serve within 90 s (three tries, on other ports each time).
func StartWeed(t testing.TB) *Weed {
	t.Helper()
	w := launchWeed(t, t.TempDir())
	t.Cleanup(func() {
		w.proc.kill()
		w.proc.removeSockets()
		if t.Failed() {
			t.Logf("weed log (last lines):\n%s", w.LogTail(40))
		}
	})
	return w
}

// sharedWeed is the store of SharedWeed.
var sharedWeed struct {
	sync.Mutex
	w      *Weed
	logged map[testing.TB]bool // the tests whose failure logs the weed log's tail
}

// SharedWeed returns the store the tests of this test binary share, each
// under a bucket, prefix or keys of its own: started at the first call (as
// StartWeed, with its data in a directory of its own under os.TempDir),
// killed with its data removed by StopSharedWeed, which the package's
// TestMain calls after m.Run. The Weed returned is the caller's copy: its
// Keys and Get fail t, its Stop and Start fail t always (StartWeed gives a
// test a store it may stop), and the weed log's last lines are logged once
// if t failed, however many times t called SharedWeed.
func SharedWeed(t testing.TB) *Weed {
	t.Helper()
	sharedWeed.Lock()
	defer sharedWeed.Unlock()
	if sharedWeed.w == nil {
		dir, err := os.MkdirTemp("", "testkit-weed-")
		if err != nil {
			t.Fatal(err)
		}
		ok := false
		defer func() {
			if !ok {
				os.RemoveAll(dir)
			}
		}()
		w := launchWeed(t, dir)
		w.shared = true
		sharedWeed.w = w
		ok = true
	}
	w := *sharedWeed.w
	w.t = t
	if !sharedWeed.logged[t] {
		if sharedWeed.logged == nil {
			sharedWeed.logged = map[testing.TB]bool{}
		}
		sharedWeed.logged[t] = true
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("weed log (last lines):\n%s", w.LogTail(40))
			}
			sharedWeed.Lock()
			delete(sharedWeed.logged, t)
			sharedWeed.Unlock()
		})
	}
	return &w
}

// StopSharedWeed kills the store of SharedWeed, if it was started, removes
// the sockets it left in /tmp and its data. It is for TestMain, after
// m.Run; a later SharedWeed starts a new store.
func StopSharedWeed() {
	sharedWeed.Lock()
	defer sharedWeed.Unlock()
	if w := sharedWeed.w; w != nil {
		w.proc.kill()
		w.proc.removeSockets()
		os.RemoveAll(w.Dir)
		sharedWeed.w = nil
	}
}

// launchWeed starts a store with its data in dir, waits until it serves
// and makes the bucket; it fails the test if it cannot.
func launchWeed(t testing.TB, dir string) *Weed {
	t.Helper()
	w := &Weed{
		t:         t,
		Dir:       dir,
		Bucket:    "bridge-staging",
		Region:    "us-east-1",
		AccessKey: "AK" + randomHex(9),
		SecretKey: randomHex(20),
		proc:      &weedProc{bin: WeedBinary(t)},
	}
	identities := map[string]any{"identities": []any{map[string]any{
		"name":        "tests",
		"credentials": []any{map[string]string{"accessKey": w.AccessKey, "secretKey": w.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	raw, err := json.Marshal(identities)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(config, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"data", "master"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Free ports are found by binding and releasing them, which another
	// process may take in between: a start that fails is tried again on
	// other ports.
	for attempt := 1; ; attempt++ {
		ports := FreePorts(t, 8)
		p := func(i int) string { return strconv.Itoa(ports[i]) }
		w.Endpoint = "http://127.0.0.1:" + p(0)
		w.proc.args = []string{"-logtostderr", "server",
			"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-dir=" + filepath.Join(dir, "data"),
			"-master.dir=" + filepath.Join(dir, "master"),
			"-master.telemetry=false",
			// A restarted master waits for an election; alone, it wins at
			// the first.
			"-master.electionTimeout=1s",
			// A bucket gets 7 volumes at its first write and 7 more once
			// all are full, its writes waiting meanwhile (a stall of up to
			// a second): with 1 GiB volumes that is every 7 GiB written, so
			// that no growth lands inside a benchmark's rounds (each S3
			// benchmark writes about 2 GiB to a store of its own).
			"-master.volumeSizeLimitMB=1024",
			// Volume slots: a fixed number, as the tests make a bucket
			// (7 volumes) each; "0" would allow free disk / 1 GiB, a few
			// dozen buckets on a small disk. Volume files grow as written.
			"-volume.max=1000", "-volume.preStopSeconds=0",
			"-master.port=" + p(1), "-master.port.grpc=" + p(2),
			"-volume.port=" + p(3), "-volume.port.grpc=" + p(4),
			"-filer", "-filer.port=" + p(5), "-filer.port.grpc=" + p(6),
			"-s3", "-s3.port=" + p(0), "-s3.port.grpc=" + p(7),
			"-s3.port.iceberg=0", "-s3.port.lance=0",
			"-s3.config=" + config,
			"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
			"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		}
		w.proc.grpc = map[string]int{"master": ports[2], "volume": ports[4], "filer": ports[6], "s3": ports[7]}
		w.Client = w.NewClient(w.Endpoint, NoRetryQuota)
		err := w.start()
		if err == nil {
			return w
		}
		w.proc.kill()
		w.proc.removeSockets()
		if attempt == 3 {
			t.Fatalf("weed did not start: %v\n%s", err, w.LogTail(40))
		}
		t.Logf("weed start, attempt %d: %v\n%s", attempt, err, w.LogTail(20))
	}
}

// FreePorts returns n distinct loopback ports free at the time of the call
// (each was bound on 127.0.0.1 and released).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// NoRetryQuota is an option of NewClient: the SDK's standard retryer
// without its client-side retry quota, which would run dry while the store
// starts or is down and then fail later calls at once. Weed.Client has it.
func NoRetryQuota(o *s3.Options) {
	o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
}

// NewClient returns an S3 client with the store's keys and region of the
// S3 endpoint given (the store's Endpoint, or a proxy in front of it),
// configured as the staging area's contract says the bridge's is
// (objstage.NewClient): path-style addressing on an explicit endpoint,
// checksums only when required, the SDK's other defaults. The options
// given are applied after.
func (w *Weed) NewClient(endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:                     w.Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(w.AccessKey, w.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, optFns...)
}

// start starts weed with the store's arguments, its output appended to
// Dir/weed.log, and waits until it serves.
func (w *Weed) start() error {
	logf, err := os.OpenFile(w.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // weed holds its own descriptor
	cmd := exec.Command(w.proc.bin, w.proc.args...)
	cmd.Dir = w.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	w.proc.cmd, w.proc.exited = cmd, exited
	return w.waitReady(weedReadyWithin)
}

// waitReady polls the store with real requests every 100 ms until the
// bucket exists (making it) and an object can be written, read back and
// deleted, within the time given, or until weed exits.
func (w *Weed) waitReady(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	key := ".ready-" + randomHex(4)
	for {
		err := w.probe(ctx, key)
		if err == nil {
			return nil
		}
		select {
		case <-w.proc.exited:
			return fmt.Errorf("weed exited: %v (last request: %v)", w.proc.cmd.ProcessState, err)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %v", within, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe makes the bucket if it is missing, then puts, gets and deletes
// key.
func (w *Weed) probe(ctx context.Context, key string) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.Client.HeadBucket(rctx, &s3.HeadBucketInput{Bucket: &w.Bucket}); err != nil {
		if _, err := w.Client.CreateBucket(rctx, &s3.CreateBucketInput{Bucket: &w.Bucket}); err != nil {
			return fmt.Errorf("create bucket: %w", err)
		}
	}
	want := []byte("ready " + key)
	if _, err := w.Client.PutObject(rctx, &s3.PutObjectInput{Bucket: &w.Bucket, Key: &key, Body: bytes.NewReader(want)}); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	got, err := w.GetContext(rctx, key)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("get %s: %q, want %q", key, got, want)
	}
	if _, err := w.Client.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &w.Bucket, Key: &key}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// kill kills weed (SIGKILL to its process group) and waits for it; it does
// nothing while stopped.
func (p *weedProc) kill() {
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// removeSockets removes the Unix sockets weed makes for its gRPC ports, at
// paths of its own choosing in /tmp (/tmp/seaweedfs-SERVER-grpc-PORT.sock),
// which a killed weed leaves.
func (p *weedProc) removeSockets() {
	for name, port := range p.grpc {
		os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
	}
}

// Stop kills weed (SIGKILL to its process group), as a store that crashes
// or loses its network: its graceful stop takes 15 s and more. What it
// stored stays for Start. It fails the test on SharedWeed's store.
func (w *Weed) Stop() {
	w.t.Helper()
	if w.shared {
		w.t.Fatal("Weed.Stop: the shared store is never stopped (StartWeed gives a test its own)")
	}
	w.proc.kill()
}

// Start starts the stopped store again, on the same ports and Dir, and
// waits until it serves (90 s at most). It fails the test if the store is
// running, is SharedWeed's, or does not serve in time.
func (w *Weed) Start() {
	w.t.Helper()
	if w.shared || w.proc.cmd != nil {
		w.t.Fatal("Weed.Start: the store is running")
	}
	if err := w.start(); err != nil {
		w.t.Fatalf("weed restart: %v\n%s", err, w.LogTail(40))
	}
}

// Pid is the process ID of the running weed (the leader of its process
// group), 0 while stopped.
func (w *Weed) Pid() int {
	if w.proc.cmd == nil {
		return 0
	}
	return w.proc.cmd.Process.Pid
}

func (w *Weed) logPath() string { return filepath.Join(w.Dir, "weed.log") }

// LogTail returns the last n lines weed wrote (stdout and stderr, every
// start's), or what reading its log failed with.
func (w *Weed) LogTail(n int) string {
	raw, err := os.ReadFile(w.logPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.SplitAfter(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// Env is the environment that points a process, as AWS tools are pointed,
// at the store: its endpoint, region and keys, and no shared config file
// or instance metadata of the machine the tests run on (the config files
// named are in a t.TempDir and absent).
func (w *Weed) Env(t testing.TB) []string {
	none := filepath.Join(t.TempDir(), "none")
	return []string{
		"AWS_ACCESS_KEY_ID=" + w.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + w.SecretKey,
		"AWS_REGION=" + w.Region,
		"AWS_ENDPOINT_URL_S3=" + w.Endpoint,
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

var bucketSeq atomic.Int64

// NewBucket makes a bucket of the test's own, named after the process,
// a sequence number and the test (lower case, other characters than
// letters and digits as '-', cut to S3's 63 characters), and returns its
// name.
func (w *Weed) NewBucket(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	bucket := fmt.Sprintf("t%d-%d-%s", os.Getpid(), bucketSeq.Add(1), name)
	if len(bucket) > 63 {
		bucket = bucket[:63]
	}
	bucket = strings.TrimRight(bucket, "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	return bucket
}

// Keys lists every object key of Bucket under prefix, in S3's order
// (bytewise).
func (w *Weed) Keys(prefix string) []string {
	w.t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(w.Client, &s3.ListObjectsV2Input{Bucket: &w.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			w.t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// Get reads an object of Bucket whole, failing the test if it cannot.
func (w *Weed) Get(key string) []byte {
	w.t.Helper()
	b, err := w.GetContext(context.Background(), key)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// GetContext reads an object of Bucket whole, within ctx; the error names
// the key.
func (w *Weed) GetContext(ctx context.Context, key string) ([]byte, error) {
	out, err := w.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &w.Bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
