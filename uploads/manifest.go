package uploads

import (
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
	}
}

const manifestVersion = 1

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

// saveLocked replaces the scope's manifest atomically (temporary file,
// fsync, rename), or removes the scope's directory once it holds nothing.
func (s *Store) saveLocked(st *scopeState) error {
	dir := s.scopeDir(st.key)
	if len(st.files) == 0 && len(st.dirs) == 0 {
		if err := os.Remove(filepath.Join(dir, "manifest.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save uploads manifest: %w", err)
		}
		// Best effort: writers may be about to commit into blobs/.
		if len(st.writers) == 0 {
			_ = os.Remove(filepath.Join(dir, "blobs"))
			_ = os.Remove(dir)
			_ = os.Remove(filepath.Dir(dir))
		}
		return nil
	}
	m := manifest{Version: manifestVersion, User: st.user, App: st.app,
		Files: make([]manifestFile, 0, len(st.files)), Dirs: make([]manifestDir, 0, len(st.dirs))}
	for p, f := range st.files {
		m.Files = append(m.Files, manifestFile{Path: p, Blob: f.blob, Size: f.size,
			Mode: uint32(f.mode.Perm()), ModTime: f.modTime.UTC(), Created: f.created.UTC()})
	}
	for p, d := range st.dirs {
		m.Dirs = append(m.Dirs, manifestDir{Path: p, Mode: uint32(d.mode.Perm()),
			ModTime: d.modTime.UTC(), Created: d.created.UTC()})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	sort.Slice(m.Dirs, func(i, j int) bool { return m.Dirs[i].Path < m.Dirs[j].Path })
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "manifest.json"), data); err != nil {
		return fmt.Errorf("save uploads manifest: %w", err)
	}
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

// loadAll reads every scope's manifest, drops entries whose blob is missing
// or of the wrong size (a crash between writing and committing), restores
// missing parent directories, and deletes blobs no entry names.
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

func (s *Store) loadScope(k scopeKey) error {
	dir := s.scopeDir(k)
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var m manifest
	if err == nil {
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("parse manifest: %w", err)
		}
	}
	st := newScopeState(k, s.now())
	st.user, st.app = m.User, m.App
	changed := false
	for _, d := range m.Dirs {
		if CheckPath(d.Path) != nil {
			changed = true
			continue
		}
		st.dirs[d.Path] = &dirEntry{mode: fs.FileMode(d.Mode).Perm(), modTime: d.ModTime, created: d.Created}
		st.noteCreated(d.Created)
	}
	for _, f := range m.Files {
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
		for p := parentOf(f.Path); p != ""; p = parentOf(p) {
			if st.files[p] != nil {
				break // a file where a directory should be: damaged, keep what we can
			}
			if st.dirs[p] == nil {
				st.dirs[p] = &dirEntry{mode: 0o755, modTime: f.Created, created: f.Created}
				st.noteCreated(f.Created)
				changed = true
			}
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
	if changed {
		return s.saveLocked(st)
	}
	return nil
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
