package objstage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/sio"

	"sshbridge/uploads"
)

// readChunk is how much of the written prefix the uploader takes at a
// time: it waits for this much before encrypting more.
const readChunk = 1 << 20

// partTimeout bounds one request that moves a part (or a whole small
// blob), so that a store that hangs fails the upload instead of holding
// its Close forever.
const partTimeout = 5 * time.Minute

// writer writes one file: uploads.FileWriter. Writes go to a spool file
// at their offsets; an uploader goroutine encrypts the prefix written
// without holes and streams it to the store as a multipart upload; Close
// sends the rest and writes the entry, and only then is the file pending.
type writer struct {
	s  *Store
	sc *scope
	f  *os.File
	id string

	// io is held shared by each write and exclusively by Close and
	// Truncate. Lock order: io, then Store.mu, then mu.
	io   sync.RWMutex
	size atomic.Int64
	off  int64 // next offset of Write

	// Guarded by Store.mu.
	seq      uint64
	path     string
	unlinked bool
	mode     fs.FileMode
	mtime    time.Time
	started  time.Time
	reserved int64 // quota bytes held
	base     int64 // the user's pending bytes in the store at Create

	mu      sync.Mutex
	cond    *sync.Cond
	err     error // first failure; sticky
	done    bool
	spool   int64      // spool bytes held
	prefix  int64      // bytes written without holes from offset 0
	ranges  [][2]int64 // written ranges past prefix, [start, end)
	claimed int64      // the uploader has read up to here
	dirty   bool       // a write below claimed: the stream starts again
	final   bool       // Close: stream up to size
	upDone  chan struct{}
	upErr   error
}

var seq atomic.Uint64

// CreateFile opens name for writing, as uploads.Scope.Create.
func (sc *scope) CreateFile(name string, flag int, mode fs.FileMode) (uploads.FileWriter, error) {
	if err := checkNonRoot(name); err != nil {
		return nil, err
	}
	if err := sc.s.checkKeyLen(sc.key, name); err != nil {
		return nil, err
	}
	if mode == 0 {
		mode = 0o644
	}
	v, err := sc.view(name)
	if err != nil {
		return nil, err
	}
	if v.isDir(name) {
		return nil, perr(name, uploads.ErrIsDir)
	}
	if err := v.checkParent(name); err != nil {
		return nil, err
	}
	pending := v.files[name]
	exists := pending != nil || sc.writerAt(name) != nil
	switch {
	case exists && flag&os.O_EXCL != 0 && flag&os.O_CREATE != 0:
		return nil, perr(name, uploads.ErrExist)
	case !exists && flag&os.O_CREATE == 0:
		return nil, perr(name, uploads.ErrNotExist)
	}
	base, err := sc.s.usage(sc.ctx(), sc.key.user)
	if err != nil {
		return nil, sc.s.storeErr("usage", name, err)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	w := &writer{s: sc.s, sc: sc, id: id, path: name, mode: mode.Perm(), started: sc.s.now(), base: base,
		upDone: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	var initial int64
	if pending != nil && flag&os.O_TRUNC == 0 {
		// A patch or a resume: the writer starts from the pending file.
		w.f, err = sc.s.fetchToSpool(sc.ctx(), sc.key, pending)
		if err != nil {
			if errors.Is(err, uploads.ErrSpoolFull) {
				return nil, perr(name, err)
			}
			return nil, sc.s.storeErr("read", name, err)
		}
		initial = pending.size
		w.spool = initial
		w.mode = pending.mode
	} else {
		if w.f, err = sc.s.spoolFile(0); err != nil {
			return nil, err
		}
	}
	w.size.Store(initial)
	w.prefix = initial
	sc.s.mu.Lock()
	if initial > 0 && !sc.s.reserveLocked(w, initial) {
		sc.s.mu.Unlock()
		w.f.Close()
		sc.s.spoolUsed.Add(-initial)
		return nil, sc.s.quotaErr(name)
	}
	w.seq = seq.Add(1)
	ws := sc.s.writers[sc.key]
	if ws == nil {
		ws = make(map[*writer]struct{})
		sc.s.writers[sc.key] = ws
	}
	ws[w] = struct{}{}
	sc.s.mu.Unlock()
	go w.upload()
	return w, nil
}

// reserveLocked accounts n more quota bytes to w, refusing past the quota:
// the user's pending bytes in the store when w began, plus what this
// bridge's writers of the user hold. Callers hold s.mu.
func (s *Store) reserveLocked(w *writer, n int64) bool {
	if s.lim.UserQuota >= 0 && n > 0 {
		var held int64
		for k, ws := range s.writers {
			if k.user == w.sc.key.user {
				for o := range ws {
					if o != w {
						held += o.reserved
					}
				}
			}
		}
		if w.base+held+w.reserved+n > s.lim.UserQuota {
			return false
		}
	}
	w.reserved += n
	return true
}

func (w *writer) Name() string {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.path
}

func (w *writer) entry() uploads.Entry {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	mt := w.mtime
	if mt.IsZero() {
		mt = w.started
	}
	return uploads.Entry{Name: w.path, Size: w.size.Load(), Mode: w.mode, ModTime: mt, Created: w.started, Writing: true}
}

func (w *writer) setAttrs(a uploads.Attrs) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if a.Mode != nil {
		w.mode = a.Mode.Perm()
	}
	if a.ModTime != nil {
		w.mtime = *a.ModTime
	}
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// grow checks the limits for a file reaching end bytes and holds quota
// and spool for them.
func (w *writer) grow(end int64) error {
	lim := w.s.lim
	if lim.MaxFileSize >= 0 && end > lim.MaxFileSize {
		err := w.s.tooLargeErr(w.Name())
		w.refused(end, "too_large")
		w.fail(err)
		return err
	}
	w.s.mu.Lock()
	if end > w.reserved && !w.s.reserveLocked(w, end-w.reserved) {
		name := w.path
		w.s.mu.Unlock()
		err := w.s.quotaErr(name)
		w.refused(end, "quota")
		w.fail(err)
		return err
	}
	w.s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if end > w.spool {
		if !w.s.reserveSpool(end - w.spool) {
			err := perr(w.path, uploads.ErrSpoolFull)
			w.s.log.Warn("staging spool full: an upload is refused", "spool_size", w.s.spoolSize)
			if w.err == nil {
				w.err = err
			}
			w.cond.Broadcast()
			return err
		}
		w.spool = end
	}
	return nil
}

func (w *writer) refused(size int64, reason string) {
	if w.failed() != nil {
		return
	}
	w.s.emit(uploads.Event{Kind: "refused", User: w.sc.user, App: w.sc.app, Name: w.Name(), Size: size, Reason: reason})
}

// WriteAt writes p at off, refusing (and failing the writer) past the
// per-file limit, the user's quota or the spool, or once the store
// failed.
func (w *writer) WriteAt(p []byte, off int64) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	end := off + int64(len(p))
	if err := w.grow(end); err != nil {
		return 0, err
	}
	w.io.RLock()
	n, err := w.f.WriteAt(p, off)
	w.io.RUnlock()
	if err != nil {
		err = fmt.Errorf("write spool file: %w", err)
		w.fail(err)
		return n, err
	}
	for {
		cur := w.size.Load()
		if end <= cur || w.size.CompareAndSwap(cur, end) {
			break
		}
	}
	w.wrote(off, end)
	return n, nil
}

// wrote records [off, end) as written, and wakes the uploader when the
// prefix grew.
func (w *writer) wrote(off, end int64) {
	if off == end {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if off < w.claimed {
		w.dirty = true // bytes already sent changed
		w.cond.Broadcast()
	}
	if off > w.prefix {
		w.ranges = append(w.ranges, [2]int64{off, end})
		return
	}
	if end <= w.prefix {
		return
	}
	w.prefix = end
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(w.ranges); i++ {
			if r := w.ranges[i]; r[0] <= w.prefix {
				w.prefix = max(w.prefix, r[1])
				w.ranges[i] = w.ranges[len(w.ranges)-1]
				w.ranges = w.ranges[:len(w.ranges)-1]
				merged = true
				i--
			}
		}
	}
	if w.prefix-w.claimed >= readChunk {
		w.cond.Broadcast()
	}
}

// Write appends p.
func (w *writer) Write(p []byte) (int, error) {
	n, err := w.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// ReadAt reads back what was written so far.
func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	w.io.RLock()
	defer w.io.RUnlock()
	return w.f.ReadAt(p, off)
}

// Truncate sets the size of the file being written.
func (w *writer) Truncate(size int64) error {
	if err := w.failed(); err != nil {
		return err
	}
	if size < 0 {
		return errors.New("negative size")
	}
	if err := w.grow(size); err != nil {
		return err
	}
	w.io.Lock()
	defer w.io.Unlock()
	if err := w.f.Truncate(size); err != nil {
		err = fmt.Errorf("truncate spool file: %w", err)
		w.fail(err)
		return err
	}
	w.size.Store(size)
	w.mu.Lock()
	if size < w.claimed {
		w.dirty = true
		w.cond.Broadcast()
	}
	w.prefix = min(w.prefix, size)
	kept := w.ranges[:0]
	for _, r := range w.ranges {
		if r[0] < size {
			kept = append(kept, [2]int64{r[0], min(r[1], size)})
		}
	}
	w.ranges = kept
	w.mu.Unlock()
	return nil
}

// TransferError: the transfer broke with the file open; nothing becomes
// pending.
func (w *writer) TransferError(err error) { w.fail(fmt.Errorf("%w: %w", uploads.ErrBroken, err)) }

// Abort fails the writer; Close then discards it.
func (w *writer) Abort(err error) {
	if err == nil {
		err = uploads.ErrBroken
	}
	w.fail(err)
}

// upload is the uploader: it streams the written prefix, encrypted, to the
// blob's key, starting again when bytes already sent change, and reports
// at upDone once Close asked for the end (or on a failure).
func (w *writer) upload() {
	defer close(w.upDone)
	key := w.s.blobKey(w.sc.key, w.id)
	for {
		st, err := w.s.newStream(key, w.id)
		if err != nil {
			w.upErr = err
			return
		}
		restart, err := w.stream(st)
		if restart {
			st.abort()
			continue
		}
		if err != nil {
			st.abort()
			w.upErr = err
			if !errors.Is(err, errWriterFailed) {
				w.fail(w.s.notStaged("upload", w.Name(), err))
			}
			return
		}
		return
	}
}

var errWriterFailed = errors.New("writer failed")

// stream feeds st up to the end; restart says that bytes already sent
// changed.
func (w *writer) stream(st *stream) (restart bool, err error) {
	buf := make([]byte, readChunk)
	for {
		w.mu.Lock()
		for w.err == nil && !w.dirty && !w.final && w.prefix-w.claimed < readChunk {
			w.cond.Wait()
		}
		if w.err != nil {
			w.mu.Unlock()
			return false, errWriterFailed
		}
		if w.dirty {
			w.dirty = false
			w.claimed = 0
			w.mu.Unlock()
			return true, nil
		}
		from := w.claimed
		var to int64
		if w.final {
			to = w.size.Load()
		} else {
			to = from + (w.prefix-from)/readChunk*readChunk
		}
		w.claimed = to
		final := w.final
		w.mu.Unlock()
		for off := from; off < to; {
			n := int(min(int64(len(buf)), to-off))
			if _, err := w.f.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF)) {
				return false, err
			}
			if _, err := st.enc.Write(buf[:n]); err != nil {
				return false, err
			}
			off += int64(n)
		}
		if final {
			return false, st.finish()
		}
	}
}

// Close makes the file pending after a clean transfer: it waits for the
// blob to be stored whole, then writes the entry. On any failure nothing
// becomes pending and the error says why (a store failure:
// uploads.ErrStoreUnavailable). Only the first call does anything.
func (w *writer) Close() error {
	w.io.Lock()
	defer w.io.Unlock()
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return nil
	}
	w.done = true
	w.final = true
	w.cond.Broadcast()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		<-w.upDone
		w.discard()
		return err
	}
	<-w.upDone
	if err := w.failed(); err != nil {
		w.discard()
		return err
	}
	if w.upErr != nil {
		w.discard()
		return w.s.notStaged("upload", w.Name(), w.upErr)
	}
	err = w.commit()
	w.discard()
	return err
}

// discard forgets the writer and gives back its spool and quota.
func (w *writer) discard() {
	w.f.Close()
	w.mu.Lock()
	w.s.spoolUsed.Add(-w.spool)
	w.spool = 0
	w.mu.Unlock()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if ws := w.s.writers[w.sc.key]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(w.s.writers, w.sc.key)
		}
	}
	w.reserved = 0
}

// commit writes the entry of the stored blob, then removes the older
// versions of the name that no delivery holds.
func (w *writer) commit() error {
	s, sc, ctx := w.s, w.sc, w.s.ctx
	dropBlob := func() { _ = s.deleteKey(context.Background(), s.blobKey(sc.key, w.id)) }
	s.mu.Lock()
	name, unlinked := w.path, w.unlinked
	f := &fileEnt{name: name, id: w.id, size: w.size.Load(), mode: w.mode, mtime: w.mtime}
	s.mu.Unlock()
	if unlinked {
		dropBlob()
		return nil
	}
	v, err := sc.view(name)
	if err != nil {
		dropBlob()
		return err
	}
	if v.isDir(name) {
		dropBlob()
		return perr(name, uploads.ErrIsDir)
	}
	if err := v.checkParent(name); err != nil {
		dropBlob()
		return err
	}
	f.created = s.now()
	if f.mtime.IsZero() {
		f.mtime = f.created
	}
	if err := s.putEmpty(ctx, s.fileKey(sc.key, f)); err != nil {
		dropBlob()
		return s.notStaged("stage", name, err)
	}
	// The new entry shadows the older ones: remove those no delivery holds.
	var olds []*fileEnt
	if o := v.files[name]; o != nil {
		olds = append(olds, o)
	}
	for _, o := range v.stale {
		if o.name == name {
			olds = append(olds, o)
		}
	}
	for _, o := range olds {
		s.dropIfFree(sc.key, v, o.id)
	}
	s.emit(uploads.Event{Kind: "staged", User: sc.user, App: sc.app, Name: name, Size: f.size})
	return nil
}

// dropIfFree removes file id unless its lease is held.
func (s *Store) dropIfFree(k scopeKey, v *view, id string) {
	l, err := s.acquire(s.ctx, s.leaseKey(k, id))
	if err != nil {
		if !errors.Is(err, errLeaseHeld) {
			s.log.Warn("staging store: remove a replaced file", "err", oneLine(err))
		}
		return
	}
	defer s.release(l)
	if err := s.dropFile(s.ctx, k, v, id); err != nil {
		s.log.Warn("staging store: remove a replaced file", "err", oneLine(err))
	}
}

// stream is one multipart upload of a blob (or one PutObject, for a blob
// smaller than a part), fed through enc, the DARE encrypter.
type stream struct {
	s        *Store
	key      string
	enc      io.WriteCloser
	buf      []byte
	uploadID *string
	next     int32
	sem      chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	parts    []types.CompletedPart
	err      error
}

func (s *Store) newStream(key, id string) (*stream, error) {
	st := &stream{s: s, key: key, sem: make(chan struct{}, 2)}
	cfg, err := s.sioConfig(id)
	if err != nil {
		return nil, err
	}
	st.enc, err = sio.EncryptWriter(partWriter{st}, cfg)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// partWriter collects the ciphertext into parts of partSize bytes.
type partWriter struct{ st *stream }

func (p partWriter) Write(b []byte) (int, error) {
	st, n := p.st, len(b)
	for len(b) > 0 {
		if st.buf == nil {
			st.buf = getPartBuf()
		}
		k := min(len(b), partSize-len(st.buf))
		st.buf = append(st.buf, b[:k]...)
		b = b[k:]
		if len(st.buf) == partSize {
			if err := st.sendPart(st.buf); err != nil {
				return 0, err
			}
			st.buf = nil
		}
	}
	return n, nil
}

// partBufs holds the part buffers of the uploads, each of partSize
// bytes' capacity, so that a stream fills a buffer a part sent before
// left instead of a new one (a fresh 8 MiB is zeroed, then collected); a
// buffer idle over two garbage collections is dropped.
var partBufs sync.Pool

func getPartBuf() []byte {
	if b, ok := partBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, partSize)
}

// putPartBuf gives b back once no request reads it any more.
func putPartBuf(b []byte) {
	if cap(b) == partSize {
		partBufs.Put(&b)
	}
}

func (st *stream) failed() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// sendPart uploads b as the next part, at most two at once.
func (st *stream) sendPart(b []byte) error {
	if err := st.failed(); err != nil {
		return err
	}
	s := st.s
	if st.uploadID == nil {
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		defer cancel()
		out, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &st.key})
		if err != nil {
			return err
		}
		st.uploadID = out.UploadId
	}
	st.next++
	n := st.next
	st.sem <- struct{}{}
	st.wg.Add(1)
	go func() {
		defer func() { <-st.sem; st.wg.Done() }()
		ctx, cancel := context.WithTimeout(s.ctx, partTimeout)
		defer cancel()
		out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.bucket, Key: &st.key, UploadId: st.uploadID,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
		if err == nil {
			// The store answered once it had the whole body: no one
			// reads b any more. After a failure the transport may still
			// be sending it, so b is left to the collector.
			putPartBuf(b)
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if err != nil {
			if st.err == nil {
				st.err = err
			}
			return
		}
		st.parts = append(st.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}()
	return nil
}

// finish ends the stream: the last package, the last part, the upload
// completed.
func (st *stream) finish() error {
	if err := st.enc.Close(); err != nil {
		return err
	}
	s := st.s
	ctx, cancel := context.WithTimeout(s.ctx, partTimeout)
	defer cancel()
	// The last buffer leaves the stream here, as partWriter's full ones do.
	last := st.buf
	st.buf = nil
	if st.uploadID == nil {
		_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &st.key,
			Body: bytes.NewReader(last), ContentLength: aws.Int64(int64(len(last)))})
		if err == nil {
			putPartBuf(last)
		}
		return err
	}
	if len(last) > 0 {
		if err := st.sendPart(last); err != nil {
			return err
		}
	}
	st.wg.Wait()
	if err := st.failed(); err != nil {
		return err
	}
	sort.Slice(st.parts, func(i, j int) bool { return *st.parts[i].PartNumber < *st.parts[j].PartNumber })
	_, err := s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.bucket, Key: &st.key,
		UploadId: st.uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: st.parts}})
	return err
}

// abort drops a stream that will not complete.
func (st *stream) abort() {
	st.wg.Wait()
	if st.uploadID == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := st.s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &st.s.bucket, Key: &st.key,
		UploadId: st.uploadID}); err != nil {
		st.s.log.Warn("staging store: abort an upload", "err", oneLine(err))
	}
}
