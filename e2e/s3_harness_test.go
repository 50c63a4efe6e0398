package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Store is a real S3-compatible store for the staging-area tests:
// SeaweedFS (`weed server` with its S3 gateway), bound to 127.0.0.1 on free
// ports, telemetry off, one bucket made and one identity with its access
// keys. The binary is the one .ci/run builds, found through
// BRIDGE_TEST_WEED.
type S3Store struct {
	t        testing.TB
	Endpoint string // http://127.0.0.1:PORT, the S3 gateway
	Bucket   string
	Region   string
	Access   string // access key id
	Secret   string // secret access key
	Client   *s3.Client

	dir    string         // data, metadata and the identities file
	grpc   map[string]int // the gRPC port of each server (master, volume, filer, s3)
	shared bool           // SharedS3's: never stopped by a test
	args   []string       // weed's arguments, the same at every start
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// s3Region is what the store is told it is; SeaweedFS takes any region in
// a signature.
const s3Region = "us-east-1"

// weedBinary returns BRIDGE_TEST_WEED, failing the test when it is unset
// or not an executable file.
func weedBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("BRIDGE_TEST_WEED")
	if p == "" {
		t.Fatal("BRIDGE_TEST_WEED is not set: it names the SeaweedFS binary the S3 tests need (.ci/run builds it and sets it)")
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("BRIDGE_TEST_WEED=%s is not an executable file (%v)", p, err)
	}
	return p
}

// StartS3 starts a SeaweedFS store of the test's own, waits until a real
// write and read through its S3 gateway succeed, and makes the bucket. It
// is killed at the end of the test, its log shown if the test failed.
func StartS3(t testing.TB) *S3Store {
	t.Helper()
	s := launchS3(t, t.TempDir())
	t.Cleanup(func() {
		s.Stop()
		s.removeSockets()
		if t.Failed() {
			t.Logf("weed log (last lines):\n%s", tail(s.log.String(), 40))
		}
	})
	return s
}

// sharedStore is the store of SharedS3.
var sharedStore struct {
	sync.Mutex
	s *S3Store
}

// SharedS3 returns the store the tests that never stop it share, each
// under a prefix or keys of its own: started at the first call (a store
// takes about 10 s to start), killed with its data removed by stopSharedS3
// at the end of TestMain. The S3Store returned is the caller's: its Stop
// and Start fail the test.
func SharedS3(t testing.TB) *S3Store {
	t.Helper()
	sharedStore.Lock()
	defer sharedStore.Unlock()
	if sharedStore.s == nil {
		dir, err := os.MkdirTemp("", "bridge-e2e-weed-")
		if err != nil {
			t.Fatal(err)
		}
		s := launchS3(t, dir)
		s.shared = true
		sharedStore.s = s
	}
	s := *sharedStore.s
	s.t = t
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("weed log (last lines):\n%s", tail(s.log.String(), 40))
		}
	})
	return &s
}

// stopSharedS3 kills the shared store, if it was started, and removes its
// data.
func stopSharedS3() {
	sharedStore.Lock()
	defer sharedStore.Unlock()
	if s := sharedStore.s; s != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		s.removeSockets()
		os.RemoveAll(s.dir)
		sharedStore.s = nil
	}
}

// launchS3 starts a store with its data in dir, waits until it serves and
// makes the bucket; it fails the test if it cannot.
func launchS3(t testing.TB, dir string) *S3Store {
	t.Helper()
	weed := weedBinary(t)
	s := &S3Store{
		t:      t,
		dir:    dir,
		Bucket: "bridge-staging",
		Region: s3Region,
		Access: "AK" + randomHex(9),
		Secret: randomHex(20),
	}
	identities := map[string]any{"identities": []any{map[string]any{
		"name":        "bridge",
		"credentials": []any{map[string]string{"accessKey": s.Access, "secretKey": s.Secret}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	raw, _ := json.Marshal(identities)
	config := filepath.Join(s.dir, "s3.json")
	if err := os.WriteFile(config, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// Free ports are found by binding and releasing them, which another
	// process may take in between: a start that fails is tried again on
	// other ports.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		ports := freePorts(t, 8)
		p := func(i int) string { return strconv.Itoa(ports[i]) }
		s.Endpoint = "http://127.0.0.1:" + p(0)
		s.args = []string{"-logtostderr", "server",
			"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-dir=" + filepath.Join(s.dir, "data"),
			"-master.dir=" + filepath.Join(s.dir, "master"),
			"-master.telemetry=false",
			// A restarted master waits for an election; alone, it wins at
			// the first.
			"-master.electionTimeout=1s",
			"-master.volumeSizeLimitMB=256",
			"-volume.max=0", "-volume.preStopSeconds=0",
			"-master.port=" + p(1), "-master.port.grpc=" + p(2),
			"-volume.port=" + p(3), "-volume.port.grpc=" + p(4),
			"-filer", "-filer.port=" + p(5), "-filer.port.grpc=" + p(6),
			"-s3", "-s3.port=" + p(0), "-s3.port.grpc=" + p(7),
			"-s3.port.iceberg=0", "-s3.port.lance=0",
			"-s3.config=" + config,
			"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"),
			"-s3.localSocket=" + filepath.Join(s.dir, "s3.sock"),
		}
		s.grpc = map[string]int{"master": ports[2], "volume": ports[4], "filer": ports[6], "s3": ports[7]}
		for _, d := range []string{"data", "master"} {
			if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		s.Client = s.newClient(nil)
		if err = s.tryStart(weed); err == nil {
			break
		}
		s.kill()
		s.removeSockets()
		t.Logf("weed start, attempt %d: %v\n%s", attempt, err, tail(s.log.String(), 20))
	}
	if err != nil {
		t.Fatalf("weed did not start: %v", err)
	}
	return s
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
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

// removeSockets removes the Unix sockets weed made for its gRPC ports,
// at paths of its own choosing in /tmp, which a killed weed leaves.
func (s *S3Store) removeSockets() {
	for name, port := range s.grpc {
		os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
	}
}

// tryStart starts weed and waits until it serves, making the bucket on the
// first start.
func (s *S3Store) tryStart(weed string) error {
	cmd := exec.Command(weed, s.args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	return s.waitReady(90 * time.Second)
}

// waitReady polls the store with real requests until the bucket exists
// (making it) and an object can be written, read back and deleted, within
// the time given, or until weed exits.
func (s *S3Store) waitReady(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	probe := ".ready-" + randomHex(4)
	var last error
	for {
		last = s.probe(ctx, probe)
		if last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("weed exited: %v (last request: %v)", s.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %v", within, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *S3Store) probe(ctx context.Context, key string) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Client.HeadBucket(rctx, &s3.HeadBucketInput{Bucket: &s.Bucket}); err != nil {
		if _, err := s.Client.CreateBucket(rctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
			return fmt.Errorf("create bucket: %w", err)
		}
	}
	want := []byte("ready " + key)
	if _, err := s.Client.PutObject(rctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: &key, Body: bytes.NewReader(want)}); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	got, err := s.get(rctx, key)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("get %s: %q, want %q", key, got, want)
	}
	if _, err := s.Client.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// newClient is a plain S3 client of the store, configured as the contract
// of the staging area says the bridge's is: path-style addressing on an
// explicit endpoint, checksums only when required. httpClient nil is the
// SDK's default.
func (s *S3Store) newClient(httpClient *http.Client) *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.Access, s.Secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		// The SDK's client-side retry budget would run dry while the store
		// starts or is down, and fail later calls at once.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None }),
		HTTPClient: func() s3.HTTPClient {
			if httpClient == nil {
				return nil
			}
			return httpClient
		}(),
	})
}

func (s *S3Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// Stop kills weed (SIGKILL to its process group), as a store that crashes
// or loses its network: its graceful stop takes 15 s and more. What it
// stored stays for a Start.
func (s *S3Store) Stop() {
	if s.shared {
		s.t.Fatal("S3Store.Stop: the shared store is never stopped (StartS3 gives a test its own)")
	}
	s.kill()
}

func (s *S3Store) kill() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Start starts the stopped store again, on the same ports and data, and
// waits until it serves.
func (s *S3Store) Start() {
	s.t.Helper()
	if s.shared || s.cmd != nil {
		s.t.Fatal("S3Store.Start: the store is running")
	}
	if err := s.tryStart(weedBinary(s.t)); err != nil {
		s.t.Fatalf("weed restart: %v\n%s", err, tail(s.log.String(), 40))
	}
}

// Env is the environment that points a bridge, as AWS tools are pointed,
// at the store: its endpoint, region and keys, and no shared config or
// instance metadata of the machine the tests run on.
func (s *S3Store) Env(t testing.TB) []string {
	none := filepath.Join(t.TempDir(), "none")
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.Access,
		"AWS_SECRET_ACCESS_KEY=" + s.Secret,
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// StagingKey writes a new staging key file (256 bits, base64, as
// `openssl rand -base64 32` makes it) and returns its path.
func StagingKey(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	p := filepath.Join(t.TempDir(), "staging.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Keys lists every object key under prefix.
func (s *S3Store) Keys(prefix string) []string {
	s.t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			s.t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// Get reads an object whole.
func (s *S3Store) Get(key string) []byte {
	s.t.Helper()
	b, err := s.get(context.Background(), key)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// httpStatus is the HTTP status of a failed S3 call, 0 if it has none.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// The store the staging area is tested on honours the conditional writes
// its leases rely on: If-None-Match: * creates only, If-Match: ETAG
// replaces only that version, and a refusal is 412. Three concurrent
// creates of one key give exactly one success (the fix for SeaweedFS's
// issue 8800 is in the pinned build), over many keys.
func TestS3StoreConditionalWrites(t *testing.T) {
	s := SharedS3(t)
	ctx := context.Background()
	prefix := "conditional-" + randomHex(4) + "/"
	put := func(key, body string, ifNoneMatch, ifMatch *string) (*s3.PutObjectOutput, error) {
		key = prefix + key
		return s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: &key,
			Body: bytes.NewReader([]byte(body)), IfNoneMatch: ifNoneMatch, IfMatch: ifMatch})
	}
	want412 := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: succeeded, want 412", what)
		}
		if httpStatus(err) != http.StatusPreconditionFailed {
			t.Fatalf("%s: %v (status %d), want 412", what, err, httpStatus(err))
		}
	}

	first, err := put("lease", "one", aws.String("*"), nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err = put("lease", "two", aws.String("*"), nil)
	want412("a second create of an existing key", err)
	if got := string(s.Get(prefix + "lease")); got != "one" {
		t.Fatalf("after a refused create the object is %q", got)
	}
	second, err := put("lease", "three", nil, first.ETag)
	if err != nil {
		t.Fatalf("replace with If-Match of the current ETag: %v", err)
	}
	if *second.ETag == *first.ETag {
		t.Fatalf("a replaced object kept its ETag %s", *first.ETag)
	}
	_, err = put("lease", "four", nil, first.ETag)
	want412("replace with If-Match of a stale ETag", err)
	_, err = put("absent", "five", nil, first.ETag)
	if err == nil {
		t.Fatal("If-Match on a missing key succeeded")
	}
	if got := string(s.Get(prefix + "lease")); got != "three" {
		t.Fatalf("after a refused replace the object is %q", got)
	}

	for round := range 20 {
		key := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = put(key, strconv.Itoa(i), aws.String("*"), nil)
			})
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: writers %d and %d both created %s", round, won, i, key)
			case err == nil:
				won = i
			default:
				want412(fmt.Sprintf("round %d: a losing concurrent create", round), err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer created %s: %v", round, key, errs)
		}
		if got := string(s.Get(prefix + key)); got != strconv.Itoa(won) {
			t.Fatalf("round %d: the object holds %q, the winner wrote %d", round, got, won)
		}
	}
}

// TestS3StoreRestart: a stopped store refuses connections, and once
// started again it serves what it held.
func TestS3StoreRestart(t *testing.T) {
	s := StartS3(t)
	ctx := context.Background()
	if _, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: aws.String("kept"),
		Body: bytes.NewReader([]byte("through a restart"))}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.get(rctx, "kept"); err == nil {
		t.Fatal("a stopped store answered")
	}
	s.Start()
	if got := string(s.Get("kept")); got != "through a restart" {
		t.Fatalf("after the restart: %q", got)
	}
}
