package uploads

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Writer writes one file into the staging area. WriteAt may be called
// concurrently and out of order (each call goes straight to the staging
// file at its offset); Write appends sequentially. The file becomes pending,
// replacing any pending file of the same name, only when Close is called
// after a clean transfer. A limit refusal, Abort or TransferError makes the
// writer fail: Close then discards the staging file and returns the error.
type Writer struct {
	s  *Store
	st *scopeState
	f  *os.File

	// io is held shared by each write and exclusively by Close and Truncate,
	// which therefore never run while a write is under way. Lock order:
	// io, then Store.mu, then mu.
	io sync.RWMutex

	size atomic.Int64 // current size of the staging file
	off  int64        // next offset of Write

	// Guarded by Store.mu.
	seq      uint64
	path     string // follows renames of the name or of a parent directory
	unlinked bool   // removed while being written: dropped at Close
	mode     fs.FileMode
	modTime  time.Time // zero: the time it becomes pending
	started  time.Time
	reserved int64 // bytes counted against the user's quota

	mu   sync.Mutex
	err  error // first failure; sticky
	done bool
}

// Create opens name for writing. flag takes os.O_CREATE, os.O_EXCL and
// os.O_TRUNC as open(2) does; without O_TRUNC an existing pending file is
// copied first so the client can patch or resume it. mode 0 means 0644.
// The parent directory must exist.
func (sc *Scope) Create(name string, flag int, mode fs.FileMode) (*Writer, error) {
	if err := checkNonRoot(name); err != nil {
		return nil, err
	}
	if mode == 0 {
		mode = 0o644
	}
	f, err := os.CreateTemp(sc.s.stagingDir(), "w-")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	w := &Writer{s: sc.s, f: f, mode: mode.Perm()}
	src, err := sc.register(w, name, flag)
	if err != nil {
		w.dropFile()
		return nil, err
	}
	if src != nil {
		err := w.copyFrom(src)
		src.Close()
		if err != nil {
			w.fail(err)
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// register checks name under the lock and adds w to the scope's writers.
// For a patch of an existing pending file it returns the file to copy.
func (sc *Scope) register(w *Writer, name string, flag int) (*os.File, error) {
	st := sc.lock()
	defer sc.unlock()
	if st.dirs[name] != nil {
		return nil, perr(name, ErrIsDir)
	}
	if err := st.checkParent(name); err != nil {
		return nil, err
	}
	pending := st.files[name]
	exists := pending != nil || st.writerAt(name) != nil
	if pending == nil {
		if err := st.checkEntries(name); err != nil {
			return nil, err
		}
	}
	switch {
	case exists && flag&os.O_EXCL != 0 && flag&os.O_CREATE != 0:
		return nil, perr(name, ErrExist)
	case !exists && flag&os.O_CREATE == 0:
		return nil, perr(name, ErrNotExist)
	}
	var src *os.File
	if pending != nil && flag&os.O_TRUNC == 0 {
		if !sc.s.reserveLocked(st.key.user, pending.size) {
			return nil, sc.s.quotaErr(name)
		}
		w.reserved = pending.size
		f, err := os.Open(sc.s.blobPath(st.key, pending.blob))
		if err != nil {
			sc.s.usage[st.key.user] -= w.reserved
			return nil, fmt.Errorf("open pending file: %w", err)
		}
		src = f
		w.mode = pending.mode
	}
	w.st = st
	w.path = name
	w.started = sc.s.now()
	sc.s.seq++
	w.seq = sc.s.seq
	st.writers[w] = struct{}{}
	return src, nil
}

func (w *Writer) copyFrom(src *os.File) error {
	n, err := io.Copy(w.f, src)
	if err != nil {
		return fmt.Errorf("copy pending file: %w", err)
	}
	w.size.Store(n)
	return nil
}

// Name is the file's current relative path.
func (w *Writer) Name() string {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.path
}

func (w *Writer) entryLocked() Entry {
	mtime := w.modTime
	if mtime.IsZero() {
		mtime = w.started
	}
	return Entry{Name: w.path, Size: w.size.Load(), Mode: w.mode, ModTime: mtime, Created: w.started, Writing: true}
}

// WriteAt writes p at off, refusing (and failing the writer) past the
// per-file limit or the user's quota.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
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
		err = fmt.Errorf("write staging file: %w", err)
		w.fail(err)
		return n, err
	}
	for {
		cur := w.size.Load()
		if end <= cur || w.size.CompareAndSwap(cur, end) {
			break
		}
	}
	return n, nil
}

// grow checks the limits for a file reaching end bytes and reserves them.
func (w *Writer) grow(end int64) error {
	lim := w.s.lim
	if lim.MaxFileSize >= 0 && end > lim.MaxFileSize {
		err := w.s.tooLargeErr(w.Name())
		w.refused(end, "too_large")
		w.fail(err)
		return err
	}
	w.s.mu.Lock()
	if end <= w.reserved {
		w.s.mu.Unlock()
		return nil
	}
	if !w.s.reserveLocked(w.st.key.user, end-w.reserved) {
		name := w.path
		w.s.mu.Unlock()
		err := w.s.quotaErr(name)
		w.refused(end, "quota")
		w.fail(err)
		return err
	}
	w.reserved = end
	w.s.mu.Unlock()
	return nil
}

// Write appends p (the scp sink writes sequentially).
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// ReadAt reads back what was written so far.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	w.io.RLock()
	defer w.io.RUnlock()
	return w.f.ReadAt(p, off)
}

// Truncate sets the size of the file being written.
func (w *Writer) Truncate(size int64) error {
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
		err = fmt.Errorf("truncate staging file: %w", err)
		w.fail(err)
		return err
	}
	w.size.Store(size)
	return nil
}

// TransferError is called by the SFTP server when the transfer broke with the
// file still open: the file must not become pending.
func (w *Writer) TransferError(err error) {
	w.fail(fmt.Errorf("%w: %w", ErrBroken, err))
}

// Abort fails the writer; Close then discards it.
func (w *Writer) Abort(err error) {
	if err == nil {
		err = ErrBroken
	}
	w.fail(err)
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close makes the file pending after a clean transfer, or discards it and
// returns the failure. Only the first call does anything.
func (w *Writer) Close() error {
	w.io.Lock()
	defer w.io.Unlock()
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return nil
	}
	w.done = true
	err := w.err
	w.mu.Unlock()
	if err != nil {
		w.discard()
		return err
	}
	return w.commit()
}

func (w *Writer) dropFile() {
	w.f.Close()
	_ = os.Remove(w.f.Name())
}

func (w *Writer) discard() {
	w.dropFile()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.st != nil {
		delete(w.st.writers, w)
		w.s.usage[w.st.key.user] -= w.reserved
		w.reserved = 0
	}
}

func (w *Writer) commit() error {
	size := w.size.Load()
	if err := w.f.Close(); err != nil {
		w.discard()
		return fmt.Errorf("close staging file: %w", err)
	}
	tmp := w.f.Name()
	s := w.s
	var staged *Event
	defer func() {
		// After s.mu is released: the observer may take its time.
		if staged != nil {
			s.emit(*staged)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := w.st
	delete(st.writers, w)
	user := st.key.user
	s.usage[user] += size - w.reserved
	w.reserved = 0
	release := func() {
		s.usage[user] -= size
		_ = os.Remove(tmp)
	}
	if w.unlinked {
		release()
		return nil
	}
	name := w.path
	if st.dirs[name] != nil {
		release()
		return perr(name, ErrIsDir)
	}
	if err := st.checkParent(name); err != nil {
		release()
		return err
	}
	id, err := newBlobID()
	if err != nil {
		release()
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.scopeDir(st.key), "blobs"), 0o700); err != nil {
		release()
		return fmt.Errorf("make blob directory: %w", err)
	}
	if err := os.Rename(tmp, s.blobPath(st.key, id)); err != nil {
		release()
		return fmt.Errorf("commit staging file: %w", err)
	}
	now := s.now()
	mtime := w.modTime
	if mtime.IsZero() {
		mtime = now
	}
	old := st.files[name]
	st.files[name] = &fileEntry{blob: id, size: size, mode: w.mode, modTime: mtime, created: now}
	st.noteCreated(now)
	if err := s.saveLocked(st); err != nil {
		if old != nil {
			st.files[name] = old
		} else {
			delete(st.files, name)
		}
		s.usage[user] -= size
		s.removeBlob(st, id)
		return err
	}
	if old != nil {
		s.usage[user] -= old.size
		s.removeBlob(st, old.blob)
	}
	staged = &Event{Kind: "staged", User: st.user, App: st.app, Name: name, Size: size}
	return nil
}

func newBlobID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("blob id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// refused reports the writer's refusal, once: the first failure is the
// one that counts.
func (w *Writer) refused(size int64, reason string) {
	if w.failed() != nil {
		return
	}
	w.s.mu.Lock()
	e := Event{Kind: "refused", User: w.st.user, App: w.st.app, Name: w.path, Size: size, Reason: reason}
	w.s.mu.Unlock()
	w.s.emit(e)
}
