package uploads

import (
	"sort"
	"strings"
	"time"
)

// sweepInterval is how often the background sweep runs: often enough that
// an expired file does not linger much past its time, rarely enough to cost
// nothing. Scopes in use also expire their files on every access.
func (s *Store) sweepInterval() time.Duration {
	return min(max(s.lim.Expiry/10, time.Second), 5*time.Minute)
}

func (s *Store) sweeper() {
	defer close(s.done)
	if s.lim.Expiry < 0 {
		<-s.stop
		return
	}
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.sweepLocked()
			s.mu.Unlock()
		}
	}
}

func (s *Store) sweepLocked() {
	for k, st := range s.scopes {
		s.expireLocked(st)
		if st.idle() {
			delete(s.scopes, k)
		}
	}
}

// expireLocked removes the scope's pending files older than the expiry, then
// its empty directories older than the expiry, deepest first.
func (s *Store) expireLocked(st *scopeState) {
	if s.lim.Expiry < 0 {
		return
	}
	cutoff := s.now().Add(-s.lim.Expiry)
	if !st.anyBefore(cutoff) {
		return
	}
	var gone []*fileEntry
	for p, f := range st.files {
		if f.created.Before(cutoff) {
			delete(st.files, p)
			gone = append(gone, f)
			s.emit(Event{Kind: "expired", User: st.user, App: st.app, Name: p, Size: f.size})
		}
	}
	dirsGone := s.pruneDirsLocked(st, cutoff)
	if len(gone) == 0 && dirsGone == 0 {
		return
	}
	if err := s.saveLocked(st); err != nil {
		// The entries stay out of memory; the next successful save or Open
		// settles the disk.
		s.log.Warn("uploads: save after expiry", "err", err)
	}
	for _, f := range gone {
		s.usage[st.key.user] -= f.size
		s.removeBlob(st, f.blob)
	}
	if len(gone) > 0 {
		s.log.Info("uploads: expired pending files", "user_dir", st.key.user, "app_dir", st.key.app, "files", len(gone))
	}
}

// pruneDirsLocked removes directories made at or before cutoff that hold nothing,
// deepest first so that emptied parents go too. It does not save.
func (s *Store) pruneDirsLocked(st *scopeState, cutoff time.Time) int {
	busy := make(map[string]bool) // directories that keep content
	mark := func(p string) {
		for d := parentOf(p); d != "" && !busy[d]; d = parentOf(d) {
			busy[d] = true
		}
	}
	for p := range st.files {
		mark(p)
	}
	for w := range st.writers {
		if !w.unlinked {
			mark(w.path)
		}
	}
	paths := make([]string, 0, len(st.dirs))
	for p := range st.dirs {
		paths = append(paths, p)
	}
	// Deeper paths first: a directory is decided after all its children.
	sort.Slice(paths, func(i, j int) bool { return depth(paths[i]) > depth(paths[j]) })
	n := 0
	for _, p := range paths {
		if !busy[p] && !st.dirs[p].created.After(cutoff) {
			delete(st.dirs, p)
			n++
			continue
		}
		mark(p)
	}
	return n
}

func depth(p string) int { return strings.Count(p, "/") }

// anyBefore reports whether a file or directory was made before t: the
// cheap test that spares a full expiry pass on every access.
func (st *scopeState) anyBefore(t time.Time) bool {
	if st.oldest.IsZero() || !st.oldest.Before(t) {
		return false
	}
	oldest := time.Time{}
	for _, f := range st.files {
		if oldest.IsZero() || f.created.Before(oldest) {
			oldest = f.created
		}
	}
	for _, d := range st.dirs {
		if oldest.IsZero() || d.created.Before(oldest) {
			oldest = d.created
		}
	}
	st.oldest = oldest
	return !oldest.IsZero() && oldest.Before(t)
}

// noteCreated keeps the cached oldest creation time a lower bound.
func (st *scopeState) noteCreated(t time.Time) {
	if st.oldest.IsZero() || t.Before(st.oldest) {
		st.oldest = t
	}
}
