package bridge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"
)

// errBridgeStopped is the cause of a session's end when the bridge's stop
// ended it; stopFailure is what its user is told.
var (
	errBridgeStopped = errors.New("the bridge stopped")
	stopFailure      = &exitFailure{ExitBridgeStopped, "The bridge stopped: this session was ended.", errBridgeStopped}
)

// stopBound bounds each wait of a stop that is past its grace: for the
// sessions to send their last line (a client that reads nothing holds its
// channel's window shut), and for a one-off's end to be confirmed.
const stopBound = 5 * time.Second

// shutdownState is the server's record of open sessions and connections,
// for Shutdown.
type shutdownState struct {
	mu       sync.Mutex
	stopping bool      // no new session channels
	handover bool      // the stop is a handover to a new process (Handover)
	ended    bool      // the grace is over: sessions still open are ended
	deadline time.Time // the end of the grace; zero when none was given
	ln       net.Listener
	sessions map[*session]struct{}
	conns    map[*connState]struct{}
	running  sync.WaitGroup // session channel handlers, and awaitOneOffEnd
}

// Shutdown stops the bridge, giving open sessions until ctx's deadline.
//
// At once: the listener closes (new connections are refused by the
// system), new session channels are refused ("the bridge is stopping"),
// each open session gets a line on its stderr saying in how many seconds it
// will be ended, and connections with no session open are closed. A session
// that ends during the grace ends as usual.
//
// When ctx is done, each session still open gets a last line and exit code
// ExitBridgeStopped, in the order of RFC 4254 section 6.10 (exit-status,
// EOF, close), its one-off's end is awaited (up to 5 s), and every
// connection is closed.
//
// Shutdown returns when the sessions are over: nil when they all ended
// within the grace, else ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, false)
}

// Handover is Shutdown for a bridge whose listening socket a new process
// serves already: the same steps, with ctx's deadline as the bound of the
// drain (--drain-timeout), except that the connections still open may go
// on opening sessions (one that was authenticating when the handover
// began is served, not refused), and the line each session gets says that
// it goes on and how long it may, not that the bridge is stopping. At the
// deadline the sessions still open end as at the end of Shutdown's grace
// (ExitBridgeStopped).
func (s *Server) Handover(ctx context.Context) error {
	return s.shutdown(ctx, true)
}

// EndDrain is for a bridge that is stopping while it drains after a
// Handover (SIGTERM then): each open session is told, as by Shutdown, that
// it will be ended at deadline; the caller ends Handover's context then.
func (s *Server) EndDrain(deadline time.Time) {
	st := &s.stop
	st.mu.Lock()
	if !st.handover || st.ended {
		st.mu.Unlock()
		return
	}
	st.handover, st.deadline = false, deadline
	sessions := st.openSessions()
	st.mu.Unlock()
	for _, sess := range sessions {
		go sess.noticeStop(deadline)
	}
}

func (s *Server) shutdown(ctx context.Context, handover bool) error {
	st := &s.stop
	deadline, _ := ctx.Deadline()
	st.mu.Lock()
	st.stopping, st.deadline, st.handover = true, deadline, handover
	sessions, conns, ln := st.openSessions(), st.openConns(), st.ln
	st.mu.Unlock()
	s.lingering.closeAll()
	// Closed first: from the moment a user is told, no new connection is
	// taken.
	if ln != nil {
		ln.Close()
	}
	for _, sess := range sessions {
		if handover {
			go sess.noticeHandover(deadline)
		} else {
			go sess.noticeStop(deadline)
		}
	}
	for _, c := range conns {
		c.closeIfIdle()
	}
	err := s.conns.wait(ctx)
	if err == nil {
		s.awaitSessions()
		return nil
	}
	st.mu.Lock()
	st.ended = true
	sessions = st.openSessions()
	st.mu.Unlock()
	for _, sess := range sessions {
		go sess.stop()
	}
	s.awaitSessions()
	s.conns.closeAll()
	s.awaitSessions()
	return err
}

// setListener records the listener for Shutdown; false when the bridge is
// already stopping.
func (s *Server) setListener(ln net.Listener) bool {
	st := &s.stop
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ln = ln
	return !st.stopping
}

func (s *Server) stopping() bool {
	st := &s.stop
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stopping
}

// awaitSessions waits, up to stopBound, for the session handlers to return
// and the one-offs they ended to be gone.
func (s *Server) awaitSessions() {
	done := make(chan struct{})
	go func() { s.stop.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopBound):
		s.log.Warn("shutdown: sessions still open", "after", stopBound)
	}
}

func (st *shutdownState) openSessions() []*session {
	out := make([]*session, 0, len(st.sessions))
	for sess := range st.sessions {
		out = append(out, sess)
	}
	return out
}

func (st *shutdownState) openConns() []*connState {
	out := make([]*connState, 0, len(st.conns))
	for c := range st.conns {
		out = append(out, c)
	}
	return out
}

// enterSession counts a session channel handler; false once the bridge is
// stopping, unless it drains after a handover.
func (s *Server) enterSession() bool {
	st := &s.stop
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended || st.stopping && !st.handover {
		return false
	}
	st.running.Add(1)
	return true
}

// addSession records an accepted session. One accepted while Shutdown
// began gets what the others got.
func (s *Server) addSession(sess *session) {
	st := &s.stop
	st.mu.Lock()
	if st.sessions == nil {
		st.sessions = map[*session]struct{}{}
	}
	st.sessions[sess] = struct{}{}
	stopping, ended, deadline, handover := st.stopping, st.ended, st.deadline, st.handover
	st.mu.Unlock()
	switch {
	case ended:
		go sess.stop()
	case stopping && handover:
		go sess.noticeHandover(deadline)
	case stopping:
		go sess.noticeStop(deadline)
	}
}

func (s *Server) removeSession(sess *session) {
	st := &s.stop
	st.mu.Lock()
	delete(st.sessions, sess)
	st.mu.Unlock()
	st.running.Done()
}

func (s *Server) addConn(c *connState) {
	st := &s.stop
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.conns == nil {
		st.conns = map[*connState]struct{}{}
	}
	st.conns[c] = struct{}{}
}

func (s *Server) removeConn(c *connState) {
	st := &s.stop
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.conns, c)
}

// noticeStop tells the session's user that the bridge is stopping and
// when the session will be ended.
func (sess *session) noticeStop(deadline time.Time) {
	msg := "The bridge is stopping: this session will be ended."
	if !deadline.IsZero() {
		secs := math.Ceil(time.Until(deadline).Seconds())
		msg = fmt.Sprintf("The bridge is stopping: this session ends in %.0f s.", max(secs, 0))
	}
	sess.announce(msg)
}

// noticeHandover tells the session's user that the bridge's new process
// serves new connections and how long this session may go on.
func (sess *session) noticeHandover(deadline time.Time) {
	msg := "The bridge is restarting: this session goes on; new connections are served by the new process."
	if !deadline.IsZero() {
		left := time.Until(deadline).Round(time.Second)
		msg = fmt.Sprintf("The bridge is restarting: this session goes on for at most %s; new connections are served by the new process.", max(left, 0))
	}
	sess.announce(msg)
}

// stop ends the session at the end of the grace: through its work when it
// runs one, else right here.
func (sess *session) stop() {
	sess.mu.Lock()
	sess.stopped = true
	started := sess.started
	sess.mu.Unlock()
	if started {
		sess.cancel(stopFailure)
		return
	}
	sess.log.Info("session ended: the bridge stopped", "exit_code", stopFailure.code)
	sess.announce(stopFailure.message)
	sess.finish(stopFailure.code)
}

// stoppedByBridge says whether the bridge's stop ended the session.
func (sess *session) stoppedByBridge() bool {
	return errors.Is(context.Cause(sess.ctx), errBridgeStopped)
}

// awaitOneOffEnd has Shutdown wait, up to stopBound, for the platform to
// confirm that the session's one-off ended (its attach is closed), so that
// the bridge reports itself stopped only once its one-offs are gone. The
// wait runs beside the session, whose last line goes out at once; the
// session's own count keeps the wait group above zero while it is added.
// A fresh context: the session's own is over.
func (sess *session) awaitOneOffEnd(o OneOff) {
	running := &sess.srv.stop.running
	running.Add(1)
	go func() {
		defer running.Done()
		ctx, cancel := context.WithTimeout(context.Background(), stopBound)
		defer cancel()
		if _, err := o.Wait(ctx); err != nil {
			sess.log.Warn("the one-off's end was not confirmed", "err", err)
		}
	}()
}
