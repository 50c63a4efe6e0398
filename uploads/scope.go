package uploads

import (
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"
)

// Scope is the view of one (user, app) on the staging area: a tree rooted at
// what the user sees as /tmp/uploads. Names are relative slash-separated
// paths ("dir/sub/f"); "" is the root. It is safe for concurrent use.
type Scope struct {
	s         *Store
	key       scopeKey
	user, app string
}

// Entry describes a pending file, a directory, or a file being written.
type Entry struct {
	Name    string      // relative path, "dir/sub/f"; "" for the root
	Size    int64       // bytes (so far, for a file being written)
	Mode    fs.FileMode // permission bits, plus fs.ModeDir for a directory
	ModTime time.Time   // as set by the client (chmod/utimes), else when written
	Created time.Time   // when it became pending (or was made, for a directory)
	Writing bool        // being written: not pending yet, never delivered
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode.IsDir() }

// User is the identity the scope was opened for.
func (sc *Scope) User() string { return sc.user }

// App is the app the scope was opened for.
func (sc *Scope) App() string { return sc.app }

// Limits returns the store's limits, defaults applied.
func (sc *Scope) Limits() Limits { return sc.s.lim }

// Usage returns the bytes this scope's user has pending or being written
// over all apps, and the quota (negative: none).
func (sc *Scope) Usage() (used, quota int64) {
	sc.s.mu.Lock()
	defer sc.s.mu.Unlock()
	return sc.s.usage[sc.key.user], sc.s.lim.UserQuota
}

// lock takes the store lock, expires what is due and returns the tree.
func (sc *Scope) lock() *scopeState {
	sc.s.mu.Lock()
	st := sc.s.state(sc)
	sc.s.expireLocked(st)
	return st
}

// unlock forgets the scope's state if it holds nothing, so that the store
// does not keep one per (user, app) ever seen, and releases the lock.
func (sc *Scope) unlock() {
	if st := sc.s.scopes[sc.key]; st != nil && st.idle() {
		delete(sc.s.scopes, sc.key)
	}
	sc.s.mu.Unlock()
}

// writerAt returns the newest live writer of name, if any.
func (st *scopeState) writerAt(name string) *Writer {
	var newest *Writer
	for w := range st.writers {
		if w.path == name && !w.unlinked && (newest == nil || w.seq > newest.seq) {
			newest = w
		}
	}
	return newest
}

func (st *scopeState) isDir(name string) bool { return name == "" || st.dirs[name] != nil }

func (st *scopeState) exists(name string) bool {
	return st.isDir(name) || st.files[name] != nil || st.writerAt(name) != nil
}

// hasChildren reports whether anything lies under dir.
func (st *scopeState) hasChildren(dir string) bool {
	for p := range st.files {
		if under(p, dir) {
			return true
		}
	}
	for p := range st.dirs {
		if under(p, dir) {
			return true
		}
	}
	for w := range st.writers {
		if !w.unlinked && under(w.path, dir) {
			return true
		}
	}
	return false
}

// entryLocked describes name as the tree shows it now.
func (st *scopeState) entryLocked(name string) (Entry, bool) {
	if name == "" {
		return Entry{Name: "", Mode: fs.ModeDir | 0o755, ModTime: st.created, Created: st.created}, true
	}
	if d := st.dirs[name]; d != nil {
		return Entry{Name: name, Mode: fs.ModeDir | d.mode, ModTime: d.modTime, Created: d.created}, true
	}
	// A file being written shadows the pending one it will replace.
	if w := st.writerAt(name); w != nil {
		return w.entryLocked(), true
	}
	if f := st.files[name]; f != nil {
		return Entry{Name: name, Size: f.size, Mode: f.mode, ModTime: f.modTime, Created: f.created}, true
	}
	return Entry{}, false
}

// Stat describes one name, the root included.
func (sc *Scope) Stat(name string) (Entry, error) {
	if name != "" {
		if err := CheckPath(name); err != nil {
			return Entry{}, err
		}
	}
	st := sc.lock()
	defer sc.unlock()
	e, ok := st.entryLocked(name)
	if !ok {
		return Entry{}, perr(name, ErrNotExist)
	}
	return e, nil
}

// List describes the entries of a directory, sorted by name.
func (sc *Scope) List(dir string) ([]Entry, error) {
	if dir != "" {
		if err := CheckPath(dir); err != nil {
			return nil, err
		}
	}
	st := sc.lock()
	defer sc.unlock()
	if !st.isDir(dir) {
		if st.exists(dir) {
			return nil, perr(dir, ErrNotDir)
		}
		return nil, perr(dir, ErrNotExist)
	}
	names := make(map[string]bool)
	for p := range st.files {
		if parentOf(p) == dir {
			names[p] = true
		}
	}
	for p := range st.dirs {
		if parentOf(p) == dir {
			names[p] = true
		}
	}
	for w := range st.writers {
		if !w.unlinked && parentOf(w.path) == dir {
			names[w.path] = true
		}
	}
	out := make([]Entry, 0, len(names))
	for p := range names {
		if e, ok := st.entryLocked(p); ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Pending lists the files complete and waiting for delivery, oldest first.
func (sc *Scope) Pending() ([]Entry, error) {
	st := sc.lock()
	defer sc.unlock()
	return st.pendingLocked(), nil
}

func (st *scopeState) pendingLocked() []Entry {
	out := make([]Entry, 0, len(st.files))
	for p, f := range st.files {
		out = append(out, Entry{Name: p, Size: f.size, Mode: f.mode, ModTime: f.modTime, Created: f.created})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Mkdir makes a directory; its parent must exist.
func (sc *Scope) Mkdir(name string, mode fs.FileMode) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o755
	}
	st := sc.lock()
	defer sc.unlock()
	if err := st.checkParent(name); err != nil {
		return err
	}
	if st.exists(name) {
		return perr(name, ErrExist)
	}
	if err := st.checkEntries(name); err != nil {
		return err
	}
	now := sc.s.now()
	st.dirs[name] = &dirEntry{mode: mode.Perm(), modTime: now, created: now}
	st.noteCreated(now)
	if err := sc.s.saveLocked(st); err != nil {
		delete(st.dirs, name)
		return err
	}
	return nil
}

// MaxEntries bounds the files and directories of one scope: empty files
// and directories cost no quota bytes, but each costs memory, a manifest
// line and, for files, an upload at the next session.
const MaxEntries = 100_000

func (st *scopeState) checkEntries(name string) error {
	if len(st.files)+len(st.dirs)+len(st.writers) >= MaxEntries {
		return perr(name, fmt.Errorf("%w (at most %d files and directories per app)", ErrQuotaExceeded, MaxEntries))
	}
	return nil
}

func (st *scopeState) checkParent(name string) error {
	p := parentOf(name)
	if st.isDir(p) {
		return nil
	}
	if st.exists(p) {
		return perr(p, ErrNotDir)
	}
	return perr(p, ErrNotExist)
}

// Rmdir removes an empty directory.
func (sc *Scope) Rmdir(name string) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	st := sc.lock()
	defer sc.unlock()
	d := st.dirs[name]
	if d == nil {
		if st.exists(name) {
			return perr(name, ErrNotDir)
		}
		return perr(name, ErrNotExist)
	}
	if st.hasChildren(name) {
		return perr(name, ErrDirNotEmpty)
	}
	delete(st.dirs, name)
	if err := sc.s.saveLocked(st); err != nil {
		st.dirs[name] = d
		return err
	}
	return nil
}

// Remove removes a file: a pending one at once; one being written is dropped
// when its writer closes.
func (sc *Scope) Remove(name string) error {
	if err := checkNonRoot(name); err != nil {
		return err
	}
	st := sc.lock()
	defer sc.unlock()
	if st.dirs[name] != nil {
		return perr(name, ErrIsDir)
	}
	found := false
	for w := range st.writers {
		if w.path == name && !w.unlinked {
			w.unlinked = true
			found = true
		}
	}
	f := st.files[name]
	if f == nil {
		if found {
			return nil
		}
		return perr(name, ErrNotExist)
	}
	delete(st.files, name)
	if err := sc.s.saveLocked(st); err != nil {
		st.files[name] = f
		return err
	}
	sc.s.usage[st.key.user] -= f.size
	sc.s.removeBlob(st, f.blob)
	return nil
}

// Rename moves a file or a directory (with everything under it), replacing
// a file or an empty directory at the target as POSIX rename does.
func (sc *Scope) Rename(from, to string) error {
	if err := checkNonRoot(from); err != nil {
		return err
	}
	if err := checkNonRoot(to); err != nil {
		return err
	}
	st := sc.lock()
	defer sc.unlock()
	if !st.exists(from) {
		return perr(from, ErrNotExist)
	}
	if from == to {
		return nil
	}
	if under(to, from) {
		return perr(to, ErrInvalidName)
	}
	if err := st.checkParent(to); err != nil {
		return err
	}
	srcDir := st.dirs[from] != nil
	var replaced *fileEntry
	var replacedDir *dirEntry
	switch {
	case srcDir && st.dirs[to] != nil:
		if st.hasChildren(to) {
			return perr(to, ErrDirNotEmpty)
		}
		replacedDir = st.dirs[to]
	case srcDir && (st.files[to] != nil || st.writerAt(to) != nil):
		return perr(to, ErrNotDir)
	case !srcDir && st.dirs[to] != nil:
		return perr(to, ErrIsDir)
	case !srcDir:
		replaced = st.files[to]
	}

	// Move by rebuilding the maps, so a failed save can put them back.
	oldFiles, oldDirs := st.files, st.dirs
	moved := func(p string) (string, bool) {
		if p == from {
			return to, true
		}
		if srcDir && under(p, from) {
			return to + strings.TrimPrefix(p, from), true
		}
		return p, false
	}
	files := make(map[string]*fileEntry, len(oldFiles))
	for p, f := range oldFiles {
		if p == to && replaced != nil {
			continue
		}
		np, _ := moved(p)
		files[np] = f
	}
	dirs := make(map[string]*dirEntry, len(oldDirs))
	for p, d := range oldDirs {
		if p == to && replacedDir != nil {
			continue
		}
		np, _ := moved(p)
		dirs[np] = d
	}
	st.files, st.dirs = files, dirs
	if err := sc.s.saveLocked(st); err != nil {
		st.files, st.dirs = oldFiles, oldDirs
		return err
	}
	for w := range st.writers {
		if np, ok := moved(w.path); ok && !w.unlinked {
			w.path = np
		}
	}
	if replaced != nil {
		sc.s.usage[st.key.user] -= replaced.size
		sc.s.removeBlob(st, replaced.blob)
	}
	return nil
}

// Attrs are the attributes a client may set; nil fields are left alone.
type Attrs struct {
	Mode    *fs.FileMode // permission bits, kept as metadata only
	ModTime *time.Time
	Size    *int64 // only for a file being written (truncate or extend)
}

// Setattr sets attributes of a name (chmod, utimes, truncate). Modes and
// times are metadata shown in listings; the delivery carries names and bytes.
func (sc *Scope) Setattr(name string, a Attrs) error {
	if name != "" {
		if err := CheckPath(name); err != nil {
			return err
		}
	}
	st := sc.lock()
	if name == "" {
		sc.unlock()
		if a.Size != nil {
			return perr("", ErrIsDir)
		}
		return nil // the root's attributes are fixed; accepting keeps clients calm
	}
	if d := st.dirs[name]; d != nil {
		defer sc.unlock()
		if a.Size != nil {
			return perr(name, ErrIsDir)
		}
		old := *d
		applyAttrs(&d.mode, &d.modTime, a)
		if err := sc.s.saveLocked(st); err != nil {
			*d = old
			return err
		}
		return nil
	}
	if w := st.writerAt(name); w != nil {
		applyAttrs(&w.mode, &w.modTime, a)
		sc.unlock()
		if a.Size != nil {
			return w.Truncate(*a.Size)
		}
		return nil
	}
	defer sc.unlock()
	f := st.files[name]
	if f == nil {
		return perr(name, ErrNotExist)
	}
	if a.Size != nil && *a.Size != f.size {
		return perr(name, ErrUnsupported)
	}
	old := *f
	applyAttrs(&f.mode, &f.modTime, a)
	if err := sc.s.saveLocked(st); err != nil {
		*f = old
		return err
	}
	return nil
}

func applyAttrs(mode *fs.FileMode, mtime *time.Time, a Attrs) {
	if a.Mode != nil {
		*mode = a.Mode.Perm()
	}
	if a.ModTime != nil {
		*mtime = *a.ModTime
	}
}

// File is a pending file opened for reading back.
type File struct{ f *os.File }

// ReadAt reads the file's bytes at an offset.
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

// Read reads the file's bytes sequentially.
func (f *File) Read(p []byte) (int, error) { return f.f.Read(p) }

// Close releases the file.
func (f *File) Close() error { return f.f.Close() }

// Open opens a pending file for reading back (SFTP get).
func (sc *Scope) Open(name string) (*File, Entry, error) {
	if err := checkNonRoot(name); err != nil {
		return nil, Entry{}, err
	}
	st := sc.lock()
	defer sc.unlock()
	if st.dirs[name] != nil {
		return nil, Entry{}, perr(name, ErrIsDir)
	}
	if st.writerAt(name) != nil {
		return nil, Entry{}, perr(name, ErrBusy)
	}
	fe := st.files[name]
	if fe == nil {
		return nil, Entry{}, perr(name, ErrNotExist)
	}
	// Opened under the lock so a concurrent removal cannot unlink it first.
	f, err := os.Open(sc.s.blobPath(st.key, fe.blob))
	if err != nil {
		return nil, Entry{}, err
	}
	return &File{f: f}, Entry{Name: name, Size: fe.size, Mode: fe.mode, ModTime: fe.modTime, Created: fe.created}, nil
}

// CheckSize tells in advance whether a file of size bytes may be written to
// name (scp announces sizes): the error a write would meet, or nil. The
// caller refuses the file on an error, which is reported to Observe as
// the Event "refused".
func (sc *Scope) CheckSize(name string, size int64) error {
	lim := sc.s.lim
	if lim.MaxFileSize >= 0 && size > lim.MaxFileSize {
		sc.s.emit(Event{Kind: "refused", User: sc.user, App: sc.app, Name: name, Size: size, Reason: "too_large"})
		return sc.s.tooLargeErr(name)
	}
	if used, quota := sc.Usage(); quota >= 0 && used+size > quota {
		sc.s.emit(Event{Kind: "refused", User: sc.user, App: sc.app, Name: name, Size: size, Reason: "quota"})
		return sc.s.quotaErr(name)
	}
	return nil
}
