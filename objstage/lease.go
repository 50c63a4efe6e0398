package objstage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// errLeaseHeld is a lease another bridge (or another use in this one)
// holds and has not let expire.
var errLeaseHeld = errors.New("held by another bridge")

// lease is one file's lease, held by this Store.
type lease struct {
	key  string
	etag string
}

type leaseBody struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

func (s *Store) leaseBody() []byte {
	b, _ := json.Marshal(leaseBody{Holder: s.holder, Expires: s.now().Add(s.lease)})
	return b
}

// acquire takes the lease of key: creates it (If-None-Match: *), or takes
// over one that expired (If-Match: its ETag). errLeaseHeld when another
// holds it, or won the race for it.
func (s *Store) acquire(ctx context.Context, key string) (*lease, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	body := s.leaseBody()
	out, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), IfNoneMatch: aws.String("*")})
	if err == nil {
		return &lease{key: key, etag: aws.ToString(out.ETag)}, nil
	}
	if !preconditionFailed(err) {
		return nil, err
	}
	// Someone has it: take it over only once it expired.
	got, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if notFound(err) {
		return nil, errLeaseHeld // released meanwhile: the next try may win it
	}
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(got.Body, 4096))
	got.Body.Close()
	if err != nil {
		return nil, err
	}
	var lb leaseBody
	if err := json.Unmarshal(raw, &lb); err == nil && s.now().Before(lb.Expires) {
		return nil, errLeaseHeld
	}
	// Expired (or unreadable: a write cut short): take it over, if no
	// one else did since we read it.
	out, err = s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), IfMatch: got.ETag})
	if preconditionFailed(err) || notFound(err) {
		return nil, errLeaseHeld
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("staging store: took over an expired lease", "lease", key, "holder_was", lb.Holder)
	return &lease{key: key, etag: aws.ToString(out.ETag)}, nil
}

// renew extends a lease held; an error means it may be lost.
func (s *Store) renew(ctx context.Context, l *lease) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	body := s.leaseBody()
	out, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &l.key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), IfMatch: aws.String(l.etag)})
	if err != nil {
		if preconditionFailed(err) {
			return fmt.Errorf("lease %s taken over: %w", l.key, errLeaseHeld)
		}
		return err
	}
	l.etag = aws.ToString(out.ETag)
	return nil
}

// release deletes a lease held (If-Match its ETag, where the store
// honours it). Failures are logged: the lease then expires.
func (s *Store) release(l *lease) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &l.key, IfMatch: aws.String(l.etag)})
	if err != nil && !notFound(err) && !preconditionFailed(err) {
		s.log.Warn("staging store: release lease (it will expire)", "err", oneLine(err))
	}
}

// renewer renews leases every third of their life until stop is closed.
// lost is set when a renewal failed past the lease's life.
type renewer struct {
	stop chan struct{}
	done chan struct{}
}

func (s *Store) renewEvery(leases []*lease) *renewer {
	r := &renewer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(s.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				for _, l := range leases {
					if err := s.renew(context.Background(), l); err != nil {
						s.log.Warn("staging store: renew a delivery's lease", "err", oneLine(err))
					}
				}
			}
		}
	}()
	return r
}

func (r *renewer) end() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}
