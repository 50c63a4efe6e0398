package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
)

// Connection mode (DESIGN.md "Connection mode"): one one-off per SSH
// connection, with the agent inside it serving every channel of the
// connection. The bridge decides the mode once per connection, at the
// first channel that needs it:
//
//   - the user name APP+conn asks for it, whatever the channel;
//   - else the key's session-mode option, then Config.ConnectionModeApps,
//     say which mode the app's connections use; a connection whose first
//     session is an SFTP subsystem or a legacy scp command then stays in
//     per-session mode, so that an upload always lands in the staging area.
//
// Per-session mode is the default and behaves as before.

// Session modes, as the authorized_keys option session-mode= names them.
const (
	SessionModeSession    = "session"
	SessionModeConnection = "connection"
)

// connMode is a connection's mode and, in connection mode, its agent.
type connMode struct {
	mu       sync.Mutex
	decided  bool
	conn     bool          // connection mode
	agent    *agentConn    // once started
	starting chan struct{} // closed when a start attempt ends
	lost     *exitFailure  // the agent ended under the connection
}

// chosenBy says what asks for connection mode for this grant and app, and
// whether the choice holds even for a staging-area first session: "" when
// nothing does.
func (s *Server) chosenBy(g *auth.Grant, app string) (by string, firm bool) {
	switch {
	case g == nil || !g.Allowed:
		return "", false
	case g.SessionMode == SessionModeSession:
		// The key's owner forbids it, whatever the user name asks.
		return "", false
	case g.ConnectionModeByName:
		return "user name", true
	case g.SessionMode == SessionModeConnection:
		return "key option", false
	case matchApps(s.cfg.ConnectionModeApps, app):
		return "app", false
	}
	return "", false
}

// matchApps matches app against OpenSSH-style patterns: "*" and "?"
// wildcards, a leading "!" negates, and a negated match wins.
func matchApps(patterns []string, app string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if ok, _ := path.Match(p, app); ok {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// isStagingSession says whether a session's first work is one that
// per-session mode keeps from being lost: the sftp subsystem, or an exec
// command the bridge answers itself (Deps.Interceptors: legacy scp's
// `scp -t`/`scp -f` and the staging-area probes, served from the staging
// area; the built-in refusal of an rsync upload, ExitRsyncUpload). In
// connection mode chosen by key or app, a connection that starts with one
// of them would write into a one-off that ends with the connection.
func (s *Server) isStagingSession(kind, arg string) bool {
	switch kind {
	case "subsystem":
		return arg == "sftp"
	case "exec":
		return s.intercept(arg) != nil
	}
	return false
}

// connectionMode decides the connection's mode on its first work (kind and
// arg as in runCommand; kind "forward" for a forwarding channel or
// request) and returns it: true for connection mode.
func (s *Server) connectionMode(st *connState, g *auth.Grant, app, kind, arg string) bool {
	m := &st.mode
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.decided {
		return m.conn
	}
	by, firm := s.chosenBy(g, app)
	m.decided = true
	m.conn = by != "" && (firm || !s.isStagingSession(kind, arg))
	if by != "" {
		st.log.Info("session mode", "mode", map[bool]string{true: SessionModeConnection, false: SessionModeSession}[m.conn], "chosen_by", by, "first", kind)
	}
	return m.conn
}

// agentFor returns the connection's agent, starting it (or taking back a
// lingering one of the same key and app) on first use. Concurrent callers
// wait for one start.
func (s *Server) agentFor(sess *session) (*agentConn, error) {
	m := &sess.st.mode
	for {
		m.mu.Lock()
		if m.lost != nil {
			m.mu.Unlock()
			return nil, m.lost
		}
		if m.agent != nil {
			ac := m.agent
			m.mu.Unlock()
			return ac, nil
		}
		if wait := m.starting; wait != nil {
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-sess.ctx.Done():
				return nil, context.Cause(sess.ctx)
			}
		}
		m.starting = make(chan struct{})
		m.mu.Unlock()
		break
	}
	ac := s.lingering.take(sess.identity(), sess.app)
	var err error
	if ac != nil {
		sess.log.Info("connection mode: took back a lingering one-off", "container", ac.o.ContainerID())
		s.deliverThroughAgent(sess, ac)
	} else {
		ac, err = s.startAgent(sess)
	}
	m.mu.Lock()
	close(m.starting)
	m.starting = nil
	if err == nil {
		m.agent = ac
		ac.setOwner(authenticated(sess.st.ctx))
		go s.watchAgent(sess.st, ac)
	}
	m.mu.Unlock()
	return ac, err
}

// watchAgent marks the connection's agent lost when it ends while the
// connection still uses it.
func (s *Server) watchAgent(st *connState, ac *agentConn) {
	select {
	case <-ac.done:
	case <-st.ctx.Done():
		return
	}
	f := ac.lostFailure()
	st.mode.mu.Lock()
	if st.mode.agent == ac {
		st.mode.agent, st.mode.lost = nil, f
	}
	st.mode.mu.Unlock()
	st.log.Warn("connection mode: the one-off ended before the connection", "err", ac.err)
}

// releaseAgent runs when the user's connection ended: its agent lingers
// for Config.ConnectionLinger, or ends now.
func (s *Server) releaseAgent(st *connState) {
	st.mode.mu.Lock()
	ac := st.mode.agent
	st.mode.agent = nil
	st.mode.mu.Unlock()
	if ac == nil {
		return
	}
	ac.dropOwner()
	if s.cfg.ConnectionLinger > 0 && ac.alive() && !s.stopping() {
		s.lingering.park(ac, s.cfg.ConnectionLinger)
		return
	}
	ac.close()
}

// lingerPool holds the agents of ended connections for Config.ConnectionLinger,
// by key identity and app; the next connection-mode connection of the same
// key to the same app takes its agent back.
type lingerPool struct {
	mu     sync.Mutex
	agents map[[2]string][]*lingering
}

type lingering struct {
	ac    *agentConn
	timer *time.Timer
	since time.Time
}

func (p *lingerPool) park(ac *agentConn, d time.Duration) {
	k := [2]string{ac.identity, ac.app}
	l := &lingering{ac: ac, since: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.agents == nil {
		p.agents = map[[2]string][]*lingering{}
	}
	l.timer = time.AfterFunc(d, func() {
		p.mu.Lock()
		p.agents[k] = slices.DeleteFunc(p.agents[k], func(x *lingering) bool { return x == l })
		if len(p.agents[k]) == 0 {
			delete(p.agents, k)
		}
		p.mu.Unlock()
		ac.log.Info("connection mode: linger over, the one-off ends")
		ac.close()
	})
	p.agents[k] = append(p.agents[k], l)
	ac.log.Info("connection mode: the one-off lingers", "for", d)
}

// take returns the most recently parked live agent of (identity, app), or
// nil.
func (p *lingerPool) take(identity, app string) *agentConn {
	k := [2]string{identity, app}
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := len(p.agents[k]) - 1; l >= 0; l-- {
		x := p.agents[k][l]
		p.agents[k] = slices.Delete(p.agents[k], l, l+1)
		if len(p.agents[k]) == 0 {
			delete(p.agents, k)
		}
		if x.timer.Stop() && x.ac.alive() {
			return x.ac
		}
		x.ac.close()
	}
	return nil
}

// takeOldest removes and returns the agent of identity, any app, that has
// lingered longest, or nil.
func (p *lingerPool) takeOldest(identity string) *agentConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldest *lingering
	var key [2]string
	for k, ls := range p.agents {
		for _, l := range ls {
			if k[0] == identity && (oldest == nil || l.since.Before(oldest.since)) {
				oldest, key = l, k
			}
		}
	}
	if oldest == nil || !oldest.timer.Stop() {
		return nil
	}
	p.agents[key] = slices.DeleteFunc(p.agents[key], func(x *lingering) bool { return x == oldest })
	if len(p.agents[key]) == 0 {
		delete(p.agents, key)
	}
	return oldest.ac
}

// acquireOneOff counts a one-off for identity within
// Config.MaxOneOffsPerKey. A key at its cap first gets back the slots of
// its lingering one-offs, oldest first: they wait for a reconnection and
// must not lock their owner out.
func (s *Server) acquireOneOff(identity string) (release func(), ok bool) {
	limit := s.cfg.MaxOneOffsPerKey
	for {
		if release, ok := s.oneOffs.acquire(identity, limit); ok {
			return release, true
		}
		ac := s.lingering.takeOldest(identity)
		if ac == nil {
			return nil, false
		}
		ac.log.Info("connection mode: a lingering one-off ends, to free a one-off slot of its key")
		ac.close()
		t := time.NewTimer(stopBound)
		select {
		case <-ac.done:
			t.Stop()
		case <-t.C:
			return nil, false
		}
	}
}

// closeAll ends every lingering agent (the bridge stops).
func (p *lingerPool) closeAll() {
	p.mu.Lock()
	all := p.agents
	p.agents = nil
	p.mu.Unlock()
	for _, ls := range all {
		for _, l := range ls {
			l.timer.Stop()
			l.ac.close()
		}
	}
}

// runInAgent serves a session's work inside the connection's one-off: it
// opens a session channel to the agent, replays the pty and environment
// the client asked for, sends the work request and relays data, stderr,
// window changes and signals until the agent ends the channel with its
// exit-status or exit-signal (RFC 4254 section 6).
func (sess *session) runInAgent(kind, command string, env map[string]string) (int, error) {
	ac, err := sess.srv.agentFor(sess)
	if err != nil {
		return 0, err
	}
	log := sess.log.With("container", ac.o.ContainerID())
	ch, reqs, err := ac.conn.OpenChannel("session", nil)
	if err != nil {
		var refused *gossh.OpenChannelError
		if errors.As(err, &refused) {
			return 0, &exitFailure{ExitAgent, "The one-off container refused a new session: " + oneLine(refused.Message), err}
		}
		return 0, ac.lostFailure()
	}
	defer ch.Close()
	stop := context.AfterFunc(sess.ctx, func() { ch.Close() })
	defer stop()

	if sess.pty != nil {
		p := *sess.pty
		if cols, rows, ok := sess.win.get(); ok {
			p.Columns, p.Rows = uint32(cols), uint32(rows)
			sess.win.sent = [2]int{cols, rows}
		}
		if ok, err := ch.SendRequest("pty-req", true, gossh.Marshal(&p)); err != nil || !ok {
			log.Warn("connection mode: the agent refused the pty", "err", err)
		}
	}
	// As sshd sets them (the client's address and port, then the
	// server's): tools tell an SSH session by them.
	if sess.conn != nil {
		if c, ok := sess.conn.RemoteAddr().(*net.TCPAddr); ok {
			if l, ok := sess.conn.LocalAddr().(*net.TCPAddr); ok {
				env["SSH_CONNECTION"] = fmt.Sprintf("%s %d %s %d", c.IP, c.Port, l.IP, l.Port)
				env["SSH_CLIENT"] = fmt.Sprintf("%s %d %d", c.IP, c.Port, l.Port)
			}
		}
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if _, err := ch.SendRequest("env", false, gossh.Marshal(&envMsg{k, env[k]})); err != nil {
			return 0, sess.agentGone(ac, err)
		}
	}
	if kind == "shell" {
		// As in per-session mode: a shell runs Config.DefaultCommand.
		kind, command = "exec", sess.srv.cfg.DefaultCommand
	}
	payload := gossh.Marshal(&stringMsg{command})
	ok, err := ch.SendRequest(kind, true, payload)
	if err != nil {
		return 0, sess.agentGone(ac, err)
	}
	if !ok {
		return 0, &exitFailure{ExitAgent, fmt.Sprintf("The one-off container refused the %s request.", kind), errors.New("agent refused " + kind)}
	}
	log.Info("connection mode: session relayed", "kind", kind)
	rec := sess.startRecording(command)
	defer rec.close()

	ctx, cancel := context.WithCancel(sess.ctx)
	defer cancel()
	if sess.pty != nil {
		go sess.win.follow(ctx, rec.resize(func(_ context.Context, cols, rows int) error {
			_, err := ch.SendRequest("window-change", false, gossh.Marshal(&windowChangeMsg{Columns: uint32(cols), Rows: uint32(rows)}))
			return err
		}), log)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case name := <-sess.signals:
				ch.SendRequest("signal", false, gossh.Marshal(&stringMsg{name}))
			}
		}
	}()
	go func() {
		if _, err := copyBuffered(ch, rec.input(sess.ch)); err == nil {
			ch.CloseWrite()
		}
	}()
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		copyBuffered(sess.ch.Stderr(), ch.Stderr())
	}()
	status := make(chan agentExit, 1)
	go func() { status <- relayExit(reqs, sess.ch) }()
	copyBuffered(rec.output(sess.ch), ch)
	<-stderrDone
	exit := <-status
	if sess.ctx.Err() != nil {
		return 0, context.Cause(sess.ctx)
	}
	switch {
	case exit.signal != nil:
		sess.exitSignal = exit.signal
		return 0, nil
	case exit.status != nil:
		return int(*exit.status), nil
	case ac.ended(2 * time.Second):
		return 0, ac.lostFailure()
	}
	return 0, &exitFailure{ExitAgent, "The one-off container ended the session without an exit status.", errors.New("no exit status from the agent")}
}

// agentGone turns a failed request to the agent into the session's end:
// a request fails only when the agent connection is closed.
func (sess *session) agentGone(ac *agentConn, err error) error {
	sess.log.Debug("request to the agent failed", "err", err)
	return ac.lostFailure()
}

// agentExit is how the agent ended a session channel: the payload of its
// exit-signal, or its exit-status.
type agentExit struct {
	status *uint32
	signal []byte
}

// relayExit reads the agent channel's requests until it closes: exit-status
// and exit-signal are kept for the session's end (sent after the output,
// in the order of RFC 4254 section 6.10), others (eow@openssh.com) go to the
// client as they come.
func relayExit(reqs <-chan *gossh.Request, client gossh.Channel) agentExit {
	var exit agentExit
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			var msg exitStatusMsg
			if gossh.Unmarshal(req.Payload, &msg) == nil {
				exit.status = &msg.Status
			}
		case "exit-signal":
			exit.signal = req.Payload
		default:
			ok, _ := client.SendRequest(req.Type, req.WantReply, req.Payload)
			if req.WantReply {
				req.Reply(ok, nil)
			}
			continue
		}
		if req.WantReply {
			req.Reply(true, nil)
		}
	}
	return exit
}

// copyBuffered copies with a buffer as large as the SSH packets of the
// connection, so that each write is a full packet.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(dst, src, make([]byte, 32<<10))
}

// forwardingSession is the bare session a forwarding channel or request
// starts the connection's agent with: no channel, so no progress lines.
func (s *Server) forwardingSession(ctx ssh.Context) *session {
	st := stateOf(ctx)
	grant, _ := auth.GrantFrom(ctx)
	app := appOf(ctx, grant)
	return &session{srv: s, st: st, ctx: ctx, grant: grant, app: app,
		log: st.log.With("user", identityOf(grant), "app", app)}
}

// logForward logs a forward opened or refused, with its target.
func logForward(st *connState, log *slog.Logger, refused bool, kind, target string, attrs ...any) {
	attrs = append([]any{"type", kind, "target", cut(target, logNameBytes)}, attrs...)
	if refused {
		logRefusal(st, log, slog.LevelInfo, "refused forwarding", attrs...)
		return
	}
	log.Info("forward opened", attrs...)
}
