package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/internal/testkit"
)

// The S3 staging tests run on a real SeaweedFS: testkit.SharedWeed for
// those that never stop the store (each under a prefix of its own; it is
// killed at the end of TestMain), testkit.StartWeed for those that Stop
// and Start it. Here are what they add: the staging key, the status of a
// failed call, and the tests of the store itself.

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
	s := testkit.SharedWeed(t)
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
	s := testkit.StartWeed(t)
	ctx := context.Background()
	if _, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: aws.String("kept"),
		Body: bytes.NewReader([]byte("through a restart"))}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.GetContext(rctx, "kept"); err == nil {
		t.Fatal("a stopped store answered")
	}
	s.Start()
	if got := string(s.Get("kept")); got != "through a restart" {
		t.Fatalf("after the restart: %q", got)
	}
}
