package objstage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshbridge/uploads"
)

// scope is one (user, app)'s tree: uploads.Files.
type scope struct {
	s         *Store
	key       scopeKey
	user, app string
}

var _ uploads.Files = (*scope)(nil)

func (sc *scope) User() string           { return sc.user }
func (sc *scope) App() string            { return sc.app }
func (sc *scope) Limits() uploads.Limits { return sc.s.lim }

// perr names the file an error is about, as the local staging area does.
func perr(name string, err error) error { return uploads.PathError(name, err) }

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func checkNonRoot(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the upload directory itself", uploads.ErrPermission)
	}
	return uploads.CheckPath(name)
}

func checkName(name string) error {
	if name == "" {
		return nil
	}
	return uploads.CheckPath(name)
}

// ctx is the context of a Files call: the store's life.
func (sc *scope) ctx() context.Context { return sc.s.ctx }

// view lists the scope, the store's failure said as the user may read it.
func (sc *scope) view(name string) (*view, error) {
	v, err := sc.s.list(sc.ctx(), sc.key)
	if err != nil {
		return nil, sc.s.storeErr("list", name, err)
	}
	return v, nil
}

// localWriters are the scope's writers in this process, under s.mu.
func (sc *scope) localWritersLocked() map[*writer]struct{} { return sc.s.writers[sc.key] }

// writerAt is the newest live writer of name in this process.
func (sc *scope) writerAt(name string) *writer {
	sc.s.mu.Lock()
	defer sc.s.mu.Unlock()
	return sc.writerAtLocked(name)
}

func (sc *scope) writerAtLocked(name string) *writer {
	var newest *writer
	for w := range sc.localWritersLocked() {
		if w.path == name && !w.unlinked && (newest == nil || w.seq > newest.seq) {
			newest = w
		}
	}
	return newest
}

// Usage is the user's pending bytes over all apps in the store, plus what
// this bridge's writers of the user reserved.
func (sc *scope) Usage() (used, quota int64) {
	n, err := sc.s.usage(sc.ctx(), sc.key.user)
	if err != nil {
		sc.s.log.Warn("staging store: usage", "err", oneLine(err))
	}
	return n + sc.s.reservedBy(sc.key.user), sc.s.lim.UserQuota
}

// reservedBy is what this bridge's writers of user hold over the pending
// file each replaces.
func (s *Store) reservedBy(user string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, ws := range s.writers {
		if k.user != user {
			continue
		}
		for w := range ws {
			n += w.reserved
		}
	}
	return n
}

func (sc *scope) rootEntry() uploads.Entry {
	return uploads.Entry{Name: "", Mode: fs.ModeDir | 0o755}
}

func (v *view) dirEntry(name string) uploads.Entry {
	if d := v.dirs[name]; d != nil {
		return uploads.Entry{Name: name, Mode: fs.ModeDir | d.mode.Perm(), ModTime: d.created, Created: d.created}
	}
	// The parent of a pending file whose directory marker is gone (or
	// was never made by this bridge): it exists while something is in it.
	var t time.Time
	for p, f := range v.files {
		if strings.HasPrefix(p, name+"/") && (t.IsZero() || f.created.Before(t)) {
			t = f.created
		}
	}
	return uploads.Entry{Name: name, Mode: fs.ModeDir | 0o755, ModTime: t, Created: t}
}

// Stat describes one name, the root included.
func (sc *scope) Stat(name string) (uploads.Entry, error) {
	if err := checkName(name); err != nil {
		return uploads.Entry{}, err
	}
	if name == "" {
		return sc.rootEntry(), nil
	}
	v, err := sc.view(name)
	if err != nil {
		return uploads.Entry{}, err
	}
	if v.isDir(name) {
		return v.dirEntry(name), nil
	}
	if w := sc.writerAt(name); w != nil {
		return w.entry(), nil
	}
	if f := v.files[name]; f != nil {
		return f.entry(), nil
	}
	return uploads.Entry{}, perr(name, uploads.ErrNotExist)
}

// List describes the entries of a directory, sorted by name.
func (sc *scope) List(dir string) ([]uploads.Entry, error) {
	if err := checkName(dir); err != nil {
		return nil, err
	}
	v, err := sc.view(dir)
	if err != nil {
		return nil, err
	}
	sc.s.mu.Lock()
	var ws []*writer
	for w := range sc.localWritersLocked() {
		if !w.unlinked {
			ws = append(ws, w)
		}
	}
	sc.s.mu.Unlock()
	if !v.isDir(dir) {
		if v.files[dir] != nil {
			return nil, perr(dir, uploads.ErrNotDir)
		}
		for _, w := range ws {
			if w.Name() == dir {
				return nil, perr(dir, uploads.ErrNotDir)
			}
		}
		return nil, perr(dir, uploads.ErrNotExist)
	}
	out := map[string]uploads.Entry{}
	child := func(p string) (string, bool) {
		if dir != "" {
			var ok bool
			if p, ok = strings.CutPrefix(p, dir+"/"); !ok {
				return "", false
			}
		}
		first, _, _ := strings.Cut(p, "/")
		if dir == "" {
			return first, true
		}
		return dir + "/" + first, true
	}
	for p, f := range v.files {
		if c, ok := child(p); ok {
			if c == p {
				out[c] = f.entry()
			} else if _, seen := out[c]; !seen {
				out[c] = v.dirEntry(c)
			}
		}
	}
	for p := range v.dirs {
		if c, ok := child(p); ok {
			out[c] = v.dirEntry(c)
		}
	}
	for _, w := range ws {
		e := w.entry()
		if parentOf(e.Name) == dir {
			out[e.Name] = e // a file being written shadows the pending one
		}
	}
	list := make([]uploads.Entry, 0, len(out))
	for _, e := range out {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Pending lists the files complete and waiting for delivery, oldest first.
func (sc *scope) Pending() ([]uploads.Entry, error) {
	v, err := sc.view("")
	if err != nil {
		return nil, err
	}
	return pendingOf(v), nil
}

func pendingOf(v *view) []uploads.Entry {
	out := make([]uploads.Entry, 0, len(v.files))
	for _, f := range v.files {
		out = append(out, f.entry())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// checkParent says whether name's parent is a directory.
func (v *view) checkParent(name string) error {
	p := parentOf(name)
	if v.isDir(p) {
		return nil
	}
	if v.files[p] != nil {
		return perr(p, uploads.ErrNotDir)
	}
	return perr(p, uploads.ErrNotExist)
}

// Mkdir makes a directory; its parent must exist.
func (sc *scope) Mkdir(name string, mode fs.FileMode) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	if err := sc.s.checkKeyLen(sc.key, name); err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o755
	}
	v, err := sc.view(name)
	if err != nil {
		return err
	}
	if err := v.checkParent(name); err != nil {
		return err
	}
	if v.isDir(name) || v.files[name] != nil || sc.writerAt(name) != nil {
		return perr(name, uploads.ErrExist)
	}
	d := &dirEnt{name: name, created: sc.s.now(), mode: mode.Perm()}
	if err := sc.s.putEmpty(sc.ctx(), sc.s.dirKey(sc.key, d)); err != nil {
		return sc.s.storeErr("mkdir", name, err)
	}
	return nil
}

// Rmdir removes an empty directory.
func (sc *scope) Rmdir(name string) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	v, err := sc.view(name)
	if err != nil {
		return err
	}
	if v.dirs[name] == nil {
		if v.isDir(name) {
			return perr(name, uploads.ErrDirNotEmpty)
		}
		if v.files[name] != nil || sc.writerAt(name) != nil {
			return perr(name, uploads.ErrNotDir)
		}
		return perr(name, uploads.ErrNotExist)
	}
	if v.hasChildren(name) || sc.writerUnder(name) {
		return perr(name, uploads.ErrDirNotEmpty)
	}
	for _, d := range v.markers(name) {
		if err := sc.s.deleteKey(sc.ctx(), d.key); err != nil {
			return sc.s.storeErr("rmdir", name, err)
		}
	}
	return nil
}

func (v *view) hasChildren(dir string) bool {
	for p := range v.files {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	for p := range v.dirs {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// markers are every marker of a directory, older ones included.
func (v *view) markers(name string) []*dirEnt {
	var out []*dirEnt
	if d := v.dirs[name]; d != nil {
		out = append(out, d)
	}
	for _, d := range v.more {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

func (sc *scope) writerUnder(dir string) bool {
	sc.s.mu.Lock()
	defer sc.s.mu.Unlock()
	for w := range sc.localWritersLocked() {
		if !w.unlinked && strings.HasPrefix(w.path, dir+"/") {
			return true
		}
	}
	return false
}

// Remove removes a file: a pending one at once (unless a delivery holds
// it: uploads.ErrBusy); one being written through this bridge is dropped
// when its writer closes.
func (sc *scope) Remove(name string) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	v, err := sc.view(name)
	if err != nil {
		return err
	}
	if v.isDir(name) {
		return perr(name, uploads.ErrIsDir)
	}
	found := false
	sc.s.mu.Lock()
	for w := range sc.localWritersLocked() {
		if w.path == name && !w.unlinked {
			w.unlinked = true
			found = true
		}
	}
	sc.s.mu.Unlock()
	f := v.files[name]
	if f == nil {
		if found {
			return nil
		}
		return perr(name, uploads.ErrNotExist)
	}
	return sc.withLease(name, f, func() error { return sc.s.dropFile(sc.ctx(), sc.key, v, f.id) })
}

// errBeingDelivered is uploads.ErrBusy for a file a delivery holds.
func errBeingDelivered(name string) error { return &busyErr{name: name} }

type busyErr struct{ name string }

func (e *busyErr) Error() string {
	return fmt.Sprintf("%q: being delivered to a session: try again once it has started", e.name)
}
func (e *busyErr) Unwrap() error { return uploads.ErrBusy }

// withLease runs fn holding the lease of file f, once sure that f's entry
// is still there (a delivery or a sweep that held the lease may have
// removed it meanwhile).
func (sc *scope) withLease(name string, f *fileEnt, fn func() error) error {
	l, err := sc.s.acquire(sc.ctx(), sc.s.leaseKey(sc.key, f.id))
	if errors.Is(err, errLeaseHeld) {
		return errBeingDelivered(name)
	}
	if err != nil {
		return sc.s.storeErr("lease", name, err)
	}
	defer sc.s.release(l)
	if ok, err := sc.s.exists(sc.ctx(), f.key); err != nil {
		return sc.s.storeErr("stat", name, err)
	} else if !ok {
		return perr(name, uploads.ErrNotExist)
	}
	if err := fn(); err != nil {
		if errors.Is(err, uploads.ErrBusy) {
			return err
		}
		return sc.s.storeErr("update", name, err)
	}
	return nil
}

// dropFile deletes every entry of file id, then its blob. The caller
// holds its lease (or knows no one can).
func (s *Store) dropFile(ctx context.Context, k scopeKey, v *view, id string) error {
	for _, f := range v.byID[id] {
		if err := s.deleteKey(ctx, f.key); err != nil {
			return err
		}
	}
	return s.deleteKey(ctx, s.blobKey(k, id))
}

// Rename moves a file, replacing a file at the target as POSIX rename
// does. A pending file's entry is rewritten under its lease (no bytes are
// copied); a file being written through this bridge takes the new name
// at once. Directories cannot be renamed in the shared store
// (uploads.ErrUnsupported).
func (sc *scope) Rename(from, to string) error {
	if err := checkNonRoot(from); err != nil {
		return err
	}
	if err := checkNonRoot(to); err != nil {
		return err
	}
	if err := sc.s.checkKeyLen(sc.key, to); err != nil {
		return err
	}
	v, err := sc.view(from)
	if err != nil {
		return err
	}
	w := sc.writerAt(from)
	f := v.files[from]
	switch {
	case v.isDir(from):
		return perr(from, fmt.Errorf("%w: renaming a directory", uploads.ErrUnsupported))
	case f == nil && w == nil:
		return perr(from, uploads.ErrNotExist)
	case from == to:
		return nil
	case v.isDir(to):
		return perr(to, uploads.ErrIsDir)
	}
	if err := v.checkParent(to); err != nil {
		return err
	}
	if w != nil {
		sc.s.mu.Lock()
		w.path = to
		sc.s.mu.Unlock()
		if f == nil {
			return nil
		}
	}
	// The pending file moves: under its lease, and the replaced one's.
	return sc.withLease(from, f, func() error {
		if old := v.files[to]; old != nil && old.id != f.id {
			err := sc.withLease(to, old, func() error { return sc.s.dropFile(sc.ctx(), sc.key, v, old.id) })
			if err != nil {
				return err
			}
		}
		n := *f
		n.name = to
		if err := sc.s.putEmpty(sc.ctx(), sc.s.fileKey(sc.key, &n)); err != nil {
			return err
		}
		for _, e := range v.byID[f.id] {
			if err := sc.s.deleteKey(sc.ctx(), e.key); err != nil {
				return err
			}
		}
		return nil
	})
}

// Setattr sets attributes: of a file being written through this bridge
// (mode, time, size), of a pending file (mode and time, rewriting its
// entry under its lease) or of a directory (mode).
func (sc *scope) Setattr(name string, a uploads.Attrs) error {
	if err := checkName(name); err != nil {
		return err
	}
	if name == "" {
		if a.Size != nil {
			return perr("", uploads.ErrIsDir)
		}
		return nil
	}
	if w := sc.writerAt(name); w != nil {
		w.setAttrs(a)
		if a.Size != nil {
			return w.Truncate(*a.Size)
		}
		return nil
	}
	v, err := sc.view(name)
	if err != nil {
		return err
	}
	if v.isDir(name) {
		if a.Size != nil {
			return perr(name, uploads.ErrIsDir)
		}
		d := v.dirs[name]
		if d == nil || a.Mode == nil {
			return nil // times of a directory are not kept
		}
		n := *d
		n.mode = a.Mode.Perm()
		if err := sc.s.putEmpty(sc.ctx(), sc.s.dirKey(sc.key, &n)); err != nil {
			return sc.s.storeErr("setstat", name, err)
		}
		for _, old := range v.markers(name) {
			_ = sc.s.deleteKey(sc.ctx(), old.key)
		}
		return nil
	}
	f := v.files[name]
	if f == nil {
		return perr(name, uploads.ErrNotExist)
	}
	if a.Size != nil && *a.Size != f.size {
		return perr(name, uploads.ErrUnsupported)
	}
	n := *f
	if a.Mode != nil {
		n.mode = a.Mode.Perm()
	}
	if a.ModTime != nil {
		n.mtime = *a.ModTime
	}
	if n.mode == f.mode && n.mtime.Equal(f.mtime) {
		return nil
	}
	return sc.withLease(name, f, func() error {
		if err := sc.s.putEmpty(sc.ctx(), sc.s.fileKey(sc.key, &n)); err != nil {
			return err
		}
		return sc.s.deleteKey(sc.ctx(), f.key)
	})
}

// CheckSize tells in advance whether a file of size bytes may be written
// (scp announces sizes).
func (sc *scope) CheckSize(name string, size int64) error {
	lim := sc.s.lim
	if lim.MaxFileSize >= 0 && size > lim.MaxFileSize {
		sc.s.emit(uploads.Event{Kind: "refused", User: sc.user, App: sc.app, Name: name, Size: size, Reason: "too_large"})
		return sc.s.tooLargeErr(name)
	}
	if used, quota := sc.Usage(); quota >= 0 && used+size > quota {
		sc.s.emit(uploads.Event{Kind: "refused", User: sc.user, App: sc.app, Name: name, Size: size, Reason: "quota"})
		return sc.s.quotaErr(name)
	}
	return nil
}

func (s *Store) quotaErr(name string) error { return s.lim.QuotaError(name) }

func (s *Store) tooLargeErr(name string) error { return s.lim.TooLargeError(name) }

// OpenFile opens a pending file for reading back: its blob is fetched and
// decrypted into a spool file, which the reader serves.
func (sc *scope) OpenFile(name string) (uploads.FileReader, uploads.Entry, error) {
	if err := checkNonRoot(name); err != nil {
		return nil, uploads.Entry{}, err
	}
	v, err := sc.view(name)
	if err != nil {
		return nil, uploads.Entry{}, err
	}
	if v.isDir(name) {
		return nil, uploads.Entry{}, perr(name, uploads.ErrIsDir)
	}
	if sc.writerAt(name) != nil {
		return nil, uploads.Entry{}, perr(name, uploads.ErrBusy)
	}
	f := v.files[name]
	if f == nil {
		return nil, uploads.Entry{}, perr(name, uploads.ErrNotExist)
	}
	sp, err := sc.s.fetchToSpool(sc.ctx(), sc.key, f)
	if err != nil {
		return nil, uploads.Entry{}, sc.s.storeErr("read", name, err)
	}
	return &spoolReader{f: sp, s: sc.s, n: f.size}, f.entry(), nil
}

// spoolReader reads a file fetched to the spool.
type spoolReader struct {
	f   *os.File
	s   *Store
	n   int64
	off int64
}

func (r *spoolReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *spoolReader) Read(p []byte) (int, error) {
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	return n, err
}
func (r *spoolReader) Close() error {
	r.s.spoolUsed.Add(-r.n)
	return r.f.Close()
}

// spoolFile makes an unlinked spool file, counting n bytes against the
// spool's bound.
func (s *Store) spoolFile(n int64) (*os.File, error) {
	if !s.reserveSpool(n) {
		return nil, uploads.ErrSpoolFull
	}
	f, err := os.CreateTemp(s.spoolDir, "spool-")
	if err != nil {
		s.spoolUsed.Add(-n)
		return nil, fmt.Errorf("spool file: %w", err)
	}
	_ = os.Remove(f.Name())
	return f, nil
}

func (s *Store) reserveSpool(n int64) bool {
	if s.spoolUsed.Add(n) > s.spoolSize && n > 0 {
		s.spoolUsed.Add(-n)
		return false
	}
	return true
}

// fetchToSpool writes the plaintext of a pending file to a new spool file.
func (s *Store) fetchToSpool(ctx context.Context, k scopeKey, f *fileEnt) (*os.File, error) {
	sp, err := s.spoolFile(f.size)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		sp.Close()
		s.spoolUsed.Add(-f.size)
		return nil, err
	}
	r, err := s.getPlain(ctx, k, f)
	if err != nil {
		return fail(err)
	}
	n, err := io.Copy(sp, r)
	r.Close()
	if err != nil {
		return fail(err)
	}
	if n != f.size {
		return fail(fmt.Errorf("blob of %d bytes, want %d", n, f.size))
	}
	return sp, nil
}

// getPlain streams the plaintext of a pending file from the store.
func (s *Store) getPlain(ctx context.Context, k scopeKey, f *fileEnt) (io.ReadCloser, error) {
	if f.size == 0 {
		// DARE encrypts nothing to nothing: there is no package to read.
		return io.NopCloser(strings.NewReader("")), nil
	}
	key := s.blobKey(k, f.id)
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	body := newReadahead(out.Body, 1<<20, 4)
	r, err := s.decryptReader(f.id, body)
	if err != nil {
		body.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{r, body}, nil
}
