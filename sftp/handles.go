package sftp

import (
	"fmt"
	"sync"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// Handles bounds the files and directories that SFTP sessions hold open.
// Each open file is a file descriptor of the bridge's process, shared with
// its connections, the attach streams and the embedded platform's
// one-offs: a client that opens files and never closes them meets a clear
// refusal (SSH_FX_FAILURE naming the limit) instead of taking the
// descriptors everyone else needs. One Handles is shared by every session
// it is given to; it is safe for concurrent use.
type Handles struct {
	perSession int
	total      int

	mu   sync.Mutex
	open int // handles open in all sessions
}

// NewHandles returns limits of at most perSession handles open in one
// session and total in all the sessions served with it. A value of 0 or
// less means its default from DefaultHandleLimits.
func NewHandles(perSession, total int) *Handles {
	defPer, defTotal := DefaultHandleLimits()
	if perSession <= 0 {
		perSession = defPer
	}
	if total <= 0 {
		total = defTotal
	}
	return &Handles{perSession: perSession, total: total}
}

// Limits returns the limits in force: handles per session and in all.
func (l *Handles) Limits() (perSession, total int) { return l.perSession, l.total }

// maxPerSessionDefault caps the default per session: more than any SFTP
// client opens at once (OpenSSH's keeps one file open, rclone and lftp a
// few per transfer).
const maxPerSessionDefault = 1024

// DefaultHandleLimits sizes the limits from the process's file limit
// (RLIMIT_NOFILE, as raised by the Go runtime at start): total is half of
// it, leaving the other half to connections, attach streams and the
// embedded platform; perSession is an eighth of it (so that one session
// holds at most a quarter of total), at most 1024. Both are at least 1.
// When the limit cannot be read, it counts as 1024.
func DefaultHandleLimits() (perSession, total int) {
	limit := uint64(1024)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		limit = min(rl.Cur, 1<<24) // RLIM_INFINITY and other huge values
	}
	total = max(int(limit/2), 1)
	perSession = max(min(int(limit/8), maxPerSessionDefault), 1)
	return perSession, total
}

// sessionHandles counts the handles of one session.
type sessionHandles struct {
	lim  *Handles
	mu   sync.Mutex
	open int
}

// acquire takes a handle for name (the path the client asked for, to name
// in the refusal), or refuses past a limit. release gives it back; calls
// after the first do nothing.
func (s *sessionHandles) acquire(name string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open >= s.lim.perSession {
		return nil, &statusError{code: pkgsftp.ErrSSHFxFailure,
			msg: fmt.Sprintf("%q: too many open files (at most %d per SFTP session); close some first", name, s.lim.perSession)}
	}
	l := s.lim
	l.mu.Lock()
	if l.open >= l.total {
		l.mu.Unlock()
		return nil, &statusError{code: pkgsftp.ErrSSHFxFailure,
			msg: fmt.Sprintf("%q: too many open files on the bridge (at most %d in all SFTP sessions); try again later", name, l.total)}
	}
	l.open++
	l.mu.Unlock()
	s.open++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.open--
			l.mu.Unlock()
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
		})
	}, nil
}
