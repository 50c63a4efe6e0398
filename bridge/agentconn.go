package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// Agent is what connection mode uploads and runs in a one-off (DESIGN.md
// "Connection mode"): the agent binaries and the shell line that picks one
// for the container's architecture and execs it. The agent then speaks SSH's
// connection protocol on the one-off's stdin and stdout.
type Agent struct {
	// Files maps each upload name (a path below /tmp/uploads) to the local
	// file sent under it, one per architecture.
	Files map[string]string
	// Command is the one-off's command: a shell line that starts the agent
	// from the uploaded files, or prints one line starting with
	// AgentFailurePrefix and exits non-zero.
	Command string
	// ForwardingRefusal, when not "", refuses every forward of connection
	// mode with this message: the one-offs share the host's network, so
	// that their loopback is not theirs.
	ForwardingRefusal string
}

// AgentFailurePrefix starts the line the agent's launcher prints when the
// agent cannot run in the one-off; the bridge shows that line to the user.
const AgentFailurePrefix = "bridge-agent: "

// agentHostKeyEnv carries the agent's host key, which the bridge makes for
// each one-off and pins; the agent removes it from its environment.
const agentHostKeyEnv = "BRIDGE_AGENT_HOST_KEY"

// agentAnswerTimeout bounds the time from the attach to the end of the
// SSH handshake with the agent: the launch line copies the agent and starts
// it, which takes well under a second where nothing is wrong.
const agentAnswerTimeout = time.Minute

// agentKeepaliveInterval is the time between the keepalives the bridge
// sends the agent. A connection-mode one-off lives as long as its SSH
// connection (or its linger), idle or not; the platform stops a one-off
// through which no data passed for a while (PROTOCOL.md: 408), so a
// keepalive crosses its stream well within any such timeout.
var agentKeepaliveInterval = 30 * time.Second // a variable for the tests

// agentBannerLimit bounds what the bridge reads before the agent's SSH
// identification line: the launcher's failure line, or a shell's complaint.
const agentBannerLimit = 8 << 10

// agentConn is the one-off of a connection-mode connection and the SSH
// client connection to the agent inside it. Every channel of the user's
// connection is relayed over it.
type agentConn struct {
	srv      *Server
	app      string
	identity string
	log      *slog.Logger
	o        OneOff
	conn     gossh.Conn
	ctx      context.Context // ends when the agent connection ends
	cancel   context.CancelFunc
	release  func() // gives back the key's one-off slot

	done chan struct{} // closed once the agent connection ended and its exit is known
	err  error         // why it ended, once done is closed: nil for a clean end

	mu    sync.Mutex
	owner *gossh.ServerConn // the user's connection served now, for forwarded-tcpip
	// remote are the tcpip-forward listeners of the owner: the address
	// the agent listens on mapped to the one the client asked for, which
	// forwarded-tcpip channels must carry back (RFC 4254 section 7.2).
	remote map[tcpipForwardMsg]tcpipForwardMsg
}

// agentStart is what a connection needs to start its agent: the session
// that asked (for the log, progress and uploads), or a bare one for a
// forwarding request.
func (s *Server) startAgent(sess *session) (*agentConn, error) {
	ag := s.deps.Agent
	if ag == nil {
		return nil, &exitFailure{ExitAgent, "Connection mode is not available on this bridge.", errors.New("no agent configured")}
	}
	release, ok := s.acquireOneOff(sess.identity())
	if !ok {
		return nil, keyLimitFailure(s.cfg.MaxOneOffsPerKey)
	}
	ac, err := s.launchAgent(sess, ag)
	if err != nil {
		release()
		return nil, err
	}
	ac.release = release
	return ac, nil
}

// NewAgentHostKey makes a host key for one agent: its private key as an
// unencrypted OpenSSH PEM block, which the agent reads from
// BRIDGE_AGENT_HOST_KEY, and its public key, which the bridge pins
// (AgentClientConfig).
func NewAgentHostKey() (privatePEM string, public gossh.PublicKey, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		return "", nil, err
	}
	public, err = gossh.NewPublicKey(pub)
	if err != nil {
		return "", nil, err
	}
	return string(pem.EncodeToMemory(block)), public, nil
}

// AgentClientConfig is the bridge's SSH client configuration for the link
// to an agent whose host key is hostKey: that key alone, curve25519, and
// AES-GCM first.
func AgentClientConfig(hostKey gossh.PublicKey) *gossh.ClientConfig {
	return &gossh.ClientConfig{
		User:            "bridge",
		HostKeyCallback: gossh.FixedHostKey(hostKey),
		// The inner link is the one-off's own stream: AES-GCM is the
		// cheapest cipher x/crypto has on hardware with AES instructions.
		Config: gossh.Config{
			Ciphers:      []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"},
			KeyExchanges: []string{"curve25519-sha256"},
		},
		HostKeyAlgorithms: []string{gossh.KeyAlgoED25519},
	}
}

func (s *Server) launchAgent(sess *session, ag *Agent) (*agentConn, error) {
	hostKeyPEM, signerPub, err := NewAgentHostKey()
	if err != nil {
		return nil, err
	}
	env := map[string]string{agentHostKeyEnv: hostKeyPEM}
	for k, v := range sess.grant.Env {
		env[k] = v
	}
	// The one-off outlives the session that started it: it ends with the
	// agent connection, which ends with the user's connection (or after
	// the linger).
	ctx, cancel := context.WithCancel(context.WithoutCancel(sess.ctx))
	// Until the agent answers, the client going away abandons the start.
	startCtx := ctx
	ready := make(chan struct{})
	defer close(ready)
	go func() {
		select {
		case <-sess.ctx.Done():
			select {
			case <-ready:
			default:
				cancel()
			}
		case <-ready:
		}
	}()
	fail := func(err error) (*agentConn, error) {
		cancel()
		if sess.ctx.Err() != nil {
			return nil, context.Cause(sess.ctx)
		}
		return nil, err
	}

	t0 := time.Now()
	sess.progressStart(fmt.Sprintf("Starting one-off container for %s...", sess.app))
	req := oneoff.RunRequest{App: sess.app, Command: ag.Command, Env: env, Size: s.cfg.Size, TTY: false}
	o, err := s.deps.Platform.Start(startCtx, req)
	if err != nil {
		sess.progressEnd("failed")
		return fail(fmt.Errorf("start one-off: %w", err))
	}
	sess.progressEnd(fmt.Sprintf("done in %s", elapsed(time.Since(t0))))
	obs := s.observer()
	obs.StartPhase(PhaseStarted, time.Since(t0))
	log := sess.log.With("container", o.ContainerID())
	log.Info("connection one-off started", "pipe_mode", o.PipeMode(), "after", time.Since(t0))

	for name, path := range ag.Files {
		if err := uploadFile(startCtx, o, name, path); err != nil {
			f := classify(sess.app, err)
			if errors.Is(err, oneoff.ErrUploadRefused) {
				f = &exitFailure{ExitUploadRefused, "The platform refused the upload of the connection-mode agent.", err}
			}
			return fail(f)
		}
	}
	stream, committed, err := sess.deliverAndAttach(startCtx, o)
	if err != nil {
		return fail(err)
	}
	committed()
	obs.StartPhase(PhaseAttached, time.Since(t0))
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	// The agent's first bytes (its SSH identification) are the one-off's.
	first := &firstByte{Reader: stream, fn: func() { obs.StartPhase(PhaseFirstByte, time.Since(t0)) }}
	conn, err := s.agentHandshake(startCtx, &readerStream{Reader: first, Stream: stream}, signerPub)
	if err != nil {
		stop()
		stream.Close()
		if ctx.Err() == nil && sess.ctx.Err() == nil {
			err = s.agentStartFailure(o, err, log)
		}
		return fail(err)
	}
	ac := &agentConn{srv: s, app: sess.app, identity: sess.identity(), log: log, o: o,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), remote: map[tcpipForwardMsg]tcpipForwardMsg{}}
	ac.conn = conn.conn
	go ac.serveChannels(conn.chans)
	go gossh.DiscardRequests(conn.reqs)
	go ac.watch(stream, t0)
	go ac.keepalive(agentKeepaliveInterval)
	var cipher string
	if m, ok := conn.conn.(gossh.AlgorithmsConnMetadata); ok {
		cipher = m.Algorithms().Read.Cipher
	}
	log.Info("connection mode: agent ready", "after", time.Since(t0), "cipher", cipher)
	return ac, nil
}

// uploadFile sends one local file to the one-off under name.
func uploadFile(ctx context.Context, o OneOff, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return &exitFailure{ExitAgent, "The bridge could not read its connection-mode agent; tell its operator.", err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &exitFailure{ExitAgent, "The bridge could not read its connection-mode agent; tell its operator.", err}
	}
	if err := o.Upload(ctx, name, fi.Size(), f); err != nil {
		return fmt.Errorf("upload agent %s: %w", name, err)
	}
	return nil
}

type clientConn struct {
	conn  gossh.Conn
	chans <-chan gossh.NewChannel
	reqs  <-chan *gossh.Request
}

// errNoBanner is the handshake's error when the one-off's output ended,
// or grew past agentBannerLimit, before an SSH identification line.
type errNoBanner struct{ output []byte }

func (e *errNoBanner) Error() string {
	return fmt.Sprintf("no SSH identification from the agent; the one-off wrote %q", e.output)
}

// agentHandshake waits for the agent's first bytes (on a terminal-only
// platform nothing may be sent before the agent made its terminal raw),
// then runs the SSH handshake as the agent's client, pinning its host key.
func (s *Server) agentHandshake(ctx context.Context, stream Stream, hostKey gossh.PublicKey) (*clientConn, error) {
	var timedOut atomic.Bool
	timer := time.AfterFunc(agentAnswerTimeout, func() {
		timedOut.Store(true)
		stream.Close()
	})
	c, err := s.agentHandshakeOn(ctx, stream, hostKey)
	if !timer.Stop() || timedOut.Load() {
		if c != nil {
			c.conn.Close()
		}
		return nil, fmt.Errorf("the agent did not answer within %v", agentAnswerTimeout)
	}
	return c, err
}

func (s *Server) agentHandshakeOn(ctx context.Context, stream Stream, hostKey gossh.PublicKey) (*clientConn, error) {
	br := bufio.NewReaderSize(stream, 4096)
	var before []byte
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("SSH-")) {
			// Hand the line back to the SSH transport.
			rest := io.MultiReader(bytes.NewReader(bytes.Clone(line)), br)
			return s.agentClient(ctx, &readerStream{Reader: rest, Stream: stream}, hostKey)
		}
		before = append(before, line...)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, &errNoBanner{before}
		}
		if len(before) > agentBannerLimit {
			return nil, &errNoBanner{before[:agentBannerLimit]}
		}
	}
}

func (s *Server) agentClient(ctx context.Context, rw *readerStream, hostKey gossh.PublicKey) (*clientConn, error) {
	cfg := AgentClientConfig(hostKey)
	type result struct {
		c   *clientConn
		err error
	}
	out := make(chan result, 1)
	go func() {
		c, chans, reqs, err := gossh.NewClientConn(streamNetConn{rw}, "agent", cfg)
		if err != nil {
			out <- result{nil, fmt.Errorf("agent handshake: %w", err)}
			return
		}
		out <- result{&clientConn{c, chans, reqs}, nil}
	}()
	select {
	case r := <-out:
		return r.c, r.err
	case <-ctx.Done():
		rw.Close()
		return nil, ctx.Err()
	}
}

// agentStartFailure reads why the agent did not answer: the launcher's line
// from the output, and the one-off's exit code.
func (s *Server) agentStartFailure(o OneOff, err error, log *slog.Logger) error {
	var nb *errNoBanner
	if !errors.As(err, &nb) {
		return &exitFailure{ExitAgent, "The connection-mode agent did not answer in the one-off container.", err}
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), s.cfg.WaitTimeout)
	defer cancel()
	code, werr := o.Wait(waitCtx)
	if errors.Is(werr, oneoff.ErrInactivity) {
		return classify("", werr)
	}
	line := ""
	for l := range bytes.SplitSeq(nb.output, []byte("\n")) {
		if i := bytes.Index(l, []byte(AgentFailurePrefix)); i >= 0 {
			line = oneLine(string(bytes.TrimRight(l[i+len(AgentFailurePrefix):], "\r")))
			break
		}
	}
	log.Warn("connection mode: the agent did not start", "exit_code", code, "wait_err", werr, "output", oneLine(string(nb.output)))
	if line == "" {
		return &exitFailure{ExitAgent, fmt.Sprintf("The connection-mode agent could not start in the one-off container (exit code %d).", code), err}
	}
	return &exitFailure{ExitAgent, fmt.Sprintf("The connection-mode agent could not start in the one-off container: %s.", line), err}
}

// watch waits for the agent connection's end, then reads the one-off's
// exit code, for the sessions still open to tell their users why.
func (ac *agentConn) watch(stream Stream, t0 time.Time) {
	werr := ac.conn.Wait()
	stream.Close()
	ac.cancel()
	waitCtx, cancel := context.WithTimeout(context.Background(), ac.srv.cfg.WaitTimeout)
	defer cancel()
	code, err := ac.o.Wait(waitCtx)
	switch {
	case err != nil:
		ac.err = err
	case code != 0:
		ac.err = fmt.Errorf("the agent exited with code %d", code)
	}
	ac.log.Info("connection one-off ended", "duration", time.Since(t0), "exit_code", code, "wait_err", err, "conn_err", werr)
	if ac.release != nil {
		ac.release()
	}
	close(ac.done)
}

// keepalive sends a keepalive request to the agent every interval until
// the agent connection ends: bytes each way on the one-off's stream.
func (ac *agentConn) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ac.ctx.Done():
			return
		case <-t.C:
			ac.conn.SendRequest("keepalive@openssh.com", true, nil)
		}
	}
}

// close ends the agent connection, which ends the one-off.
func (ac *agentConn) close() {
	ac.conn.Close()
	ac.cancel()
}

// ended says whether the agent connection ends within d.
func (ac *agentConn) ended(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ac.ctx.Done():
		return true
	case <-t.C:
		return false
	}
}

// alive says whether the agent connection still runs.
func (ac *agentConn) alive() bool { return ac.ctx.Err() == nil }

// lostFailure is what a session still open is told when the agent
// connection ended under it.
func (ac *agentConn) lostFailure() *exitFailure {
	t := time.NewTimer(ac.srv.cfg.WaitTimeout)
	defer t.Stop()
	select {
	case <-ac.done:
	case <-t.C:
	}
	if errors.Is(ac.err, oneoff.ErrInactivity) {
		return classify(ac.app, ac.err)
	}
	return &exitFailure{ExitAgent, "The one-off container of this connection ended; every session of the connection ended with it.", ac.err}
}

// setOwner makes sc the user's connection that the agent's channels
// (forwarded-tcpip) go to.
func (ac *agentConn) setOwner(sc *gossh.ServerConn) {
	ac.mu.Lock()
	ac.owner = sc
	ac.mu.Unlock()
}

// readerStream reads from Reader (the peeked banner, then the stream) and
// writes and closes through Stream.
type readerStream struct {
	io.Reader
	Stream
}

func (r *readerStream) Read(p []byte) (int, error) { return r.Reader.Read(p) }

// streamNetConn makes a stream a net.Conn for the SSH transport, which
// needs only Read, Write and Close.
type streamNetConn struct{ *readerStream }

func (streamNetConn) LocalAddr() net.Addr              { return agentAddr{} }
func (streamNetConn) RemoteAddr() net.Addr             { return agentAddr{} }
func (streamNetConn) SetDeadline(time.Time) error      { return nil }
func (streamNetConn) SetReadDeadline(time.Time) error  { return nil }
func (streamNetConn) SetWriteDeadline(time.Time) error { return nil }

type agentAddr struct{}

func (agentAddr) Network() string { return "one-off" }
func (agentAddr) String() string  { return "agent" }
