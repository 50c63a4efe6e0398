package uploads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// SendFunc posts one file to the platform: name is its relative path
// ("dir/sub/f"), size its exact length, r its bytes streamed from disk. It
// returns nil only once the platform has accepted the file.
type SendFunc func(ctx context.Context, name string, size int64, r io.Reader) error

// ProgressFunc learns how far the file name has been read by send. It is
// called with done == 0 before and done == total after each file.
type ProgressFunc func(name string, done, total int64)

// Deliver posts every pending file, oldest first, and removes each one only
// after send returned nil for it. On the first failure it stops and returns
// an error naming the file; that file and the rest stay pending. Files being
// written are not pending and are left alone; files that become pending
// while Deliver runs wait for the next one. Once every file was delivered,
// the directories emptied by the delivery are removed too (the platform
// makes directories from the names). progress may be nil.
//
// Concurrent Deliver calls on one scope run one after the other.
func (sc *Scope) Deliver(ctx context.Context, send SendFunc, progress ProgressFunc) error {
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	sc.s.mu.Lock()
	st := sc.s.state(sc)
	st.deliverers++ // keeps st the scope's state while this call runs
	sc.s.mu.Unlock()
	defer func() {
		sc.s.mu.Lock()
		st.deliverers--
		sc.unlock()
	}()
	select {
	case st.delivering <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("deliver uploads: %w", context.Cause(ctx))
	}
	defer func() { <-st.delivering }()

	sc.lock()
	start := sc.s.now()
	todo := st.pendingLocked()
	blobs := make([]string, len(todo))
	for i, e := range todo {
		blobs[i] = st.files[e.Name].blob
	}
	sc.unlock()

	for _, blob := range blobs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deliver uploads: %w", context.Cause(ctx))
		}
		if err := sc.deliverOne(ctx, blob, send, progress); err != nil {
			return err
		}
	}

	sc.lock()
	defer sc.unlock()
	if sc.s.pruneDirsLocked(st, start) > 0 {
		if err := sc.s.saveLocked(st); err != nil {
			sc.s.log.Warn("uploads: save after delivery", "err", err)
		}
	}
	return nil
}

// findBlobLocked finds a pending file by its blob, wherever renames took it.
func (st *scopeState) findBlobLocked(blob string) (string, *fileEntry) {
	for p, f := range st.files {
		if f.blob == blob {
			return p, f
		}
	}
	return "", nil
}

func (sc *Scope) deliverOne(ctx context.Context, blob string, send SendFunc, progress ProgressFunc) error {
	st := sc.lock()
	name, fe := st.findBlobLocked(blob)
	if fe == nil {
		sc.unlock()
		return nil // removed, replaced or expired meanwhile
	}
	size := fe.size
	// Opened under the lock so that a concurrent removal cannot unlink it first.
	f, err := os.Open(sc.s.blobPath(st.key, blob))
	sc.unlock()
	if err != nil {
		return fmt.Errorf("deliver %s: %w", quote(name), err)
	}
	defer f.Close()

	progress(name, 0, size)
	r := &progressReader{r: io.NewSectionReader(f, 0, size), name: name, total: size, progress: progress}
	if err := send(ctx, name, size, r); err != nil {
		return fmt.Errorf("deliver %s: %w", quote(name), err)
	}
	if r.done != size {
		// The platform answered before reading the file: do not trust it.
		return fmt.Errorf("deliver %s: %w", quote(name), errShortSend)
	}
	progress(name, size, size)

	st = sc.lock()
	defer sc.unlock()
	p, cur := st.findBlobLocked(blob)
	if cur == nil {
		return nil
	}
	delete(st.files, p)
	if err := sc.s.saveLocked(st); err != nil {
		st.files[p] = cur
		return fmt.Errorf("deliver %s: delivered, but could not be removed from staging: %w", quote(name), err)
	}
	sc.s.usage[st.key.user] -= cur.size
	sc.s.removeBlob(st, blob)
	return nil
}

var errShortSend = errors.New("the file was not read to its end")

type progressReader struct {
	r        io.Reader
	name     string
	done     int64
	total    int64
	progress ProgressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.progress(p.name, p.done, p.total)
	}
	return n, err
}
