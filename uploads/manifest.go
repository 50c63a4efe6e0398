package uploads

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// scopeState is the tree of one (user, app): pending files, directories and
// the writers in flight. Guarded by Store.mu.
type scopeState struct {
	key     scopeKey
	user    string // for humans reading the manifest; may be empty after a load
	app     string
	created time.Time
	oldest  time.Time // lower bound of the entries' creation times; zero: none
	files   map[string]*fileEntry
	dirs    map[string]*dirEntry
	writers map[*Writer]struct{}
	// delivering serializes Deliver calls so two sessions starting at once
	// do not send the same file twice.
	delivering chan struct{}
	deliverers int       // Deliver calls holding this state
	disk       persisted // what manifest.json and journal.jsonl hold
}

// idle reports whether nothing refers to the state but the store's map.
func (st *scopeState) idle() bool {
	return len(st.files) == 0 && len(st.dirs) == 0 && len(st.writers) == 0 && st.deliverers == 0
}

type fileEntry struct {
	blob    string
	size    int64
	mode    fs.FileMode // permission bits only
	modTime time.Time
	created time.Time // when it became pending: expiry counts from here
}

type dirEntry struct {
	mode    fs.FileMode
	modTime time.Time
	created time.Time
}

func newScopeState(k scopeKey, now time.Time) *scopeState {
	return &scopeState{
		key:        k,
		created:    now,
		files:      make(map[string]*fileEntry),
		dirs:       make(map[string]*dirEntry),
		writers:    make(map[*Writer]struct{}),
		delivering: make(chan struct{}, 1),
		disk:       persisted{files: make(map[string]manifestFile), dirs: make(map[string]manifestDir)},
	}
}

const manifestVersion = 1

// On disk a scope's tree is a snapshot (manifest.json, replaced atomically
// and synced) and a journal (journal.jsonl) of the changes since, one line
// per change, appended. Appends are not synced: a crash of the bridge loses
// nothing (the kernel has the bytes), and a crash of the machine loses at
// most the last changes, whose files then count as never uploaded; syncing
// each line would cost a disk flush per file of a `put -r`. A change is a
// set of absolute states ("this path is now this file", "this path is
// gone"), so replaying a line twice is harmless. An append that fails (a
// full disk writes part of the line) is cut off again, so the journal is
// left as it was; should that fail too, or the machine crash mid-append,
// the next append starts a line of its own, and reading skips the torn
// line alone, never the lines after it.
// Appending keeps the cost of a change small however large the tree
// (`put -r` of thousands of files); the journal is folded into a new
// snapshot once it outgrows it.
const (
	manifestName = "manifest.json"
	journalName  = "journal.jsonl"
)

type manifest struct {
	Version int            `json:"version"`
	User    string         `json:"user,omitempty"`
	App     string         `json:"app,omitempty"`
	Files   []manifestFile `json:"files"`
	Dirs    []manifestDir  `json:"dirs"`
}

type manifestFile struct {
	Path    string    `json:"path"`
	Blob    string    `json:"blob"`
	Size    int64     `json:"size"`
	Mode    uint32    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	Created time.Time `json:"created"`
}

type manifestDir struct {
	Path    string    `json:"path"`
	Mode    uint32    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	Created time.Time `json:"created"`
}

// change is one journal line.
type change struct {
	Files    []manifestFile `json:"files,omitempty"`
	DelFiles []string       `json:"del_files,omitempty"`
	Dirs     []manifestDir  `json:"dirs,omitempty"`
	DelDirs  []string       `json:"del_dirs,omitempty"`
}

func (c *change) empty() bool {
	return len(c.Files)+len(c.DelFiles)+len(c.Dirs)+len(c.DelDirs) == 0
}

func toManifestFile(p string, f fileEntry) manifestFile {
	return manifestFile{Path: p, Blob: f.blob, Size: f.size, Mode: uint32(f.mode.Perm()),
		ModTime: f.modTime.UTC(), Created: f.created.UTC()}
}

func toManifestDir(p string, d dirEntry) manifestDir {
	return manifestDir{Path: p, Mode: uint32(d.mode.Perm()), ModTime: d.modTime.UTC(), Created: d.created.UTC()}
}

// persisted is what the disk holds of a scope, to compute the next change.
type persisted struct {
	files         map[string]manifestFile
	dirs          map[string]manifestDir
	journalBytes  int64
	snapshotBytes int64
}

// diff is the change from what the disk holds to the tree in memory.
func (st *scopeState) diff() change {
	var c change
	for p, f := range st.files {
		if m := toManifestFile(p, *f); !sameFile(st.disk.files[p], m) {
			c.Files = append(c.Files, m)
		}
	}
	for p := range st.disk.files {
		if st.files[p] == nil {
			c.DelFiles = append(c.DelFiles, p)
		}
	}
	for p, d := range st.dirs {
		if m := toManifestDir(p, *d); !sameDir(st.disk.dirs[p], m) {
			c.Dirs = append(c.Dirs, m)
		}
	}
	for p := range st.disk.dirs {
		if st.dirs[p] == nil {
			c.DelDirs = append(c.DelDirs, p)
		}
	}
	return c
}

func sameFile(a, b manifestFile) bool {
	return a.Path == b.Path && a.Blob == b.Blob && a.Size == b.Size && a.Mode == b.Mode &&
		a.ModTime.Equal(b.ModTime) && a.Created.Equal(b.Created)
}

func sameDir(a, b manifestDir) bool {
	return a.Path == b.Path && a.Mode == b.Mode && a.ModTime.Equal(b.ModTime) && a.Created.Equal(b.Created)
}

// markPersisted records the tree in memory as what the disk holds.
func (st *scopeState) markPersisted() {
	st.disk.files = make(map[string]manifestFile, len(st.files))
	for p, f := range st.files {
		st.disk.files[p] = toManifestFile(p, *f)
	}
	st.disk.dirs = make(map[string]manifestDir, len(st.dirs))
	for p, d := range st.dirs {
		st.disk.dirs[p] = toManifestDir(p, *d)
	}
}

// apply records a change written to the journal.
func (d *persisted) apply(c change) {
	for _, f := range c.Files {
		d.files[f.Path] = f
	}
	for _, p := range c.DelFiles {
		delete(d.files, p)
	}
	for _, m := range c.Dirs {
		d.dirs[m.Path] = m
	}
	for _, p := range c.DelDirs {
		delete(d.dirs, p)
	}
}

// saveLocked makes the disk hold the scope's tree: one journal line for
// what changed, or a new snapshot when the journal has grown too long, or
// nothing at all once the scope is empty.
func (s *Store) saveLocked(st *scopeState) error {
	dir := s.scopeDir(st.key)
	if len(st.files) == 0 && len(st.dirs) == 0 {
		for _, name := range []string{manifestName, journalName} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("save uploads manifest: %w", err)
			}
		}
		st.markPersisted()
		st.disk.journalBytes, st.disk.snapshotBytes = 0, 0
		s.removeEmptyLocked(st)
		return nil
	}
	c := st.diff()
	if c.empty() {
		return nil
	}
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	line = append(line, '\n')
	if st.disk.journalBytes+int64(len(line)) > 64<<10+2*st.disk.snapshotBytes {
		return s.snapshotLocked(st)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	n, err := s.appendRecord(filepath.Join(dir, journalName), line)
	if err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	st.disk.journalBytes += n
	st.disk.apply(c)
	return nil
}

// journalFile is the journal as appendRecord uses it; Store.openJournal
// opens it, so that tests can make the disk full.
type journalFile interface {
	Stat() (fs.FileInfo, error)
	ReadAt(p []byte, off int64) (int, error)
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Close() error
}

func openJournal(name string) (journalFile, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
}

// appendRecord appends one line (ending in \n) to the journal and returns
// the bytes added, or fails and leaves the journal as it was: a full disk
// may take part of the line, and a fragment left at the end would swallow
// the next record appended after it. When the journal does not end a line
// (an earlier undo failed, or the machine crashed mid-append), the record
// starts a line of its own.
func (s *Store) appendRecord(name string, line []byte) (int64, error) {
	f, err := s.openJournal(name)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	size := fi.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			f.Close()
			return 0, err
		}
		if last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	_, err = f.Write(line)
	if err != nil {
		if terr := f.Truncate(size); terr != nil {
			s.log.Warn("uploads: could not cut a failed journal append", "err", terr)
		}
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		if terr := os.Truncate(name, size); terr != nil {
			s.log.Warn("uploads: could not cut a failed journal append", "err", terr)
		}
		return 0, err
	}
	return int64(len(line)), nil
}

// snapshotLocked writes the whole tree as a new snapshot and drops the
// journal, which the snapshot contains.
func (s *Store) snapshotLocked(st *scopeState) error {
	dir := s.scopeDir(st.key)
	m := manifest{Version: manifestVersion, User: st.user, App: st.app,
		Files: make([]manifestFile, 0, len(st.files)), Dirs: make([]manifestDir, 0, len(st.dirs))}
	for p, f := range st.files {
		m.Files = append(m.Files, toManifestFile(p, *f))
	}
	for p, d := range st.dirs {
		m.Dirs = append(m.Dirs, toManifestDir(p, *d))
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	sort.Slice(m.Dirs, func(i, j int) bool { return m.Dirs[i].Path < m.Dirs[j].Path })
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, manifestName), data); err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	// Were this removal lost to a crash, replaying the journal over the new
	// snapshot would change nothing: its lines are absolute states.
	if err := os.Remove(filepath.Join(dir, journalName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("uploads: remove folded journal", "err", err)
	}
	st.disk.journalBytes, st.disk.snapshotBytes = 0, int64(len(data))
	st.markPersisted()
	return nil
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// loadAll reads every scope's snapshot and journal, drops entries whose blob
// is missing or of the wrong size (a crash between writing and committing),
// restores missing parent directories, deletes blobs no entry names, and
// folds each journal into a fresh snapshot.
func (s *Store) loadAll() error {
	users, err := os.ReadDir(filepath.Join(s.dir, "scopes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range users {
		apps, err := os.ReadDir(filepath.Join(s.dir, "scopes", u.Name()))
		if err != nil {
			s.log.Warn("uploads: skip unreadable user directory", "user_dir", u.Name(), "err", err)
			continue
		}
		for _, a := range apps {
			k := scopeKey{user: u.Name(), app: a.Name()}
			if err := s.loadScope(k); err != nil {
				s.log.Warn("uploads: skip unreadable scope", "user_dir", k.user, "app_dir", k.app, "err", err)
			}
		}
	}
	return nil
}

// readTree reads a scope's snapshot and replays its journal.
func readTree(dir string) (m manifest, files map[string]manifestFile, dirs map[string]manifestDir, journal bool, err error) {
	files = make(map[string]manifestFile)
	dirs = make(map[string]manifestDir)
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return m, nil, nil, false, err
	}
	if err == nil {
		if err := json.Unmarshal(data, &m); err != nil {
			return m, nil, nil, false, fmt.Errorf("parse manifest: %w", err)
		}
	}
	for _, f := range m.Files {
		files[f.Path] = f
	}
	for _, d := range m.Dirs {
		dirs[d.Path] = d
	}
	data, err = os.ReadFile(filepath.Join(dir, journalName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return m, nil, nil, false, err
	}
	journal = err == nil
	for _, line := range bytes.Split(data, []byte("\n")) {
		c, ok := parseChange(line)
		if !ok {
			continue // a torn line from a crash mid-append
		}
		for _, f := range c.Files {
			files[f.Path] = f
		}
		for _, p := range c.DelFiles {
			delete(files, p)
		}
		for _, d := range c.Dirs {
			dirs[d.Path] = d
		}
		for _, p := range c.DelDirs {
			delete(dirs, p)
		}
	}
	return m, files, dirs, journal, nil
}

// recordStarts are how a journal line can begin: json.Marshal writes the
// fields of a change in order, and omits the empty ones.
var recordStarts = [][]byte{[]byte(`{"files":`), []byte(`{"del_files":`), []byte(`{"dirs":`), []byte(`{"del_dirs":`)}

// parseChange reads one journal line. A line that does not parse may be a
// torn record with a whole one after it on the same line (a failed append
// of an earlier version of the bridge left no line end): the whole one is
// kept. Inside a record, names are JSON strings, in which a quote is
// escaped, so a record start cannot be forged by a file name.
func parseChange(line []byte) (change, bool) {
	for len(line) > 0 {
		var c change
		if json.Unmarshal(line, &c) == nil {
			return c, true
		}
		next := -1
		for _, start := range recordStarts {
			if i := bytes.Index(line[1:], start); i >= 0 && (next < 0 || i+1 < next) {
				next = i + 1
			}
		}
		if next < 0 {
			break
		}
		line = line[next:]
	}
	return change{}, false
}

func (s *Store) loadScope(k scopeKey) error {
	dir := s.scopeDir(k)
	m, files, dirs, journal, err := readTree(dir)
	if err != nil {
		return err
	}
	st := newScopeState(k, s.now())
	st.user, st.app = m.User, m.App
	changed := journal
	for _, d := range dirs {
		if CheckPath(d.Path) != nil {
			changed = true
			continue
		}
		st.dirs[d.Path] = &dirEntry{mode: fs.FileMode(d.Mode).Perm(), modTime: d.ModTime, created: d.Created}
		st.noteCreated(d.Created)
	}
	for _, f := range files {
		fi, err := os.Stat(s.blobPath(k, f.Blob))
		if CheckPath(f.Path) != nil || !validBlobID(f.Blob) || err != nil || fi.Size() != f.Size || st.dirs[f.Path] != nil {
			s.log.Warn("uploads: drop damaged pending file", "user_dir", k.user, "app_dir", k.app)
			changed = true
			continue
		}
		st.files[f.Path] = &fileEntry{blob: f.Blob, size: f.Size, mode: fs.FileMode(f.Mode).Perm(),
			modTime: f.ModTime, created: f.Created}
		st.noteCreated(f.Created)
		s.usage[k.user] += f.Size
	}
	// Every pending file needs its parent directories.
	for p := range st.files {
		for d := parentOf(p); d != ""; d = parentOf(d) {
			if st.dirs[d] != nil {
				continue
			}
			if st.files[d] != nil {
				break // a file where a directory should be: damaged, keep what we can
			}
			created := st.files[p].created
			st.dirs[d] = &dirEntry{mode: 0o755, modTime: created, created: created}
			changed = true
		}
	}
	// Blobs that no entry names were left by a crash mid-commit or mid-removal.
	known := make(map[string]bool, len(st.files))
	for _, f := range st.files {
		known[f.blob] = true
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs"))
	for _, b := range blobs {
		if !known[b.Name()] {
			_ = os.Remove(filepath.Join(dir, "blobs", b.Name()))
		}
	}
	s.scopes[k] = st
	if !changed {
		st.markPersisted()
		return nil
	}
	if len(st.files) == 0 && len(st.dirs) == 0 {
		return s.saveLocked(st)
	}
	return s.snapshotLocked(st)
}

func validBlobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
