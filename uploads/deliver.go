package uploads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"sync"
	"time"
)

// SendFunc posts one file to the platform: name is its relative path
// ("dir/sub/f"), size its exact length, r its bytes streamed from disk. It
// returns nil only once the platform has accepted the file.
type SendFunc func(ctx context.Context, name string, size int64, r io.Reader) error

// ProgressFunc learns how the delivery of the file name goes: it is called
// with sent == 0 before the file is sent, with the bytes read so far (up
// to size) while it is sent, and once more with accepted true only after
// send returned nil for it. A file whose sending failed is never accepted.
type ProgressFunc func(name string, sent, size int64, accepted bool)

// Deliver posts every pending file and returns the delivery. Files are
// started oldest first, up to 8 at once, and what can be seen of their
// order stays that of one file after the other: progress reports file by
// file, and each file's last byte is sent only once the files before it
// were accepted, so that the platform finishes them in order.
// The files stay pending until Delivery.Commit, called once the one-off
// they were sent to has attached: a one-off that never attached never ran
// the command, and whatever it took is gone with it. A file that fails
// stops the files after it (none of them is accepted: their last bytes
// were held back) while those before it finish; Deliver then returns a
// *DeliveryError naming the first file, in order, that failed and every
// file of the delivery, all still pending. send is called from several
// goroutines at once, progress from one at a time. Files being written are not pending
// and are left alone; files that become pending while Deliver runs wait
// for the next one. progress may be nil.
//
// Deliveries of one scope run one after the other: a Deliver waits until
// the one before was committed or released (or ctx ends), so that no file
// is sent to two one-offs starting at once. A delivery that sent nothing
// is over when Deliver returns; Commit and Release then do nothing.
func (sc *Scope) Deliver(ctx context.Context, send SendFunc, progress ProgressFunc) (*Delivery, error) {
	if progress == nil {
		progress = func(string, int64, int64, bool) {}
	}
	sc.s.mu.Lock()
	st := sc.s.state(sc)
	st.deliverers++ // keeps st the scope's state until the delivery ends
	sc.s.mu.Unlock()
	select {
	case st.delivering <- struct{}{}:
	case <-ctx.Done():
		sc.s.mu.Lock()
		st.deliverers--
		sc.unlock()
		return nil, &DeliveryError{Err: context.Cause(ctx)}
	}
	d := &Delivery{sc: sc, st: st}

	sc.lock()
	d.start = sc.s.now()
	todo := st.pendingLocked()
	files := make([]deliveredFile, len(todo))
	for i, e := range todo {
		files[i] = deliveredFile{name: e.Name, blob: st.files[e.Name].blob}
	}
	sc.unlock()

	res, failed, err := sc.deliverAll(ctx, files, send, progress)
	if err != nil {
		d.Release()
		if failed < 0 {
			return nil, &DeliveryError{Pending: pendingAfterFailure(files, res), Err: err}
		}
		return nil, &DeliveryError{File: res[failed].name, Pending: pendingAfterFailure(files, res), Err: err}
	}
	for i, f := range files {
		if res[i].accepted {
			d.files = append(d.files, deliveredFile{name: res[i].name, blob: f.blob})
		}
	}
	if len(d.files) == 0 {
		// Nothing to wait for: the sessions of a scope with no files do
		// not queue behind each other's attach.
		if err := d.Commit(); err != nil {
			sc.s.log.Warn("uploads: save after delivery", "err", err)
		}
	}
	return d, nil
}

// pendingNames lists the files sent so far and the ones left to send.
func (d *Delivery) pendingNames(left []deliveredFile) []string {
	out := make([]string, 0, len(d.files)+len(left))
	for _, f := range d.files {
		out = append(out, f.name)
	}
	for _, f := range left {
		out = append(out, f.name)
	}
	return out
}

// DeliveryError is a Deliver that failed. Its message names the file and
// the cause; Pending says where every file is: still pending.
type DeliveryError struct {
	// File is the file whose sending failed; "" when the delivery failed
	// before sending one (ctx ended).
	File string
	// Pending names every file of the delivery, oldest first, those sent
	// before the failure included: all are still pending.
	Pending []string
	Err     error
}

func (e *DeliveryError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("deliver uploads: %v", e.Err)
	}
	return fmt.Sprintf("deliver %s: %v", quote(e.File), e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// StillPending names every file of the failed delivery: all are still
// pending, for the next session.
func (e *DeliveryError) StillPending() []string { return e.Pending }

// Delivery is the pending files sent to one one-off, still pending until
// Commit. Exactly one of Commit or Release must be called: until then, the
// next delivery of the scope waits.
type Delivery struct {
	sc    *Scope
	st    *scopeState
	start time.Time
	files []deliveredFile
	once  sync.Once
}

type deliveredFile struct{ name, blob string }

// Files names the files sent, oldest first, as they were named when sent.
func (d *Delivery) Files() []string { return d.pendingNames(nil) }

// Commit removes the delivered files from the staging area: call it once
// the one-off they were sent to has attached. A file replaced or removed
// since it was sent is left as it is now; directories emptied by the
// delivery go too (the platform makes directories from the names). On an
// error (the staging area could not be saved) every file stays pending.
// Only the first call of Commit or Release does anything.
func (d *Delivery) Commit() error {
	var err error
	d.once.Do(func() {
		defer d.end()
		err = d.commit()
	})
	return err
}

func (d *Delivery) commit() error {
	sc, s := d.sc, d.sc.s
	st := sc.lock()
	defer sc.unlock()
	byBlob := make(map[string]string, len(st.files))
	for p, f := range st.files {
		byBlob[f.blob] = p
	}
	oldFiles, oldDirs := maps.Clone(st.files), maps.Clone(st.dirs)
	var gone []*fileEntry
	for _, f := range d.files {
		if p, ok := byBlob[f.blob]; ok {
			gone = append(gone, st.files[p])
			delete(st.files, p)
		}
	}
	if s.pruneDirsLocked(st, d.start) == 0 && len(gone) == 0 {
		return nil
	}
	if err := s.saveLocked(st); err != nil {
		st.files, st.dirs = oldFiles, oldDirs
		return fmt.Errorf("remove delivered files from staging: %w", err)
	}
	paths := make([]string, 0, len(gone))
	for _, f := range gone {
		s.usage[st.key.user] -= f.size
		paths = append(paths, s.blobPath(st.key, f.blob))
	}
	s.removeBlobsLater(st.key, paths)
	return nil
}

// removeBlob unlinks a delivered blob (os.Remove; tests hold it).
var removeBlob = os.Remove

// removeBlobsLater unlinks blobs already gone from the manifest, off the
// session's path: unlinking a large file costs hundreds of milliseconds on
// some filesystems (a 1 GiB one, 63 to 415 ms here), and the session that
// committed them waits for nothing of it. The scope's directories go too
// once empty. Close waits for it.
func (s *Store) removeBlobsLater(key scopeKey, paths []string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		for _, p := range paths {
			if err := removeBlob(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("remove delivered upload", "err", err)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.scopes[key]
		if st == nil {
			// Nothing of the scope is left, or about to be made: writers
			// make its directories under s.mu.
			st = newScopeState(key, s.now())
		}
		s.removeEmptyLocked(st)
	}()
}

// Release ends the delivery and leaves every file pending, for the next
// session: call it when the one-off the files were sent to did not attach.
// Only the first call of Commit or Release does anything.
func (d *Delivery) Release() { d.once.Do(d.end) }

func (d *Delivery) end() {
	<-d.st.delivering
	d.sc.s.mu.Lock()
	d.st.deliverers--
	d.sc.unlock()
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
