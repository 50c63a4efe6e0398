package platform

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// endReason says why a one-off ended; the first one recorded wins.
type endReason int

const (
	endNone          endReason = iota
	endExited                  // the command exited by itself
	endClientGone              // the attach connection broke
	endInactivity              // no data either way for InactivityTimeout
	endNeverAttached           // not attached within AttachTimeout
	endShutdown                // the platform is shutting down
	endStartFailed             // the process could not start
)

// retainEnded is how long an ended one-off still answers /wait and its
// operation, so that a client reading the exit code late finds it.
const retainEnded = 2 * time.Minute

// oneOff is one run request and, once attached, its process tree.
type oneOff struct {
	p          *Platform
	id         string // container id
	opID       string
	token      string // attach URL token: 32 random bytes
	app        string
	command    string
	size       string
	index      int
	tty        bool
	env        []string
	dir        string // this one-off's state dir; dir/tmp becomes its /tmp
	created    time.Time
	log        *slog.Logger
	uploads    sync.WaitGroup // uploads in flight; attach waits for them
	lastActive atomic.Int64   // unix nanos of the last byte either way

	mu          sync.Mutex
	attached    bool
	width       uint16
	height      uint16
	proc        *process
	conn        net.Conn
	reason      endReason
	code        int
	finished    time.Time
	attachTimer *time.Timer
	idleTimer   *time.Timer
	retainTimer *time.Timer
	ended       chan struct{} // closed once the tree is gone; its dir goes after (removeDirLater)
	endOnce     sync.Once
	lock        *os.File // dir, locked while the one-off may use it (see oneOffDirs)
	dirGone     bool     // removeDir ran: a dir made after goes at once
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (o *oneOff) tmpDir() string { return o.dir + "/tmp" }

func (o *oneOff) uploadDir() string { return o.dir + "/tmp/uploads" }

func (o *oneOff) touch() { o.lastActive.Store(time.Now().UnixNano()) }

// end starts the end of the one-off for reason: the tree is killed, and the
// attach connection closed unless the command exited by itself (its output
// is then drained first). finish completes the end once the tree is gone.
func (o *oneOff) end(reason endReason) {
	o.mu.Lock()
	if o.reason == endNone {
		o.reason = reason
	}
	proc, conn := o.proc, o.conn
	o.mu.Unlock()
	if proc == nil {
		o.finish(0)
		return
	}
	proc.kill()
	if conn != nil && reason != endExited {
		_ = conn.Close()
	}
}

// finish records the exit code, frees its quota, answers /wait and removes
// the one-off's dir behind; it runs once, after the tree is gone (or was
// never started).
func (o *oneOff) finish(code int) {
	o.endOnce.Do(func() {
		o.mu.Lock()
		if o.reason == endNone {
			o.reason = endExited
		}
		o.code = code
		o.finished = time.Now()
		o.stopTimersLocked()
		reason := o.reason
		o.mu.Unlock()
		o.p.removeDirLater(o)
		o.p.released(o)
		o.log.Info("one-off ended", "reason", reason.String(), "exit_code", code)
		close(o.ended)
		o.mu.Lock()
		o.retainTimer = time.AfterFunc(retainEnded, func() { o.p.forget(o) })
		o.mu.Unlock()
	})
}

// removeDirLater removes the one-off's dir off the path of its end: /wait
// answers at once, while a /tmp holding large uploads can take hundreds
// of milliseconds to remove (a 1 GiB file: 44 to 119 ms here). The dir
// stays locked until it is gone; Shutdown waits for it.
func (p *Platform) removeDirLater(o *oneOff) {
	lock := o.takeDir()
	if lock == nil {
		return
	}
	p.removals.Add(1)
	go func() {
		defer p.removals.Done()
		o.removeTree(lock)
	}()
}

// removeDir removes the one-off's dir, then lets go of its lock; it runs
// once, and a dir made after it ran is removed as soon as made.
func (o *oneOff) removeDir() {
	if lock := o.takeDir(); lock != nil {
		o.removeTree(lock)
	}
}

// takeDir marks the dir gone (a dir made after goes at once) and returns
// its lock the first time, nil after or when it was never made.
func (o *oneOff) takeDir() *os.File {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dirGone {
		return nil
	}
	o.dirGone = true
	lock := o.lock
	o.lock = nil
	return lock
}

// removeOneOffDir removes an ended one-off's dir (removeTree; tests hold
// it).
var removeOneOffDir = removeTree

func (o *oneOff) removeTree(lock *os.File) {
	if err := removeOneOffDir(o.dir); err != nil {
		o.log.Warn("remove one-off dir", "err", err)
	}
	lock.Close()
}

// killedLocked reports whether the platform has ended the one-off. A command
// that exited by itself, however fast, still has its output to deliver.
func (o *oneOff) killedLocked() bool {
	return o.reason != endNone && o.reason != endExited
}

func (o *oneOff) stopTimers() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopTimersLocked()
	if o.retainTimer != nil {
		o.retainTimer.Stop()
	}
}

func (o *oneOff) stopTimersLocked() {
	if o.attachTimer != nil {
		o.attachTimer.Stop()
	}
	if o.idleTimer != nil {
		o.idleTimer.Stop()
	}
}

// watchIdle kills the one-off after InactivityTimeout with no data either
// way; the timer re-arms itself for the time left rather than being reset on
// every byte, which keeps the stream loops free of timer work. An ended
// one-off gets no timer.
func (o *oneOff) watchIdle(timeout time.Duration) {
	o.touch()
	var check func()
	check = func() {
		idle := time.Since(time.Unix(0, o.lastActive.Load()))
		if idle >= timeout {
			o.log.Info("one-off inactive, killing it", "idle", idle.Round(time.Millisecond))
			o.end(endInactivity)
			return
		}
		o.mu.Lock()
		if o.reason == endNone {
			o.idleTimer = time.AfterFunc(timeout-idle, check)
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	// A command may be over before its attach is answered: finish has
	// then run, and a timer armed now would never be stopped, holding the
	// ended one-off for timeout.
	if o.reason == endNone {
		o.idleTimer = time.AfterFunc(timeout, check)
	}
	o.mu.Unlock()
}

func (r endReason) String() string {
	switch r {
	case endExited:
		return "exited"
	case endClientGone:
		return "client gone"
	case endInactivity:
		return "inactivity"
	case endNeverAttached:
		return "never attached"
	case endShutdown:
		return "shutdown"
	case endStartFailed:
		return "start failed"
	default:
		return "running"
	}
}
