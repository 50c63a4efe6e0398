package objstage

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/internal/testkit"
)

// The tests' store is SeaweedFS, one per test binary, shared by the tests
// (testkit.SharedWeed), each in a bucket of its own.

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.StopSharedWeed()
	os.Exit(code)
}

// newBucket makes a bucket of the test's own on the shared store and
// returns the store's S3 endpoint and the bucket.
func newBucket(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	w := testkit.SharedWeed(t)
	return w.Endpoint, w.NewBucket(t)
}

// testClient is an S3 client with the shared store's keys of endpoint (the
// store, a fault proxy in front of it, or an address where nothing
// listens), configured as NewClient configures the bridge's.
func testClient(t testing.TB, endpoint string) *s3.Client {
	t.Helper()
	return testkit.SharedWeed(t).NewClient(endpoint)
}
