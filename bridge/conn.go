package bridge

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
	"sshbridge/proxyprotocol"
)

type connStateKey struct{}

// connState is what the bridge keeps per SSH connection.
type connState struct {
	id      string
	log     *slog.Logger
	ctx     ssh.Context
	conn    net.Conn
	startup *auth.Startup // its place among unauthenticated connections; its source's penalty

	mu       sync.Mutex
	sessions int
	idle     *time.Timer // runs while no session is open, when an idle timeout is set
	// grace closes the connection at the end of the login grace time
	// unless it is authenticated by then; keepalive sends the next
	// keepalive (keepaliveTick), when a keepalive interval is set.
	grace, keepalive *time.Timer

	refusals refusalLog

	mode connMode // per-session or connection mode, and the agent (connmode.go)

	recorded atomic.Int32 // sessions recorded so far: the next recording's number (record.go)

	// Authentication, for MaxAuthTries and the source's penalty.
	preAuth       gossh.ServerPreAuthConn // to send a banner before authentication ends
	authed        bool
	noneSeen      bool // the free first "none" request was made
	authFailures  int
	graceExceeded bool
	lastKey       lastKey   // the latest key offered, for the authentication's event
	opened        time.Time // when it was accepted
}

func stateOf(ctx ssh.Context) *connState {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	return st
}

// connLogger is the logger narrowed to one connection, with the fields of
// a session's: the user as the key's identity, and the app.
func connLogger(ctx ssh.Context, fallback *slog.Logger) *slog.Logger {
	if st := stateOf(ctx); st != nil {
		grant, _ := auth.GrantFrom(ctx)
		return st.log.With("user", identityOf(grant), "app", appOf(ctx, grant))
	}
	return fallback
}

// onConn admits a new connection or closes it at once (MaxStartups,
// PerSourceMaxStartups; the admission logs how many it drops). Behind a
// load balancer (a proxyprotocol.Conn) its PROXY protocol header is read
// first, so that the client's address is the one admitted, penalised,
// logged and seen by from=; a connection whose header is refused is closed
// (the listener logs why) and counts nowhere. The balancer's own
// connections (a v2 LOCAL health check) never earn it a penalty.
func (s *Server) onConn(ctx *connContext, conn net.Conn) *coalescingConn {
	admit := s.admission.Admit
	var via net.Addr
	local := false
	if pc, ok := conn.(*proxyprotocol.Conn); ok {
		if pc.ReadHeader() != nil {
			return nil
		}
		if local = pc.Local(); local {
			admit = s.admission.AdmitExempt
		}
		via = pc.Via()
	}
	startup, err := admit(conn.RemoteAddr())
	if err != nil {
		s.observer().Connection(ConnectionEvent{Phase: "close", Remote: conn.RemoteAddr().String(), Outcome: "refused"})
		return nil
	}
	cc := newCoalescingConn(conn) // after the header: it writes to the socket itself
	cc.end = ctx.end
	conn = cc
	st := &connState{id: newConnID(), ctx: ctx, conn: conn, startup: startup}
	st.log = s.log.With("conn", st.id, "remote", conn.RemoteAddr().String())
	if via != nil {
		st.log = st.log.With("via", via.String())
	}
	if local {
		st.log.Debug("the load balancer's own connection (PROXY protocol LOCAL): never penalised")
	}
	if startup.Penalised() {
		st.log.Debug("connection from a penalised source: refused keys are answered slowly, shorter login grace",
			"until", startup.PenalisedUntil().Format(time.RFC3339), "grace", startup.Grace())
	}
	ctx.SetValue(connStateKey{}, st)
	st.opened = time.Now()
	s.observer().Connection(ConnectionEvent{Phase: "open", ConnID: st.id, Remote: conn.RemoteAddr().String()})
	s.startIdleTimer(st, conn)
	s.addConn(st)
	s.watchConn(ctx, st, conn)
	return cc
}

// authenticated says whether the handshake and authentication are done:
// the server connection is in the context only then (handleConn).
func authenticated(ctx ssh.Context) *gossh.ServerConn {
	sc, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	return sc
}

// watchConn enforces the login grace time and sends keepalives for the
// life of the connection, and tidies up after it once its context ends
// (when the connection closes: connContext.end). x/crypto has neither:
// a client that never finishes the handshake would hold its goroutines
// forever, and a client that vanished without a FIN would hold its
// one-offs. It holds no goroutine while the connection is idle, only two
// timers: an idle connection costs each of its goroutines' stacks (see
// BENCHMARKS.md, "Idle connections").
func (s *Server) watchConn(ctx *connContext, st *connState, conn net.Conn) {
	// First, so that whatever ends the context finds it.
	ctx.setOnEnd(func() {
		st.mu.Lock()
		st.grace.Stop()
		if st.keepalive != nil {
			st.keepalive.Stop()
		}
		st.mu.Unlock()
		st.startup.End(st.event())
		st.refusals.flush()
		st.stopIdle()
		s.releaseAgent(st)
		s.observer().Connection(ConnectionEvent{Phase: "close", ConnID: st.id, Remote: conn.RemoteAddr().String(),
			Outcome: st.outcome(), Duration: time.Since(st.opened)})
		s.removeConn(st)
	})
	graceTime := st.startup.Grace()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.grace = time.AfterFunc(graceTime, func() {
		if st.isAuthenticated() {
			return
		}
		st.mu.Lock()
		st.graceExceeded = true
		st.mu.Unlock()
		st.log.Info("connection closed: not authenticated within the login grace time", "grace", graceTime)
		conn.Close()
	})
	if s.cfg.ClientAliveInterval > 0 {
		st.keepalive = time.AfterFunc(s.cfg.ClientAliveInterval, func() { s.keepaliveTick(ctx, st) })
	}
}

// keepaliveTick runs every ClientAliveInterval (OpenSSH's): once the
// connection is authenticated it sends a keepalive and closes the
// connection when no answer comes within ClientAliveInterval times
// ClientAliveCountMax; then it arms itself again.
func (s *Server) keepaliveTick(ctx ssh.Context, st *connState) {
	if sc := authenticated(ctx); sc != nil {
		deadline := s.cfg.ClientAliveInterval * time.Duration(s.cfg.ClientAliveCountMax)
		if !s.keepalive(ctx, sc, deadline) {
			st.log.Info("connection closed: no answer to keepalives", "after", deadline)
			sc.Close()
			return
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Under st.mu: once the context has ended, the tidy-up stops the timer
	// after this, or this sees the end.
	if ctx.Err() == nil {
		st.keepalive.Reset(s.cfg.ClientAliveInterval)
	}
}

// setPreAuth keeps the connection's pre-authentication handle, through
// which a banner reaches the client.
func (st *connState) setPreAuth(c gossh.ServerPreAuthConn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.preAuth = c
}

func (st *connState) preAuthConn() gossh.ServerPreAuthConn {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.preAuth
}

// authenticated records that authentication succeeded: the connection no
// longer counts among the unauthenticated ones.
func (st *connState) authenticated() {
	st.mu.Lock()
	st.authed = true
	st.mu.Unlock()
	st.startup.Authenticated()
}

func (st *connState) isAuthenticated() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.authed
}

// countFailure counts a failed authentication request and returns the
// failures so far; as in OpenSSH, a first "none" request, which clients
// send to learn the methods, is not a failure.
func (st *connState) countFailure(method string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	if method == "none" && !st.noneSeen && st.authFailures == 0 {
		st.noneSeen = true
		return 0
	}
	st.authFailures++
	return st.authFailures
}

// event says how the connection ended, for its source's penalty.
func (st *connState) event() auth.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.authed:
		if g, ok := auth.GrantFrom(st.ctx); ok && !g.Allowed {
			return auth.EventAppDenied
		}
		return auth.EventNone
	case st.graceExceeded:
		return auth.EventGraceExceeded
	case st.authFailures > 0:
		return auth.EventAuthFail
	}
	return auth.EventNoAuth
}

// keepalive sends one keepalive request and says whether the client
// answered within the deadline. Any answer, even a failure, proves the
// client is alive.
func (s *Server) keepalive(ctx ssh.Context, sc *gossh.ServerConn, deadline time.Duration) bool {
	answered := make(chan struct{})
	go func() {
		sc.SendRequest("keepalive@openssh.com", true, nil)
		close(answered)
	}()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	select {
	case <-answered:
		return true
	case <-ctx.Done():
		return true
	case <-timeout.C:
		return false
	}
}

// startIdleTimer arms the idle timeout, which runs while the connection
// has no session open.
func (s *Server) startIdleTimer(st *connState, conn net.Conn) {
	if s.cfg.IdleTimeout <= 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.idle = time.AfterFunc(s.cfg.IdleTimeout, func() {
		st.mu.Lock()
		open := st.sessions
		st.mu.Unlock()
		if open == 0 {
			st.log.Info("connection closed: idle timeout", "after", s.cfg.IdleTimeout)
			conn.Close()
		}
	})
}

// openSession counts a new session channel; false when the connection
// already has the maximum open.
func (st *connState) openSession(max int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sessions >= max {
		return false
	}
	st.sessions++
	if st.idle != nil {
		st.idle.Stop()
	}
	return true
}

func (st *connState) closeSession(idleTimeout time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sessions--
	if st.sessions == 0 && st.idle != nil {
		st.idle.Reset(idleTimeout)
	}
}

// closeIfIdle closes the connection when it is authenticated and has no
// session open. One still authenticating is left to finish, so that its
// session is refused with a reason rather than its connection cut.
func (st *connState) closeIfIdle() {
	st.mu.Lock()
	idle := st.sessions == 0
	st.mu.Unlock()
	if idle && authenticated(st.ctx) != nil {
		st.log.Info("connection closed: the bridge is stopping and it has no session open")
		st.conn.Close()
	}
}

func (st *connState) stopIdle() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.idle != nil {
		st.idle.Stop()
	}
}
