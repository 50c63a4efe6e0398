package uploads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Files sent at once, finishing in any order, look sent one after the
// other: progress file by file, each file's last byte read only once the
// file before it was accepted, at most deliverParallel in flight.
func TestDeliverParallelKeepsOrder(t *testing.T) {
	s, c := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	const n = 60
	var want []string
	for i := range n {
		// Names out of alphabetical order: the order is the staging order.
		name := fmt.Sprintf("f%02d", (i*37)%n)
		put(t, sc, name, []byte(strings.Repeat("x", i%5))) // empty files too
		c.Add(time.Second)
		want = append(want, name)
	}
	var (
		mu       sync.Mutex
		inFlight int
		most     int
		accepted = map[string]bool{}
		events   []string
		errs     []string
	)
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // finish in any order
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		// Every earlier file was accepted before this one's last byte
		// was read (an empty file: before its send began).
		i := slices.Index(want, name)
		for _, earlier := range want[:i] {
			if !accepted[earlier] {
				errs = append(errs, fmt.Sprintf("%s (%d bytes) read whole before %s was accepted", name, len(b), earlier))
				break
			}
		}
		accepted[name] = true
		return nil
	}
	progress := func(name string, sent, size int64, ok bool) {
		events = append(events, fmt.Sprintf("%s %d/%d %v", name, sent, size, ok))
	}
	d, err := sc.Deliver(context.Background(), send, progress)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("order broken:\n%s", strings.Join(errs, "\n"))
	}
	if most > deliverParallel {
		t.Fatalf("%d files in flight at once, want at most %d", most, deliverParallel)
	}
	if !slices.Equal(d.Files(), want) {
		t.Fatalf("files = %q\nwant %q", d.Files(), want)
	}
	// Progress: for each file in turn, a start, its counts, then its
	// acceptance, never interleaved with another file's.
	var got []string
	for _, e := range events {
		name := strings.Fields(e)[0]
		if len(got) == 0 || got[len(got)-1] != name {
			got = append(got, name)
		}
		if strings.HasSuffix(e, "true") && got[len(got)-1] != name {
			t.Fatalf("accepted out of turn: %s", e)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("progress order %q\nwant %q\nevents %q", got, want, events)
	}
	for i, name := range want {
		size := i % 5
		first := slices.Index(events, fmt.Sprintf("%s 0/%d false", name, size))
		last := slices.Index(events, fmt.Sprintf("%s %d/%d true", name, size, size))
		if first < 0 || last < first {
			t.Fatalf("%s: start at %d, acceptance at %d in %q", name, first, last, events)
		}
	}
}

// A failure stops the files after it; those before it are sent whole,
// and the error names the failed file and every file as still pending.
func TestDeliverParallelFailure(t *testing.T) {
	s, c := newStore(t, t.TempDir(), Limits{})
	sc := s.Scope("u", "a")
	var names []string
	for i := range 20 {
		name := fmt.Sprintf("f%02d", i)
		put(t, sc, name, []byte("content"))
		c.Add(time.Second)
		names = append(names, name)
	}
	fail := errors.New("refused")
	var mu sync.Mutex
	whole := map[string]bool{}
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		if name == "f05" {
			return fail
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		mu.Lock()
		whole[name] = len(b) == int(size)
		mu.Unlock()
		return nil
	}
	_, err := sc.Deliver(context.Background(), send, nil)
	var de *DeliveryError
	if !errors.As(err, &de) || !errors.Is(err, fail) || de.File != "f05" {
		t.Fatalf("deliver = %v", err)
	}
	if !slices.Equal(de.Pending, names) {
		t.Fatalf("pending = %q", de.Pending)
	}
	for _, name := range names[:5] {
		if !whole[name] {
			t.Errorf("%s, before the failure, not sent whole", name)
		}
	}
	for _, name := range names[6:] {
		if whole[name] {
			t.Errorf("%s, after the failure, sent whole", name)
		}
	}
	if p := pendingNames(t, sc); !slices.Equal(p, names) {
		t.Fatalf("pending after failure = %q", p)
	}
}
