package uploads

import (
	"context"
	"errors"
	"io"
	"io/fs"
)

// Backend is a staging area as the SSH side uses it: the local Store of
// this package (one bridge's disk), or a store shared by several bridges
// (package objstage: an S3-compatible object store). Its methods are
// those of Store, which satisfies it.
type Backend interface {
	// Files is the view of one (user, app): Store.Scope's.
	Files(user, app string) Files
	// Limits returns the limits in force, defaults applied.
	Limits() Limits
	// Observe has fn called at each Event (Store.Observe).
	Observe(fn func(Event))
	// Pending counts the pending files and their bytes, for metrics.
	Pending() (files int, bytes int64)
	// CheckWritable is nil when the area can take a new upload now
	// (readiness).
	CheckWritable() error
	// Close releases the area; pending files stay.
	Close() error
}

// Files is one (user, app)'s tree of pending files, directories and files
// being written, as Scope serves it: Scope satisfies it. Names are
// relative slash-separated paths (CheckPath); errors are this package's
// sentinels, whose messages may be shown to the user, or internal ones.
type Files interface {
	User() string
	App() string
	Limits() Limits
	// Usage is the bytes the user has pending or being written over all
	// apps, and the quota (negative: none).
	Usage() (used, quota int64)
	Stat(name string) (Entry, error)
	List(dir string) ([]Entry, error)
	// Pending lists the files complete and waiting for delivery, oldest first.
	Pending() ([]Entry, error)
	Mkdir(name string, mode fs.FileMode) error
	Rmdir(name string) error
	Remove(name string) error
	Rename(from, to string) error
	Setattr(name string, a Attrs) error
	// CheckSize is Scope.CheckSize: whether a file of size bytes may be
	// written to name.
	CheckSize(name string, size int64) error
	// OpenFile opens a pending file for reading back (Scope.Open).
	OpenFile(name string) (FileReader, Entry, error)
	// CreateFile opens name for writing (Scope.Create).
	CreateFile(name string, flag int, mode fs.FileMode) (FileWriter, error)
	// DeliverFiles sends the pending files to a one-off (Scope.Deliver).
	DeliverFiles(ctx context.Context, send SendFunc, progress ProgressFunc) (Handoff, error)
}

// FileReader is a pending file opened for reading back.
type FileReader interface {
	io.ReaderAt
	io.Reader
	io.Closer
}

// FileWriter writes one file into the staging area, with Writer's
// semantics: the file becomes pending only when Close returns nil after a
// clean transfer.
type FileWriter interface {
	Name() string
	io.WriterAt
	io.Writer
	io.ReaderAt
	Truncate(size int64) error
	TransferError(err error)
	Abort(err error)
	Close() error
}

// Handoff is a delivery in progress (Delivery's methods): exactly one of
// Commit or Release must be called.
type Handoff interface {
	Files() []string
	Commit() error
	Release()
}

// Errors of a shared store, usable with errors.Is; their messages may be
// shown to the user as they are.
var (
	// ErrSpoolFull refuses a write past the local spool of uploads in
	// flight (--staging-spool-size).
	ErrSpoolFull = errors.New("no space left in the bridge's spool for uploads in flight: try again later")
	// ErrStoreUnavailable is a store that failed or could not be reached:
	// nothing became pending.
	ErrStoreUnavailable = errors.New("the upload store is unavailable: nothing was staged, try again later")
)

var (
	_ Backend = (*Store)(nil)
	_ Files   = (*Scope)(nil)
)

// Files is Scope as the Backend interface gives it.
func (s *Store) Files(user, app string) Files { return s.Scope(user, app) }

// OpenFile is Open as the Files interface gives it.
func (sc *Scope) OpenFile(name string) (FileReader, Entry, error) {
	f, e, err := sc.Open(name)
	if err != nil {
		return nil, e, err
	}
	return f, e, nil
}

// CreateFile is Create as the Files interface gives it.
func (sc *Scope) CreateFile(name string, flag int, mode fs.FileMode) (FileWriter, error) {
	w, err := sc.Create(name, flag, mode)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// DeliverFiles is Deliver as the Files interface gives it.
func (sc *Scope) DeliverFiles(ctx context.Context, send SendFunc, progress ProgressFunc) (Handoff, error) {
	d, err := sc.Deliver(ctx, send, progress)
	if err != nil {
		return nil, err
	}
	return d, nil
}
