package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
)

// Payloads of the session requests of RFC 4254 section 6.
type (
	ptyRequestMsg struct {
		Term                   string
		Columns, Rows          uint32
		WidthPixels, HeightPix uint32
		Modes                  string
	}
	windowChangeMsg struct {
		Columns, Rows          uint32
		WidthPixels, HeightPix uint32
	}
	envMsg struct {
		Name, Value string
	}
	stringMsg struct {
		Value string
	}
	exitStatusMsg struct {
		Status uint32
	}
	x11RequestMsg struct {
		SingleConnection bool
		AuthProtocol     string
		AuthCookie       string
		Screen           uint32
	}
)

// errClientGone is the cause of a session's cancellation when the client
// closed the channel or the connection.
var errClientGone = errors.New("client closed the session")

// session is one session channel: requests gather the pty, environment and
// window size until shell, exec or subsystem starts the work.
type session struct {
	srv   *Server
	ch    gossh.Channel
	conn  *gossh.ServerConn
	st    *connState
	log   *slog.Logger
	app   string
	grant *auth.Grant

	ctx    context.Context
	cancel context.CancelCauseFunc

	// Set by the request loop before the work starts, read after; pty is
	// also read by Shutdown, under mu.
	pty     *ptyRequestMsg
	shell   bool // the client asked for a shell: progress lines (progress.go)
	env     map[string]string
	refused []string // forwarding requests refused, told to pty users
	run     func()   // the work, set by start and launched after its reply

	// intercepted: an exec command answered by the bridge itself;
	// connMode: served in the connection's one-off. For the observer.
	intercepted, connMode bool
	delivered             []UploadEvent // files accepted by the platform, reported once committed
	startSeen, endSeen    bool          // the SessionStart and SessionEnd events were sent
	startKind             string        // with this kind
	began                 time.Time     // when the work began

	// exitSignal, when set, is the exit-signal payload the session ends
	// with instead of an exit-status (connection mode, from the agent).
	exitSignal []byte

	win     *window
	signals chan string
	done    chan struct{}

	mu      sync.Mutex
	started bool // the work runs (set by the request loop)
	stopped bool // the bridge's stop ended the session: no work may start

	// announceMu keeps an announcement from outside the session's
	// goroutines (announce) apart from the channel's end (finish): x/crypto
	// does not guard a write against a concurrent CloseWrite.
	announceMu sync.Mutex
	ended      bool // finish has begun: nothing more is announced
}

func (s *Server) handleSession(_ *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	st := stateOf(ctx)
	if st == nil || !st.openSession(s.cfg.MaxSessions) {
		newChan.Reject(gossh.ResourceShortage, "too many sessions on this connection")
		return
	}
	defer st.closeSession(s.cfg.IdleTimeout)
	if !s.enterSession() {
		logRefusal(st, connLogger(ctx, s.log), slog.LevelInfo, "refused session: the bridge is stopping")
		newChan.Reject(gossh.ResourceShortage, "the bridge is stopping; try again later")
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		s.stop.running.Done()
		return
	}
	ch = &countingChannel{Channel: ch}
	grant, _ := auth.GrantFrom(ctx)
	app := appOf(ctx, grant)
	sess := &session{
		srv:     s,
		ch:      ch,
		conn:    conn,
		st:      st,
		log:     st.log.With("user", identityOf(grant), "app", app),
		app:     app,
		grant:   grant,
		env:     map[string]string{},
		win:     newWindow(),
		signals: make(chan string, 16),
		done:    make(chan struct{}),
	}
	sess.ctx, sess.cancel = context.WithCancelCause(ctx)
	defer sess.cancel(errClientGone)
	s.addSession(sess)
	defer s.removeSession(sess)
	sess.serveRequests(reqs)
	// The client closed the channel: stop the work (which ends the one-off)
	// and wait for it, so that nothing of this session outlives it.
	sess.cancel(errClientGone)
	if sess.started {
		<-sess.done
	}
	ch.Close()
}

func identityOf(g *auth.Grant) string {
	if g == nil {
		return ""
	}
	return g.Identity
}

func (sess *session) serveRequests(reqs <-chan *gossh.Request) {
	for req := range reqs {
		ok := sess.handleRequest(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		// The work starts only once the client has its "yes" to the shell,
		// exec or subsystem request: a session that ends at once (a
		// refusal, a blank command) must not send its exit-status, EOF and
		// close before that reply (RFC 4254 section 6.5, then 6.10).
		if run := sess.run; run != nil {
			sess.run = nil
			go run()
		}
	}
}

// sessionRequests are the session requests the bridge serves, by type
// (RFC 4254 section 6 and OpenSSH's PROTOCOL); each handler returns the
// reply. Any other type is answered false (RFC 4254 section 5.4).
var sessionRequests = map[string]func(*session, *gossh.Request) bool{
	"pty-req":                    (*session).ptyReq,
	"window-change":              (*session).windowChange,
	"env":                        (*session).setEnv,
	"signal":                     (*session).signal,
	"shell":                      (*session).start,
	"exec":                       (*session).start,
	"subsystem":                  (*session).start,
	"auth-agent-req@openssh.com": (*session).agentForwarding,
	"x11-req":                    (*session).x11Forwarding,
}

func (sess *session) handleRequest(req *gossh.Request) bool {
	if h := sessionRequests[req.Type]; h != nil {
		return h(sess, req)
	}
	return false
}

// ptyReq takes the terminal (RFC 4254 section 6.2): once, before the work
// starts, unless the key's no-pty option refuses it.
func (sess *session) ptyReq(req *gossh.Request) bool {
	var msg ptyRequestMsg
	if sess.started || sess.pty != nil || gossh.Unmarshal(req.Payload, &msg) != nil {
		return false
	}
	if sess.grant != nil && sess.grant.NoPTY {
		sess.logRefusal(slog.LevelInfo, "refused pty: not allowed for this key")
		return false
	}
	sess.mu.Lock()
	sess.pty = &msg
	sess.mu.Unlock()
	sess.win.set(int(msg.Columns), int(msg.Rows))
	return true
}

// windowChange follows the terminal's size (RFC 4254 section 6.7), before
// and after the work starts.
func (sess *session) windowChange(req *gossh.Request) bool {
	var msg windowChangeMsg
	if gossh.Unmarshal(req.Payload, &msg) != nil {
		return false
	}
	sess.win.set(int(msg.Columns), int(msg.Rows))
	return true
}

// setEnv keeps an environment variable for the one-off (RFC 4254 section
// 6.4) when Config.EnvAllow allows its name and envRefusal does not refuse
// it.
func (sess *session) setEnv(req *gossh.Request) bool {
	var msg envMsg
	if sess.started || gossh.Unmarshal(req.Payload, &msg) != nil {
		return false
	}
	if !sess.srv.cfg.envAllowed(msg.Name) {
		sess.logRefusal(slog.LevelDebug, "ignored environment variable", "name", cut(msg.Name, logNameBytes))
		return false
	}
	if why := envRefusal(sess.env, msg.Name, msg.Value); why != "" {
		sess.logRefusal(slog.LevelInfo, "refused environment variable", "name", cut(msg.Name, logNameBytes),
			"name_bytes", len(msg.Name), "value_bytes", len(msg.Value), "reason", why)
		return false
	}
	sess.env[msg.Name] = msg.Value
	return true
}

// signal queues a signal for the one-off (RFC 4254 section 6.9); false
// when the queue is full.
func (sess *session) signal(req *gossh.Request) bool {
	var msg stringMsg
	if gossh.Unmarshal(req.Payload, &msg) != nil {
		return false
	}
	select {
	case sess.signals <- msg.Value:
		return true
	default:
		return false
	}
}

// start begins the work of a shell, exec or subsystem request (RFC 4254
// section 6.5): once per session, not after the bridge's stop, and for a
// subsystem only one of Deps.Subsystems.
func (sess *session) start(req *gossh.Request) bool {
	if sess.started {
		return false
	}
	var msg stringMsg
	if req.Type != "shell" && gossh.Unmarshal(req.Payload, &msg) != nil {
		return false
	}
	if req.Type == "subsystem" && !sess.srv.subsystemSupported(msg.Value) {
		sess.logRefusal(slog.LevelInfo, "refused subsystem", "subsystem", cut(msg.Value, logNameBytes))
		return false
	}
	sess.mu.Lock()
	stopped := sess.stopped
	sess.started = !stopped
	sess.mu.Unlock()
	if stopped {
		return false
	}
	kind, arg := req.Type, msg.Value
	sess.run = func() {
		defer close(sess.done)
		defer sess.recoverPanic()
		sess.runSession(kind, arg)
	}
	return true
}

// agentForwarding refuses agent forwarding (OpenSSH's
// auth-agent-req@openssh.com), with a line for terminal sessions.
func (sess *session) agentForwarding(req *gossh.Request) bool {
	sess.logRefusal(slog.LevelInfo, "refused forwarding", "type", req.Type)
	sess.refuse("Agent forwarding is not supported by this bridge.")
	return false
}

// x11Forwarding refuses X11 forwarding (RFC 4254 section 6.3.1), with a
// line for terminal sessions.
func (sess *session) x11Forwarding(req *gossh.Request) bool {
	// The screen number only: the cookie is a secret.
	attrs := []any{"type", req.Type}
	var msg x11RequestMsg
	if gossh.Unmarshal(req.Payload, &msg) == nil {
		attrs = append(attrs, "screen", msg.Screen)
	}
	sess.logRefusal(slog.LevelInfo, "refused forwarding", attrs...)
	sess.refuse("X11 forwarding is not supported by this bridge.")
	return false
}

// refuse keeps the line a terminal session prints about a refused request,
// once however often the request came.
func (sess *session) refuse(message string) {
	if !sess.started && !slices.Contains(sess.refused, message) {
		sess.refused = append(sess.refused, message)
	}
}

// logRefusal logs a refused request of the session within its
// connection's limits on refusal lines (refusals.go).
func (sess *session) logRefusal(level slog.Level, msg string, attrs ...any) {
	logRefusal(sess.st, sess.log, level, msg, attrs...)
}

// finish ends the channel in the order OpenSSH's clients expect: the
// output is already drained, then exit-status, then EOF, then close.
func (sess *session) finish(code int) {
	if sess.exitSignal != nil {
		sess.ch.SendRequest("exit-signal", false, sess.exitSignal)
	} else {
		sess.ch.SendRequest("exit-status", false, gossh.Marshal(&exitStatusMsg{Status: uint32(code)}))
	}
	sess.announceMu.Lock()
	sess.ended = true
	sess.announceMu.Unlock()
	sess.ch.CloseWrite()
	sess.ch.Close()
}

// elapsed formats a duration as the progress line shows it: seconds with
// one decimal and a unit apart, "0.4 s", "12.0 s" (the README's form).
func elapsed(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// recoverPanic keeps a bug in one session from taking down every other
// session of the bridge: the user gets the internal-error line and code.
func (sess *session) recoverPanic() {
	if r := recover(); r != nil {
		sess.log.Error("session panicked", "panic", r, "stack", string(debug.Stack()))
		sess.printLine("The bridge failed to run the session; the cause is in its log.")
		if sess.startSeen && !sess.endSeen {
			sess.observeEnd(sess.startKind, sess.began, ExitInternal, ExitCodeName(ExitInternal))
		}
		sess.finish(ExitInternal)
	}
}
