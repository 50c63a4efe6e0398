package uploads

import (
	"fmt"
	"os"
	"sync/atomic"
)

// Event is a step of a staged file, for the bridge's metrics and audit
// stream.
type Event struct {
	// Kind is "staged" (a transfer ended cleanly and the file is
	// pending), "refused" (a write past MaxFileSize or the user's
	// quota failed it) or "expired" (Expiry dropped it).
	Kind string
	User string // the scope's user ("" for a scope not used since Open)
	App  string // the scope's app ("" likewise)
	Name string // the file's path in the scope
	Size int64  // its bytes; for "refused", the size it would have reached
	// Reason of a refusal: "quota" or "too_large".
	Reason string
}

// Observe has fn called at each Event, from the goroutine that caused it,
// at most once per event; fn must return quickly and must not call the
// Store. Nil stops the calls. Safe to call at any time.
func (s *Store) Observe(fn func(Event)) {
	if fn == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&fn)
}

func (s *Store) emit(e Event) {
	if fn := s.observer.Load(); fn != nil {
		(*fn)(e)
	}
}

// Pending counts the files pending in the staging area and their bytes,
// files being written left out.
func (s *Store) Pending() (files int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.scopes {
		for _, f := range st.files {
			files++
			bytes += f.size
		}
	}
	return files, bytes
}

type observerFunc = atomic.Pointer[func(Event)]

// CheckWritable creates a file where transfers are written and removes
// it: nil when the staging area can take a new upload now.
func (s *Store) CheckWritable() error {
	f, err := os.CreateTemp(s.stagingDir(), "ready-")
	if err != nil {
		return fmt.Errorf("staging area not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("staging area: %w", err)
	}
	return nil
}
