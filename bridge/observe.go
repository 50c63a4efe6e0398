package bridge

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/appname"
	"sshbridge/auth"
	"sshbridge/oneoff"
)

// Observer learns what the bridge does, event by event, for metrics and
// the audit stream. Deps.Observer is one; nil observes nothing. Its methods
// are called from the connection's and session's goroutines, several at
// once, and must not block: they run on the path of the bytes.
//
// Events carry what an audit line needs (addresses, users, keys, apps);
// an observer that counts must keep to the fields documented as coming
// from a small fixed set.
type Observer interface {
	// Connection: a TCP connection was opened (Phase "open"), ended
	// (Phase "close", with its Outcome) or refused before its key exchange
	// by the admission caps (Phase "close", Outcome "refused", no "open"
	// before it).
	Connection(ConnectionEvent)
	// Auth: one authentication request's result, as OpenSSH counts them
	// (the free first "none" request is not reported).
	Auth(AuthEvent)
	// SessionStart: a shell, exec or subsystem request started its work.
	SessionStart(SessionEvent)
	// SessionEnd: that work ended, with its exit code and bytes.
	SessionEnd(SessionEvent)
	// StartPhase: a one-off reached a phase of its start (PhaseStarted,
	// PhaseAttached, PhaseFirstByte), Elapsed after its run request was
	// sent.
	StartPhase(phase string, elapsed time.Duration)
	// Upload: a staged file was staged, delivered, refused or expired.
	Upload(UploadEvent)
	// Forward: a forwarding channel or request was opened or refused.
	Forward(ForwardEvent)
	// PlatformError: a call to the one-off API failed, by kind
	// (PlatformErrorKind).
	PlatformError(kind string)
}

// Phases of a one-off's start, for Observer.StartPhase: the run
// operation is done (the one-off is ready), the attach stream is open
// (the uploads were sent), the command's first output byte arrived.
const (
	PhaseStarted   = "operation_done"
	PhaseAttached  = "attached"
	PhaseFirstByte = "first_byte"
)

// ConnectionEvent is a connection's open or close.
type ConnectionEvent struct {
	Phase  string // "open" or "close"
	ConnID string // the id of the connection's log lines
	Remote string // the client's address, host:port
	// Outcome, on close, from a fixed set: "authenticated" (a key was
	// accepted for the app), "app_denied" (a key was accepted, not for
	// this app), "auth_failed", "no_auth" (ended before trying, or the
	// handshake failed), "grace_exceeded" (LoginGraceTime), "refused"
	// (MaxStartups, PerSourceMaxStartups).
	Outcome  string
	Duration time.Duration // on close: how long it was open
}

// AuthEvent is one authentication request's result.
type AuthEvent struct {
	ConnID string
	Remote string
	// Method is the SSH method name (RFC 4252): "publickey", "password",
	// "keyboard-interactive", "none", ...
	Method      string
	OK          bool
	User        string // the SSH user name as the client sent it
	App         string // the app it names (appname.ParseUser)
	Identity    string // on success: the key's identity (fingerprint, or the certificate's key id)
	Fingerprint string // the key's SHA256 fingerprint, when a key was offered
	// Reason, on failure, from a fixed set: "unknown_key", "revoked",
	// "from", "expired", "certificate", "invalid_app_name", "method"
	// (a method the bridge does not take), "other". On success "" or
	// "app_denied" (the key may not use this app).
	Reason string
	// Detail is access control's own words for a refusal (its log line's
	// reason), "" when it gave none.
	Detail string
}

// SessionEvent is the start or end of a session's work.
type SessionEvent struct {
	ConnID   string
	User     string // the key's identity
	App      string
	Kind     string // "shell", "exec", "subsystem" or "intercepted" (an exec answered by the bridge)
	Mode     string // "session" or "connection"
	ExitCode int    // at the end: the code the client got; -1 when none was sent (the client left)
	// Outcome, at the end, from a fixed set: "command" (the code is the
	// command's own, or its handler's), "client_gone", or the name of the
	// bridge's own exit code (ExitCodeName: "access_denied", ...).
	Outcome  string
	BytesIn  int64 // from the client: channel data
	BytesOut int64 // to the client: channel data and extended data (stderr)
	Duration time.Duration
}

// UploadEvent is a staged file's step.
type UploadEvent struct {
	Event string // "staged", "delivered", "refused" or "expired"
	User  string // the key's identity
	App   string
	Name  string // the file's path in the staging area
	Size  int64
	// Reason of a refusal, from a fixed set: "platform" (the platform
	// refused the delivery), "quota", "too_large", "other".
	Reason   string
	Duration time.Duration // "delivered": the time the session waited for it (observeDelivery)
}

// ForwardEvent is a forwarding channel or request, opened or refused.
type ForwardEvent struct {
	ConnID string
	User   string
	App    string
	// Type is the channel or request type (RFC 4254 section 7 and
	// OpenSSH's PROTOCOL): "direct-tcpip", "direct-streamlocal@openssh.com",
	// "tcpip-forward", ...
	Type    string
	Target  string // host:port or socket path
	Outcome string // "opened" or "refused"
}

// Observers fans each event out to every observer in turn.
type Observers []Observer

func (os Observers) Connection(e ConnectionEvent) {
	for _, o := range os {
		o.Connection(e)
	}
}
func (os Observers) Auth(e AuthEvent) {
	for _, o := range os {
		o.Auth(e)
	}
}
func (os Observers) SessionStart(e SessionEvent) {
	for _, o := range os {
		o.SessionStart(e)
	}
}
func (os Observers) SessionEnd(e SessionEvent) {
	for _, o := range os {
		o.SessionEnd(e)
	}
}
func (os Observers) StartPhase(p string, d time.Duration) {
	for _, o := range os {
		o.StartPhase(p, d)
	}
}
func (os Observers) Upload(e UploadEvent) {
	for _, o := range os {
		o.Upload(e)
	}
}
func (os Observers) Forward(e ForwardEvent) {
	for _, o := range os {
		o.Forward(e)
	}
}
func (os Observers) PlatformError(kind string) {
	for _, o := range os {
		o.PlatformError(kind)
	}
}

// NopObserver observes nothing; embed it to implement only some methods.
type NopObserver struct{}

func (NopObserver) Connection(ConnectionEvent)       {}
func (NopObserver) Auth(AuthEvent)                   {}
func (NopObserver) SessionStart(SessionEvent)        {}
func (NopObserver) SessionEnd(SessionEvent)          {}
func (NopObserver) StartPhase(string, time.Duration) {}
func (NopObserver) Upload(UploadEvent)               {}
func (NopObserver) Forward(ForwardEvent)             {}
func (NopObserver) PlatformError(string)             {}

var (
	_ Observer = Observers(nil)
	_ Observer = NopObserver{}
)

// exitCodeNames name the bridge's own exit codes (exitcode.go), for
// SessionEvent.Outcome.
var exitCodeNames = map[int]string{
	ExitAccessDenied:     "access_denied",
	ExitAppNotFound:      "app_not_found",
	ExitPlatformDown:     "platform_down",
	ExitQuota:            "quota",
	ExitStartFailed:      "start_failed",
	ExitUploadRefused:    "upload_refused",
	ExitInactivity:       "inactivity",
	ExitRequestRefused:   "request_refused",
	ExitInternal:         "internal",
	ExitPlatformLostExit: "platform_lost_exit",
	ExitInvalidAppName:   "invalid_app_name",
	ExitBridgeStopped:    "bridge_stopped",
	ExitKeyLimit:         "key_limit",
	ExitRsyncUpload:      "rsync_upload",
	ExitAgent:            "agent",
}

// ExitCodeName is the name of one of the bridge's own exit codes
// (exitcode.go: ExitAccessDenied is "access_denied", ...), "" for any
// other code.
func ExitCodeName(code int) string { return exitCodeNames[code] }

// platformErrorKinds name oneoff's kinds of failure, in the order they
// are tested.
var platformErrorKinds = []struct {
	err  error
	name string
}{
	{oneoff.ErrAppNotFound, "app_not_found"},
	{oneoff.ErrUnauthorized, "unauthorized"},
	{oneoff.ErrQuota, "quota"},
	{oneoff.ErrInvalid, "invalid"},
	{oneoff.ErrOperationFailed, "operation_failed"},
	{oneoff.ErrStartTimeout, "start_timeout"},
	{oneoff.ErrAttachRefused, "attach_refused"},
	{oneoff.ErrUploadRefused, "upload_refused"},
	{oneoff.ErrInactivity, "inactivity"},
	{oneoff.ErrUnreachable, "unreachable"},
	{oneoff.ErrMalformed, "malformed"},
}

// PlatformErrorKind names the kind of a one-off API failure (oneoff's
// Err* kinds: oneoff.ErrQuota is "quota", ...); "" when err is of none.
func PlatformErrorKind(err error) string {
	for _, k := range platformErrorKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// authReasons turn access control's refusal reasons (its log's words)
// into AuthEvent.Reason's fixed set, by their beginning.
var authReasons = []struct{ prefix, name string }{
	{"unknown key", "unknown_key"},
	{"key revoked", "revoked"},
	{"source address not allowed", "from"},
	{"key expired", "expired"},
	{"certificate", "certificate"},
	{"not a user certificate", "certificate"},
	{"no certificate principal", "certificate"},
	{"not a valid app name", "invalid_app_name"},
	{"app not", "app_denied"},
}

func authReason(detail string) string {
	for _, r := range authReasons {
		if strings.HasPrefix(detail, r.prefix) {
			return r.name
		}
	}
	return "other"
}

// observer is Deps.Observer, or one that observes nothing.
func (s *Server) observer() Observer {
	if s.deps.Observer == nil {
		return NopObserver{}
	}
	return s.deps.Observer
}

// outcome names how a connection ended, for ConnectionEvent.Outcome.
func (st *connState) outcome() string {
	switch st.event() {
	case auth.EventNone:
		return "authenticated"
	case auth.EventAppDenied:
		return "app_denied"
	case auth.EventGraceExceeded:
		return "grace_exceeded"
	case auth.EventAuthFail:
		return "auth_failed"
	}
	return "no_auth"
}

// lastKey is what the bridge learnt of the latest key offered on a
// connection, for the authentication request's event.
type lastKey struct {
	fingerprint string
	detail      string // access control's reason when it refused the key
}

// countingChannel counts a session channel's bytes each way.
type countingChannel struct {
	gossh.Channel
	in, out atomic.Int64
}

func (c *countingChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingChannel) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingChannel) Stderr() io.ReadWriter {
	return countingStderr{c.Channel.Stderr(), &c.out}
}

type countingStderr struct {
	io.ReadWriter
	out *atomic.Int64
}

func (c countingStderr) Write(p []byte) (int, error) {
	n, err := c.ReadWriter.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// firstByte calls fn once, at the first byte read from r.
type firstByte struct {
	io.Reader
	once sync.Once
	fn   func()
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.Reader.Read(p)
	if n > 0 {
		f.once.Do(f.fn)
	}
	return n, err
}

// observeChannel reports a forwarding channel's outcome: opened when the
// handler accepts it, refused when it rejects it.
func (s *Server) observeChannel(h ssh.ChannelHandler) ssh.ChannelHandler {
	return func(srv *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
		h(srv, conn, &observedChannel{NewChannel: newChan, srv: s, ctx: ctx}, ctx)
	}
}

type observedChannel struct {
	gossh.NewChannel
	srv *Server
	ctx ssh.Context
}

func (c *observedChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := c.NewChannel.Accept()
	if err == nil {
		c.srv.forwardEvent(c.ctx, c.ChannelType(), channelTarget(c.ChannelType(), c.ExtraData()), "opened")
	}
	return ch, reqs, err
}

func (c *observedChannel) Reject(reason gossh.RejectionReason, message string) error {
	c.srv.forwardEvent(c.ctx, c.ChannelType(), channelTarget(c.ChannelType(), c.ExtraData()), "refused")
	return c.NewChannel.Reject(reason, message)
}

// channelTarget reads a forwarding channel's target from its payload
// (RFC 4254 section 7.2, OpenSSH's PROTOCOL 2.4).
func channelTarget(kind string, payload []byte) string {
	switch kind {
	case "direct-tcpip":
		var msg directTCPIPMsg
		if gossh.Unmarshal(payload, &msg) == nil {
			return hostPort(msg.Host, msg.Port)
		}
	case "direct-streamlocal@openssh.com":
		var msg directStreamlocalMsg
		if gossh.Unmarshal(payload, &msg) == nil {
			return msg.SocketPath
		}
	}
	return ""
}

// observeRequest reports a forwarding request's outcome from its answer.
func (s *Server) observeRequest(h ssh.RequestHandler) ssh.RequestHandler {
	return func(ctx ssh.Context, srv *ssh.Server, req *gossh.Request) (bool, []byte) {
		ok, payload := h(ctx, srv, req)
		if strings.HasPrefix(req.Type, "cancel-") {
			return ok, payload
		}
		target := ""
		switch req.Type {
		case "tcpip-forward":
			var msg tcpipForwardMsg
			if gossh.Unmarshal(req.Payload, &msg) == nil {
				target = hostPort(msg.Address, msg.Port)
			}
		case "streamlocal-forward@openssh.com":
			var msg stringMsg
			if gossh.Unmarshal(req.Payload, &msg) == nil {
				target = msg.Value
			}
		}
		outcome := "refused"
		if ok {
			outcome = "opened"
		}
		s.forwardEvent(ctx, req.Type, target, outcome)
		return ok, payload
	}
}

func (s *Server) forwardEvent(ctx ssh.Context, kind, target, outcome string) {
	e := ForwardEvent{Type: kind, Target: target, Outcome: outcome, App: appOf(ctx, nil)}
	if st := stateOf(ctx); st != nil {
		e.ConnID = st.id
	}
	if g, ok := auth.GrantFrom(ctx); ok && g != nil {
		e.User, e.App = g.Identity, appOf(ctx, g)
	}
	s.observer().Forward(e)
}

// sessionOutcome names how a session's work ended: its code's name when
// the bridge chose it, else "command".
func sessionOutcome(code int, bridgeCode bool) string {
	if !bridgeCode {
		return "command"
	}
	if name := ExitCodeName(code); name != "" {
		return name
	}
	return "internal"
}

// observePlatformError reports a platform failure of a session's work.
func (s *Server) observePlatformError(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if kind := PlatformErrorKind(err); kind != "" {
		s.observer().PlatformError(kind)
	}
}

// setLastKey keeps what access control said of the latest key offered.
func (st *connState) setLastKey(key ssh.PublicKey, detail string) {
	fp := ""
	if cert, ok := key.(*gossh.Certificate); ok {
		fp = gossh.FingerprintSHA256(cert.Key)
	} else if key != nil {
		fp = gossh.FingerprintSHA256(key)
	}
	st.mu.Lock()
	st.lastKey = lastKey{fingerprint: fp, detail: detail}
	st.mu.Unlock()
}

// authEvent reports an authentication request's result; err nil is a
// success.
func (s *Server) authEvent(ctx ssh.Context, st *connState, method string, err error) {
	app, _ := appname.ParseUser(ctx.User())
	e := AuthEvent{ConnID: st.id, Remote: st.conn.RemoteAddr().String(), Method: method, OK: err == nil, User: ctx.User(), App: app}
	st.mu.Lock()
	key := st.lastKey
	st.mu.Unlock()
	if method == "publickey" {
		e.Fingerprint = key.fingerprint
	}
	switch {
	case err == nil:
		if g, ok := auth.GrantFrom(ctx); ok {
			e.Identity, e.App = g.Identity, appOf(ctx, g)
			if !g.Allowed {
				e.Reason, e.Detail = "app_denied", key.detail
			}
		}
	case method != "publickey":
		e.Reason = "method"
	default:
		e.Reason, e.Detail = authReason(key.detail), key.detail
	}
	s.observer().Auth(e)
}

// event is the session's SessionEvent so far.
func (sess *session) event(kind string) SessionEvent {
	e := SessionEvent{User: identityOf(sess.grant), App: sess.app, Kind: kind, Mode: "session", ExitCode: -1}
	if sess.st != nil {
		e.ConnID = sess.st.id
	}
	if sess.intercepted {
		e.Kind = "intercepted"
	}
	if sess.connMode {
		e.Mode = "connection"
	}
	return e
}

// observeStart reports the start of the session's work, once: where
// runCommand knows what serves it (kind is then the request's, or "exec"
// for a forced command).
func (sess *session) observeStart(kind string) {
	if sess.startSeen {
		return
	}
	sess.startSeen = true
	sess.startKind = kind
	sess.srv.observer().SessionStart(sess.event(kind))
}

// observeEnd reports the end of the session's work, and its start first
// when the bridge refused it before it began.
func (sess *session) observeEnd(kind string, start time.Time, code int, outcome string) {
	sess.observeStart(kind)
	sess.endSeen = true
	kind = sess.startKind
	e := sess.event(kind)
	e.ExitCode, e.Outcome, e.Duration = code, outcome, time.Since(start)
	if c, ok := sess.ch.(*countingChannel); ok {
		e.BytesIn, e.BytesOut = c.in.Load(), c.out.Load()
	}
	sess.srv.observer().SessionEnd(e)
}

// observeDelivery keeps an event for each file the platform accepted,
// with the time its upload took, then calls progress (which may be nil).
// The events are reported by deliveredEvents once the delivery is
// committed.
//
// Several files are in flight at once (uploads.Scope.Deliver), and their
// progress comes file after file in staging order, a file's report only
// once the one before it was accepted. So a file's time is counted from
// the acceptance of the file before it (the first file's from the start of
// the delivery) to its own: the session waited that long for it, and the
// times of a delivery add up to its whole.
func (sess *session) observeDelivery(progress func(name string, sent, size int64, accepted bool)) func(name string, sent, size int64, accepted bool) {
	began := time.Now()
	sess.delivered = nil
	return func(name string, sent, size int64, accepted bool) {
		if accepted {
			now := time.Now()
			sess.delivered = append(sess.delivered, UploadEvent{Event: "delivered", User: sess.identity(), App: sess.app,
				Name: name, Size: size, Duration: now.Sub(began)})
			began = now
		}
		if progress != nil {
			progress(name, sent, size, accepted)
		}
	}
}

// reportDelivered reports the files of a committed delivery.
func (sess *session) reportDelivered() {
	for _, e := range sess.delivered {
		sess.srv.observer().Upload(e)
	}
	sess.delivered = nil
}
