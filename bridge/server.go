package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
)

// Deps are the parts the server drives. Platform, Auth and HostKey are
// required; the rest may be zero.
type Deps struct {
	Platform Platform
	Auth     Authenticator
	HostKey  gossh.Signer
	// HostCertificates are presented beside HostKey: signers of OpenSSH
	// host certificates (gossh.NewCertSigner), at most one per key type,
	// whose certificate algorithms are offered beside the plain key's in
	// the key exchange (RFC 4253 section 7.1: the client's order decides,
	// and OpenSSH's client puts certificate algorithms first when its
	// known_hosts trusts a CA for the host). Nil: the plain key alone.
	HostCertificates []gossh.Signer
	// Subsystems serves the subsystem requests by name ("sftp"); a name
	// not in the map, or a nil map, is refused (the request is answered
	// false), as OpenSSH's sshd refuses a subsystem it has no Subsystem
	// line for.
	Subsystems map[string]SubsystemHandler
	// Interceptors are consulted in order about each exec command (after
	// the bridge's own: an rsync upload is refused); the first that
	// returns a handler answers it, and a command none answers goes to a
	// one-off. A blank command never reaches them: it ends with 0, as
	// `sh -c ''` under OpenSSH's sshd.
	Interceptors []Interceptor
	// Deliverer, when not nil, sends the pending uploads to each one-off
	// before it is attached.
	Deliverer Deliverer
	// Agent, when not nil, enables connection mode (connmode.go): what
	// the bridge uploads and runs in a connection's one-off. Nil: every
	// connection is in per-session mode.
	Agent  *Agent
	Logger *slog.Logger
	// Observer, when not nil, learns of each connection, authentication,
	// session, upload and forward (observe.go): metrics, the audit stream.
	Observer Observer
}

// Server is the bridge's SSH server.
type Server struct {
	cfg  Config
	deps Deps
	// interceptors are the bridge's own, then Deps.Interceptors.
	interceptors []Interceptor
	log          *slog.Logger
	// channelHandlers and requestHandlers answer an authenticated
	// connection's channels and global requests by type (serve.go); a
	// type not there is refused.
	channelHandlers map[string]ssh.ChannelHandler
	requestHandlers map[string]ssh.RequestHandler
	conns           authConns       // for Shutdown
	admission       *auth.Admission // which connections may authenticate; per-source penalties
	stop            shutdownState
	// oneOffs counts each key's one-offs, for MaxOneOffsPerKey.
	oneOffs oneOffCounts
	// lingering holds connection-mode one-offs after their connection
	// ended, for Config.ConnectionLinger.
	lingering lingerPool
}

// New checks the configuration and builds a server; Serve starts it.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Platform == nil || deps.Auth == nil || deps.HostKey == nil {
		return nil, errors.New("bridge: platform, authenticator and host key are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	admission, err := auth.NewAdmission(auth.AdmissionConfig{
		MaxStartups:          cfg.MaxStartups,
		PerSourceMaxStartups: cfg.PerSourceMaxStartups,
		Penalties:            cfg.PerSourcePenalties,
		ExemptList:           cfg.PerSourcePenaltyExemptList,
		LoginGrace:           cfg.LoginGraceTime,
		Logger:               log,
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	s := &Server{cfg: cfg, deps: deps, log: log, admission: admission,
		interceptors: append(slices.Clone(builtinInterceptors), deps.Interceptors...)}
	// Our own session handler: gliderlabs' rewrites \n to \r\n on pty
	// sessions, answers yes to agent forwarding and blocks its request
	// loop on a window change that comes before exec.
	s.channelHandlers = map[string]ssh.ChannelHandler{
		"session":                        s.handleSession,
		"direct-tcpip":                   s.observeChannel(s.directChannel),
		"direct-streamlocal@openssh.com": s.observeChannel(s.directChannel),
	}
	s.requestHandlers = map[string]ssh.RequestHandler{
		"tcpip-forward":                          s.observeRequest(s.tcpipForward),
		"cancel-tcpip-forward":                   s.tcpipForward,
		"streamlocal-forward@openssh.com":        s.observeRequest(s.refuseGlobal),
		"cancel-streamlocal-forward@openssh.com": s.refuseGlobal,
	}
	return s, nil
}

// hostSigners are the host key, then its certificates.
func hostSigners(deps Deps) []ssh.Signer {
	signers := []ssh.Signer{deps.HostKey}
	for _, c := range deps.HostCertificates {
		signers = append(signers, c)
	}
	return signers
}

func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	cfg := &gossh.ServerConfig{
		// x/crypto counts fewer failures than OpenSSH (the first refused
		// key offers are free); authAttempt counts as OpenSSH does and
		// ends the connection first. This is the backstop.
		MaxAuthTries:              auth.MaxAuthTries,
		PublicKeyAuthAlgorithms:   publicKeyAuthAlgorithms,
		VerifiedPublicKeyCallback: s.deps.Auth.VerifiedPublicKeyCallback(ctx),
		AuthLogCallback: func(_ gossh.ConnMetadata, method string, err error) {
			s.authAttempt(ctx, method, err)
		},
		PreAuthConnCallback: func(c gossh.ServerPreAuthConn) {
			if st := stateOf(ctx); st != nil {
				st.setPreAuth(c)
			}
		},
	}
	cfg.KeyExchanges = keyExchanges
	cfg.Ciphers = ciphers
	cfg.MACs = macs
	return cfg
}

// publicKeyHandler asks access control about a key. On a connection from
// a penalised source, a refused key is answered only after
// auth.PenaltyKeyDelay: guessing slows down, while an authorized key is
// accepted at once.
func (s *Server) publicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool {
	ok := s.deps.Auth.PublicKeyHandler(ctx, key)
	if st := stateOf(ctx); st != nil {
		st.setLastKey(key, auth.RefusalFrom(ctx))
	}
	if ok {
		return true
	}
	if st := stateOf(ctx); st != nil && st.startup.Penalised() {
		t := time.NewTimer(auth.PenaltyKeyDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return false
}

// tooManyFailures is the banner a client gets when the bridge ends its
// connection at auth.MaxAuthTries failures (OpenSSH's clients show it).
const tooManyFailures = "Too many authentication failures. If your agent holds several keys, pick one: ssh -i KEY -o IdentitiesOnly=yes\n"

// authAttempt sees the outcome of each authentication request but an
// accepted key offer, and counts failures as OpenSSH's MaxAuthTries does:
// every failed request counts, a refused key offer too, except a first
// "none" request. At auth.MaxAuthTries failures the client gets a banner
// saying so and the connection is closed, so that no further attempt is
// heard (OpenSSH disconnects at the same count).
func (s *Server) authAttempt(ctx ssh.Context, method string, err error) {
	st := stateOf(ctx)
	if st == nil {
		return
	}
	if err == nil {
		st.authenticated()
		s.authEvent(ctx, st, method, nil)
		return
	}
	n := st.countFailure(method)
	if n > 0 {
		s.authEvent(ctx, st, method, err)
	}
	if n >= auth.MaxAuthTries {
		st.log.Info("connection closed: too many authentication failures", "failures", n, "app", ctx.User())
		if pc := st.preAuthConn(); pc != nil {
			pc.SendAuthBanner(tooManyFailures)
		}
		st.conn.Close()
	}
}

// onceCloseListener lets Shutdown close the listener before Serve's end
// closes it again.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

func newConnID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
