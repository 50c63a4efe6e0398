package bridge

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

type connStateKey struct{}

// connState is what the bridge keeps per SSH connection.
type connState struct {
	id  string
	log *slog.Logger

	mu       sync.Mutex
	sessions int
	idle     *time.Timer // runs while no session is open, when an idle timeout is set
}

func stateOf(ctx ssh.Context) *connState {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	return st
}

// connLogger is the logger narrowed to one connection.
func connLogger(ctx ssh.Context, fallback *slog.Logger) *slog.Logger {
	if st := stateOf(ctx); st != nil {
		return st.log.With("user", ctx.User())
	}
	return fallback
}

func (s *Server) onConn(ctx ssh.Context, conn net.Conn) net.Conn {
	if !s.deps.Auth.AllowConn(conn.RemoteAddr()) {
		s.log.Warn("connection refused: too many failed attempts", "remote", conn.RemoteAddr().String())
		return nil
	}
	st := &connState{id: newConnID()}
	st.log = s.log.With("conn", st.id, "remote", conn.RemoteAddr().String())
	ctx.SetValue(connStateKey{}, st)
	go s.watchConn(ctx, st, conn)
	return conn
}

// authenticated says whether the handshake and authentication are done:
// gliderlabs puts the server connection in the context only then.
func authenticated(ctx ssh.Context) *gossh.ServerConn {
	sc, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	return sc
}

// watchConn enforces the login grace time, then sends keepalives for the
// life of the connection. gliderlabs has neither: a client that never
// finishes the handshake would hold its goroutines forever.
func (s *Server) watchConn(ctx ssh.Context, st *connState, conn net.Conn) {
	grace := time.NewTimer(s.cfg.LoginGraceTime)
	select {
	case <-ctx.Done():
		grace.Stop()
		return
	case <-grace.C:
	}
	sc := authenticated(ctx)
	if sc == nil {
		st.log.Info("connection closed: not authenticated within the login grace time")
		conn.Close()
		return
	}
	s.startIdleTimer(st, sc)
	if s.cfg.KeepaliveInterval < 0 {
		return
	}
	tick := time.NewTicker(s.cfg.KeepaliveInterval)
	defer tick.Stop()
	deadline := s.cfg.KeepaliveInterval * time.Duration(s.cfg.KeepaliveCountMax)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() {
			// Any answer, even a failure, proves the client is alive.
			sc.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		timeout := time.NewTimer(deadline)
		select {
		case <-answered:
			timeout.Stop()
		case <-ctx.Done():
			timeout.Stop()
			return
		case <-timeout.C:
			st.log.Info("connection closed: no answer to keepalives", "after", deadline)
			sc.Close()
			return
		}
	}
}

// startIdleTimer arms the idle timeout if the connection has no session yet.
func (s *Server) startIdleTimer(st *connState, sc *gossh.ServerConn) {
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
			sc.Close()
		}
	})
	if st.sessions > 0 {
		st.idle.Stop()
	}
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
