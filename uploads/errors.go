package uploads

import (
	"errors"
	"io/fs"
)

// Errors returned by a Scope, usable with errors.Is. Their messages, and
// those of the errors wrapping them, name only the user's relative path and
// the limits, never the bridge's disk: they may be shown to the user as is.
// Any other error is internal (disk trouble) and is for the log only.
var (
	ErrNotExist      = fs.ErrNotExist
	ErrExist         = fs.ErrExist
	ErrPermission    = fs.ErrPermission
	ErrInvalidName   = errors.New("invalid file name")
	ErrFileTooLarge  = errors.New("file exceeds the per-file upload limit")
	ErrQuotaExceeded = errors.New("upload quota exceeded")
	ErrNotDir        = errors.New("not a directory")
	ErrIsDir         = errors.New("is a directory")
	ErrDirNotEmpty   = errors.New("directory not empty")
	ErrBusy          = errors.New("file is being written")
	ErrBroken        = errors.New("transfer broken")
	ErrUnsupported   = errors.New("operation not supported by the upload area")
)

// pathErr wraps a sentinel with the user's relative path.
type pathErr struct {
	path string
	err  error
}

func (e *pathErr) Error() string {
	if e.path == "" {
		return "/tmp/uploads: " + e.err.Error()
	}
	return quote(e.path) + ": " + e.err.Error()
}

func (e *pathErr) Unwrap() error { return e.err }

func perr(p string, err error) error { return &pathErr{path: p, err: err} }

// PathError is err about the staged file name, as a staging area's errors
// name it: "NAME": err (Go's quoting), or /tmp/uploads: err for "" (the
// area itself). errors.Is and As see err.
func PathError(name string, err error) error { return perr(name, err) }
