package objstage

import (
	"bytes"
	"context"
	"io"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/uploads"
)

// BenchmarkStore compares, on the same store in the same run, an upload
// of 100 MiB through a Store's writer (spool, encryption, multipart while
// written, entry) with the store's own PutObject of the same bytes, and
// its delivery (GET, decryption) with the store's own GetObject: the
// ratios are logged (store's time / Store's time; 1 means no overhead).
// The gates on these figures are the end-to-end benchmarks', through a
// bridge and real clients; this one shows the store side alone.
func BenchmarkStore(b *testing.B) {
	ep, bucket := newBucket(b)
	s := open(b, ep, bucket, opts{lim: uploadsLimits()})
	c := testClient(b, ep)
	data := randBytes(b, 100<<20)
	var up, put, deliver, get []time.Duration
	for i := 0; i < b.N; i++ {
		f := s.Files("bench", "app")
		t0 := time.Now()
		w, err := f.CreateFile("big", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 32 << 10 {
			if _, err := w.WriteAt(data[off:off+32<<10], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		up = append(up, time.Since(t0))

		t0 = time.Now()
		if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("plain"),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
			b.Fatal(err)
		}
		put = append(put, time.Since(t0))

		t0 = time.Now()
		d, err := f.DeliverFiles(context.Background(), func(_ context.Context, _ string, _ int64, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		deliver = append(deliver, time.Since(t0))
		if err := d.Commit(); err != nil {
			b.Fatal(err)
		}

		t0 = time.Now()
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("plain")})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, out.Body); err != nil {
			b.Fatal(err)
		}
		out.Body.Close()
		get = append(get, time.Since(t0))
	}
	m := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.Logf("100 MiB upload: Store %v, PutObject %v: ratio %.2f; delivery: Store %v, GetObject %v: ratio %.2f (medians of %d)",
		m(up), m(put), float64(m(put))/float64(m(up)), m(deliver), m(get), float64(m(get))/float64(m(deliver)), b.N)
}

func uploadsLimits() uploads.Limits { return uploads.Limits{MaxFileSize: 200 << 20} }
