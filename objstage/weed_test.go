package objstage

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The tests' SeaweedFS: the binary BRIDGE_TEST_WEED names (.ci/run builds
// it), one `weed server -s3` per test binary, on loopback ports of its own.
const (
	weedAccessKey = "test-access-key"
	weedSecretKey = "test-secret-key-0123456789"
)

var weedEndpoint string // http://127.0.0.1:PORT, once started

func TestMain(m *testing.M) {
	code := m.Run()
	stopWeed()
	os.Exit(code)
}

var (
	weedCmd   *exec.Cmd
	weedDir   string
	weedGRPCs map[string]int // gRPC port by server, for the sockets weed makes in /tmp
)

func stopWeed() {
	if weedCmd != nil && weedCmd.Process != nil {
		_ = weedCmd.Process.Kill()
		_ = weedCmd.Wait()
	}
	if weedDir != "" {
		os.RemoveAll(weedDir)
	}
	// The Unix sockets weed makes for its gRPC ports, at paths of its own
	// choosing in /tmp, which a killed weed leaves.
	for name, port := range weedGRPCs {
		os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
	}
}

// freePorts finds n free loopback ports (each with its port+10000 free
// too, which SeaweedFS takes for gRPC when not told).
func freePorts(t testing.TB, n int) []int {
	var out []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		if p > 55000 {
			continue
		}
		out = append(out, p)
	}
	return out
}

// weed starts SeaweedFS once for the test binary and returns its S3
// endpoint. A missing binary fails the test.
func weed(t testing.TB) string {
	t.Helper()
	if weedEndpoint != "" {
		return weedEndpoint
	}
	bin := os.Getenv("BRIDGE_TEST_WEED")
	if bin == "" {
		t.Fatal("BRIDGE_TEST_WEED is not set: it names the SeaweedFS binary (.ci/run builds it)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("BRIDGE_TEST_WEED: %v", err)
	}
	dir, err := os.MkdirTemp("", "objstage-weed-")
	if err != nil {
		t.Fatal(err)
	}
	weedDir = dir
	cfg := filepath.Join(dir, "s3.json")
	ident := fmt.Sprintf(`{"identities":[{"name":"test","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`,
		weedAccessKey, weedSecretKey)
	if err := os.WriteFile(cfg, []byte(ident), 0o600); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 8)
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + dir, "-filer", "-s3",
		"-s3.config=" + cfg, "-master.telemetry=false", "-volume.max=0", "-master.volumeSizeLimitMB=256",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock")}
	weedGRPCs = map[string]int{"master": p[1], "volume": p[3], "filer": p[5], "s3": p[7]}
	weedCmd = exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	weedCmd.Stdout, weedCmd.Stderr = logf, logf
	if err := weedCmd.Start(); err != nil {
		t.Fatalf("start weed: %v", err)
	}
	ep := "http://127.0.0.1:" + strconv.Itoa(p[6])
	c := testClient(ep)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			stopWeed()
			t.Fatalf("weed did not serve S3 within 90 s: %v\n%s", err, tail(string(log), 3000))
		}
		time.Sleep(200 * time.Millisecond) // polling the S3 API: it answers once the filer and volume joined
	}
	weedEndpoint = ep
	return ep
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// testClient is an S3 client of the test store, as NewClient makes one.
func testClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(weedAccessKey, weedSecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

var bucketSeq int

// newBucket makes a bucket of its own for a test.
func newBucket(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	ep := weed(t)
	bucketSeq++
	bucket = fmt.Sprintf("t%d-%d-%s", os.Getpid(), bucketSeq, strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(bucket) > 63 {
		bucket = bucket[:63]
	}
	bucket = strings.TrimRight(bucket, "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := testClient(ep).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	return ep, bucket
}
