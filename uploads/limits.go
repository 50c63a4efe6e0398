package uploads

import (
	"fmt"
	"time"
)

// Defaults for the zero values of Limits.
const (
	// DefaultMaxFileSize is the platform's own cap on one uploaded file.
	DefaultMaxFileSize int64 = 100 << 20
	// DefaultUserQuota bounds what one user keeps pending over all apps.
	DefaultUserQuota int64 = 1 << 30
	// DefaultExpiry is how long a pending file waits for a session.
	DefaultExpiry = 24 * time.Hour
)

// Limits bound the staging area. Each is checked while a file is written, so
// a refused file never becomes pending.
type Limits struct {
	// MaxFileSize caps one file; 0 means DefaultMaxFileSize, negative means none.
	MaxFileSize int64
	// UserQuota caps the bytes pending or being written for one user over
	// all apps; 0 means DefaultUserQuota, negative means none.
	UserQuota int64
	// Expiry removes a pending file this long after it became pending (and an
	// empty directory this long after it was made); 0 means DefaultExpiry,
	// negative means never.
	Expiry time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.UserQuota == 0 {
		l.UserQuota = DefaultUserQuota
	}
	if l.Expiry == 0 {
		l.Expiry = DefaultExpiry
	}
	return l
}

// QuotaError refuses name for the user's quota (ErrQuotaExceeded), saying
// what the quota is.
func (l Limits) QuotaError(name string) error {
	return perr(name, fmt.Errorf("%w (%s pending per user; deliver or remove files first)",
		ErrQuotaExceeded, humanBytes(l.UserQuota)))
}

// TooLargeError refuses name for the largest file (ErrFileTooLarge),
// saying what it is.
func (l Limits) TooLargeError(name string) error {
	return perr(name, fmt.Errorf("%w (%s)", ErrFileTooLarge, humanBytes(l.MaxFileSize)))
}

// humanBytes renders a limit for a message a user reads.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
