package uploads

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
)

// deliverParallel bounds the files of one delivery in flight at once. Sent
// one at a time, many small files cost a round trip each (the request, the
// platform's file creation, its answer); a few in flight overlap those.
// The platform sees at most this many uploads of one delivery at once.
const deliverParallel = 8

// progressChunk is how much of a file WriteTo (sendfile) sends between two
// progress reports.
const progressChunk = 8 << 20

// errStopped is the cause given to the files after one that failed: they
// are not sent, or their sending is cancelled.
var errStopped = errors.New("an earlier file of the delivery failed")

var errShortSend = errors.New("the file was not read to its end")

// fileResult is where one file of a delivery stands.
type fileResult struct {
	name     string // as it was named when sent; the snapshot's until then
	reached  bool   // its sending began (the file was found and opened)
	accepted bool
	skipped  bool // removed, replaced or expired before it was sent
	err      error
	begun    chan struct{} // closed once send read its first byte, or the file is over
	done     chan struct{} // closed once the fields above are final
	stop     context.CancelCauseFunc
}

// deliverAll sends files, at most deliverParallel at once, started in
// their order. The order stays what a user sees when the files go one
// after the other: progress reports come file after file (orderedProgress),
// a file's send starts only once the file before it has begun (holds its
// connection), and the last byte of a file (an empty file: its send) is
// handed over only once every file before it was accepted, so that the
// platform finishes writing the files in order and their modification
// times never go back. A file that fails stops the files after it; those
// before it go on. It returns each file's result and the index of the
// first file, in order, that failed by itself (-1 if none: then err is
// ctx's cause, or nil).
func (sc *Scope) deliverAll(ctx context.Context, files []deliveredFile, send SendFunc, progress ProgressFunc) ([]fileResult, int, error) {
	res := make([]fileResult, len(files))
	for i := range res {
		res[i].name = files[i].name
		res[i].begun = make(chan struct{})
		res[i].done = make(chan struct{})
	}
	op := &orderedProgress{fn: progress, files: make([]progressState, len(files))}
	var (
		mu     sync.Mutex
		failed = len(files) // lowest index that failed by itself
		wg     sync.WaitGroup
		sem    = make(chan struct{}, deliverParallel)
	)
	stopAfter := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		if i >= failed {
			return
		}
		failed = i
		for j := i + 1; j < len(res); j++ {
			if res[j].stop != nil {
				res[j].stop(errStopped)
			}
		}
	}
	for i := range files {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		if ctx.Err() != nil || i > failed {
			mu.Unlock()
			break
		}
		fctx, stop := context.WithCancelCause(ctx)
		res[i].stop = stop
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer stop(nil)
			r := &res[i]
			var prev *fileResult
			if i > 0 {
				prev = &res[i-1]
			}
			err := sc.deliverOne(fctx, i, files[i].blob, send, op, r, prev)
			if err != nil && !errors.Is(err, errStopped) {
				r.err = err
				stopAfter(i)
			}
			op.finish(i, r.accepted, err != nil)
			closeOnce(r.begun)
			close(r.done)
		}()
	}
	wg.Wait()
	if failed < len(files) {
		return res, failed, res[failed].err
	}
	if err := ctx.Err(); err != nil {
		return res, -1, context.Cause(ctx)
	}
	for i := range res {
		if !res[i].accepted && !res[i].skipped {
			// Not reached: the loop stopped early without a failure.
			return res, -1, errStopped
		}
	}
	return res, -1, nil
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// waitFor waits until prev is done and says whether it went well.
func waitFor(ctx context.Context, prev *fileResult) error {
	if prev == nil {
		return nil
	}
	select {
	case <-prev.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if prev.err != nil || (!prev.accepted && !prev.skipped) {
		return errStopped
	}
	return nil
}

// deliverOne sends one pending file; r.accepted says it was sent, r.skipped
// that it was removed, replaced or expired meanwhile.
func (sc *Scope) deliverOne(ctx context.Context, i int, blob string, send SendFunc, op *orderedProgress, r, prev *fileResult) error {
	// One connection at a time is taken in order: a sender with a bounded
	// pool of connections can then never give the last one to a file that
	// waits for an earlier file which waits for a connection.
	if prev != nil {
		select {
		case <-prev.begun:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	st := sc.lock()
	name, fe := st.findBlobLocked(blob)
	if fe == nil {
		sc.unlock()
		r.skipped = true
		return nil
	}
	size := fe.size
	// Opened under the lock so that a concurrent removal cannot unlink it first.
	f, err := os.Open(sc.s.blobPath(st.key, blob))
	sc.unlock()
	r.name, r.reached = name, true
	if err != nil {
		return err
	}
	defer f.Close()

	var gate func() error
	if prev != nil {
		gate = func() error { return waitFor(ctx, prev) }
	}
	if size == 0 && gate != nil {
		if err := gate(); err != nil {
			return err
		}
		gate = nil
	}
	op.start(i, name, size)
	pr := &progressReader{f: f, total: size, gate: gate,
		begin:  func() { closeOnce(r.begun) },
		report: func(sent int64) { op.sent(i, sent) }}
	if size == 0 {
		closeOnce(r.begun)
	}
	if err := send(ctx, name, size, pr); err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStopped) {
			return errStopped
		}
		return err
	}
	if pr.done != size {
		// The platform answered before reading the file: do not trust it.
		return errShortSend
	}
	r.accepted = true
	return nil
}

// progressReader hands send a pending file and reports the bytes read. Its
// last byte waits for gate (the files before it accepted). WriteTo sends
// the rest of the file with io.Copy from the *os.File, which a TCP
// connection turns into sendfile(2).
type progressReader struct {
	f      *os.File
	done   int64
	total  int64
	gate   func() error // nil once passed
	begin  func()
	report func(sent int64)
}

// allowed is how many bytes may be given now, waiting at the last byte
// for the gate.
func (p *progressReader) allowed() (int64, error) {
	p.begin()
	if p.gate != nil && p.done >= p.total-1 {
		if err := p.gate(); err != nil {
			return 0, err
		}
		p.gate = nil
	}
	end := p.total
	if p.gate != nil {
		end--
	}
	return end - p.done, nil
}

func (p *progressReader) Read(b []byte) (int, error) {
	if p.done >= p.total {
		return 0, io.EOF
	}
	n, err := p.allowed()
	if err != nil {
		return 0, err
	}
	if int64(len(b)) > n {
		b = b[:n]
	}
	m, err := p.f.ReadAt(b, p.done)
	if m > 0 {
		p.done += int64(m)
		p.report(p.done)
	}
	if err == io.EOF && m == len(b) {
		err = nil
	}
	return m, err
}

// WriteTo sends the rest of the file to w, progressChunk at a time.
func (p *progressReader) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for p.done < p.total {
		n, err := p.allowed()
		if err != nil {
			return written, err
		}
		n = min(n, progressChunk)
		if _, err := p.f.Seek(p.done, io.SeekStart); err != nil {
			return written, err
		}
		m, err := io.Copy(w, &io.LimitedReader{R: p.f, N: n})
		written += m
		if m > 0 {
			p.done += m
			p.report(p.done)
		}
		if err != nil {
			return written, err
		}
		if m < n {
			return written, io.ErrUnexpectedEOF
		}
	}
	return written, nil
}

// orderedProgress passes the progress of files sent at once on to fn as if
// they were sent one after the other: the events of the first file not
// yet over go through as they come; those of a later file wait, and are
// replayed (start, latest count, acceptance) when its turn comes. Nothing
// more is reported after a file that failed. fn is called by one
// goroutine at a time.
type orderedProgress struct {
	mu      sync.Mutex
	fn      ProgressFunc
	head    int
	stopped bool
	files   []progressState
}

type progressState struct {
	name                        string
	sent, size                  int64
	started, finished, accepted bool
	failed                      bool
}

func (o *orderedProgress) start(i int, name string, size int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &o.files[i]
	s.name, s.size, s.started = name, size, true
	if i == o.head && !o.stopped {
		o.fn(name, 0, size, false)
	}
}

func (o *orderedProgress) sent(i int, n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &o.files[i]
	s.sent = n
	if i == o.head && !o.stopped {
		o.fn(s.name, n, s.size, false)
	}
}

// finish ends file i: accepted, failed, or neither (skipped).
func (o *orderedProgress) finish(i int, accepted, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &o.files[i]
	s.finished, s.accepted, s.failed = true, accepted, failed
	if i != o.head || o.stopped {
		return
	}
	o.end(s)
	for !o.stopped && o.files[o.head].finished {
		o.head++
		if o.head == len(o.files) {
			return
		}
		o.replay(&o.files[o.head])
	}
}

func (o *orderedProgress) end(s *progressState) {
	switch {
	case s.accepted:
		o.fn(s.name, s.size, s.size, true)
	case s.failed:
		o.stopped = true
	}
}

func (o *orderedProgress) replay(s *progressState) {
	if s.started {
		o.fn(s.name, 0, s.size, false)
		if s.sent > 0 {
			o.fn(s.name, s.sent, s.size, false)
		}
	}
	if s.finished {
		o.end(s)
	}
}

// pendingAfterFailure names every file of a failed delivery, oldest first,
// as named when sent (or when the delivery began, for those not reached),
// leaving out those removed meanwhile.
func pendingAfterFailure(files []deliveredFile, res []fileResult) []string {
	out := make([]string, 0, len(files))
	for i := range files {
		if res[i].skipped {
			continue
		}
		out = append(out, res[i].name)
	}
	return out
}
