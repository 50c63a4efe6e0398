package uploads

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Store is the staging area of one bridge process. It is safe for concurrent
// use; one Store owns its directory (a second Open of the same directory,
// from this process or another, fails until Close).
type Store struct {
	dir  string
	lim  Limits
	log  *slog.Logger
	now  func() time.Time
	lock *os.File
	// openJournal opens a scope's journal to append to it: the function
	// of that name, or a full disk in tests.
	openJournal func(name string) (journalFile, error)

	// mu guards scopes, usage, every scope's tree and the Writer fields
	// documented as such. Disk work under it is limited to renames, unlinks
	// and manifest writes; file data is copied outside it.
	mu     sync.Mutex
	scopes map[scopeKey]*scopeState
	usage  map[string]int64 // user dir name => bytes pending or reserved by writers
	seq    uint64           // orders writers of one name

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup // removals of delivered files (removeBlobsLater)

	observer observerFunc // Observe's function
}

type scopeKey struct{ user, app string } // hashed directory names

// Open opens (creating it if needed) the staging area under dir, discards
// the partial files of a previous run, loads the pending ones and starts
// the expiry sweep. Close stops it.
func Open(dir string, lim Limits, log *slog.Logger) (*Store, error) {
	return open(dir, lim, log, time.Now)
}

// open is Open with a clock, for tests of expiry.
func open(dir string, lim Limits, log *slog.Logger, now func() time.Time) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dir == "" {
		return nil, errors.New("open uploads: no directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open uploads: %w", err)
	}
	s := &Store{
		dir:    dir,
		lim:    lim.withDefaults(),
		log:    log,
		now:    now,
		scopes: make(map[scopeKey]*scopeState),
		usage:  make(map[string]int64),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.openJournal = openJournal
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open uploads: %w", err)
	}
	if s.lock, err = lockDir(dir); err != nil {
		return nil, fmt.Errorf("open uploads: %w", err)
	}
	// Partials of a previous run can never complete: their transfers are gone.
	if err := os.RemoveAll(s.stagingDir()); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("open uploads: discard partial files: %w", err)
	}
	if err := os.MkdirAll(s.stagingDir(), 0o700); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("open uploads: %w", err)
	}
	if err := s.loadAll(); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("open uploads: %w", err)
	}
	s.mu.Lock()
	s.sweepLocked()
	s.mu.Unlock()
	go s.sweeper()
	return s, nil
}

// ErrInUse is Open's error, usable with errors.Is, when another Store,
// in this process or another, holds the directory: its Close releases it.
var ErrInUse = errors.New("in use by another bridge")

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging directory %s is %w (%w)", dir, ErrInUse, err)
	}
	return f, nil
}

// Close stops the expiry sweep and releases the directory. Pending files stay
// on disk for the next Open; writers still open are abandoned.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.bg.Wait()
		err = s.lock.Close()
	})
	return err
}

// Limits returns the limits in force, defaults applied.
func (s *Store) Limits() Limits { return s.lim }

// Scope returns the pending files of one user (the authenticated identity,
// any string) for one app. Scopes of the same (user, app) share their state.
func (s *Store) Scope(user, app string) *Scope {
	return &Scope{s: s, key: scopeKey{user: hashName(user), app: hashName(app)}, user: user, app: app}
}

func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func (s *Store) stagingDir() string { return filepath.Join(s.dir, "staging") }

func (s *Store) scopeDir(k scopeKey) string {
	return filepath.Join(s.dir, "scopes", k.user, k.app)
}

func (s *Store) blobPath(k scopeKey, id string) string {
	return filepath.Join(s.scopeDir(k), "blobs", id)
}

// state returns the scope's tree, made empty on first use. Callers hold s.mu.
func (s *Store) state(sc *Scope) *scopeState {
	st, ok := s.scopes[sc.key]
	if !ok {
		st = newScopeState(sc.key, s.now())
		s.scopes[sc.key] = st
	}
	if st.user == "" {
		st.user, st.app = sc.user, sc.app
	}
	return st
}

// reserve accounts n more bytes to a user, refusing past the quota.
// Callers hold s.mu.
func (s *Store) reserveLocked(user string, n int64) bool {
	if n <= 0 {
		s.usage[user] += n
		return true
	}
	if s.lim.UserQuota >= 0 && s.usage[user]+n > s.lim.UserQuota {
		return false
	}
	s.usage[user] += n
	return true
}

func (s *Store) quotaErr(name string) error { return s.lim.QuotaError(name) }

func (s *Store) tooLargeErr(name string) error { return s.lim.TooLargeError(name) }

// removeBlob unlinks a blob whose entry is already gone from the manifest,
// and the scope's directories once nothing is left in them.
func (s *Store) removeBlob(st *scopeState, id string) {
	if err := os.Remove(s.blobPath(st.key, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("remove delivered or replaced upload", "err", err)
	}
	s.removeEmptyLocked(st)
}

// removeEmptyLocked removes the directories of a scope that holds nothing
// and has no writer about to commit into it. Failures are harmless: the
// directories are made again when needed.
func (s *Store) removeEmptyLocked(st *scopeState) {
	if len(st.files) != 0 || len(st.dirs) != 0 || len(st.writers) != 0 {
		return
	}
	dir := s.scopeDir(st.key)
	_ = os.Remove(filepath.Join(dir, "blobs"))
	_ = os.Remove(dir)
	_ = os.Remove(filepath.Dir(dir))
}
