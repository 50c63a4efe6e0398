package sftp

import (
	"errors"
	"syscall"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// statusError is what a handler returns: pkg/sftp sends code (found with
// errors.As) and Error() as the status message.
type statusError struct {
	code  error // one of pkgsftp.ErrSSHFx*
	msg   string
	cause error // the staging error behind it, if any
}

func (e *statusError) Error() string { return e.msg }

func (e *statusError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.code}
	}
	return []error{e.code, e.cause}
}

// userError reports whether the user caused err (a name or a limit), so
// that it deserves a line on the channel's stderr: OpenSSH's sftp shows
// only the status code of a failure, never its message.
func userError(err error) bool {
	for _, e := range []error{uploads.ErrFileTooLarge, uploads.ErrQuotaExceeded, uploads.ErrInvalidName,
		uploads.ErrSpoolFull, uploads.ErrStoreUnavailable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// status turns a staging error into an SFTP status. The messages of the
// uploads sentinels name only the user's path and the limits, so they go to
// the client as they are; anything else is internal: logged, and replaced
// by a fixed sentence.
func (h *handlers) status(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *statusError
	if errors.As(err, &se) {
		return se
	}
	for _, m := range []struct {
		err  error
		code error
	}{
		{uploads.ErrNotExist, pkgsftp.ErrSSHFxNoSuchFile},
		{uploads.ErrPermission, pkgsftp.ErrSSHFxPermissionDenied},
		{uploads.ErrInvalidName, pkgsftp.ErrSSHFxPermissionDenied},
		{uploads.ErrUnsupported, pkgsftp.ErrSSHFxOpUnsupported},
		{uploads.ErrBroken, pkgsftp.ErrSSHFxConnectionLost},
		{uploads.ErrFileTooLarge, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrQuotaExceeded, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrExist, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrNotDir, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrIsDir, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrDirNotEmpty, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrBusy, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrSpoolFull, pkgsftp.ErrSSHFxFailure},
		{uploads.ErrStoreUnavailable, pkgsftp.ErrSSHFxFailure},
	} {
		if errors.Is(err, m.err) {
			if m.err == uploads.ErrStoreUnavailable {
				// OpenSSH's sftp shows a failure's code, "Failure", not
				// its message: the reason goes on stderr too, once.
				h.storeTold.Do(func() { h.printStderr(err.Error()) })
			}
			return &statusError{code: m.code, msg: err.Error(), cause: err}
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		h.log.Error("sftp: staging area out of disk space", "op", op, "err", err)
		return &statusError{code: pkgsftp.ErrSSHFxFailure, msg: "the bridge is out of disk space for uploads"}
	}
	h.log.Error("sftp: internal error", "op", op, "err", err)
	return &statusError{code: pkgsftp.ErrSSHFxFailure, msg: "internal error of the upload area"}
}
