package bridge

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// The bridge serves its connections itself, with x/crypto's server and
// gliderlabs' types (ssh.Context, the handler signatures), rather than
// through gliderlabs' Server, for what an idle connection costs: gliderlabs
// runs the handshake on the goroutine that then waits for channels for the
// connection's life, keeping the stack the handshake grew (4 KiB, which
// the runtime cannot shrink back), and it waits for global requests on a
// second goroutine. Here the handshake's goroutine ends with the handshake,
// and one fresh goroutine serves both channels and global requests (see
// BENCHMARKS.md, "Idle connections"). What gliderlabs did for the bridge is
// done the same way: the same context keys and values, the public key
// handler's permissions, the same back-off on temporary accept errors
// (EMFILE), and Shutdown waits for the authenticated connections as
// gliderlabs' did.

// Serve accepts connections on l until Shutdown; nil then.
func (s *Server) Serve(l net.Listener) error {
	ln := &onceCloseListener{Listener: l}
	if !s.setListener(ln) {
		return ln.Close()
	}
	defer ln.Close()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.stopping() {
				return nil
			}
			// As net/http and gliderlabs: a temporary error (out of
			// descriptors) is waited out, 5 ms doubling up to 1 s.
			//lint:ignore SA1019 Temporary is how accept's EMFILE and ENFILE are told apart from a closed listener
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go s.handleConn(conn)
	}
}

// handleConn admits conn (onConn), reads the client's KEXINIT ahead to
// choose the ciphers it proposes (kexinit.go), runs the handshake and,
// once the client is authenticated, hands the connection to serveConn on a fresh
// goroutine and returns.
func (s *Server) handleConn(raw net.Conn) {
	ctx := newConnContext()
	conn := s.onConn(ctx, raw)
	if conn == nil {
		raw.Close()
		ctx.end()
		return
	}
	cfg := s.connConfig(ctx)
	version := cfg.ServerVersion
	if version == "" {
		version = "SSH-2.0-Go" // x/crypto's own
		cfg.ServerVersion = version
	}
	hc, proposed, err := readClientKexInit(conn, version)
	if err != nil {
		conn.Close()
		return
	}
	cfg.Ciphers = proposed
	sc, chans, reqs, err := gossh.NewServerConn(hc, cfg)
	if err != nil {
		conn.Close()
		return
	}
	s.conns.add(sc)
	ctx.SetValue(ssh.ContextKeyConn, sc)
	applyConnMetadata(ctx, sc)
	go s.serveConn(ctx, conn, sc, chans, reqs)
}

// connConfig is the x/crypto server configuration of one connection: the
// bridge's (serverConfig), with the host key and its certificates, the version and the public
// key handler, whose permissions and accepted key go into ctx as
// gliderlabs put them.
func (s *Server) connConfig(ctx ssh.Context) *gossh.ServerConfig {
	cfg := s.serverConfig(ctx)
	for _, k := range hostSigners(s.deps) {
		cfg.AddHostKey(k)
	}
	if s.cfg.Version != "" {
		cfg.ServerVersion = "SSH-2.0-" + s.cfg.Version
	}
	cfg.PublicKeyCallback = func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
		applyConnMetadata(ctx, meta)
		if !s.publicKeyHandler(ctx, key) {
			return ctx.Permissions().Permissions, errors.New("permission denied")
		}
		ctx.SetValue(ssh.ContextKeyPublicKey, key)
		return ctx.Permissions().Permissions, nil
	}
	return cfg
}

// serveConn dispatches an authenticated connection's channels and global
// requests until the client goes, then closes the connection, which ends
// its context. Each channel's handler runs on a goroutine of its own;
// global requests are answered in the order they came (RFC 4254 section 4
// lets the client match replies by order), a handler that takes time on a
// goroutine of its own so that channels are still served meanwhile.
func (s *Server) serveConn(ctx *connContext, conn net.Conn, sc *gossh.ServerConn, chans <-chan gossh.NewChannel, reqs <-chan *gossh.Request) {
	defer conn.Close()
	defer s.conns.remove(sc)
	var last chan struct{} // closed once the latest request handed to a goroutine is answered
	for chans != nil || reqs != nil {
		select {
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			last = s.globalRequest(ctx, req, last)
		case ch, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			handler := s.channelHandlers[ch.ChannelType()]
			if handler == nil {
				ch.Reject(gossh.UnknownChannelType, "unsupported channel type")
				continue
			}
			go handler(nil, sc, ch, ctx)
		}
	}
}

// globalRequest answers req: a request type without a handler at once
// (false), unless an earlier one is still being answered; one with a
// handler on a goroutine that first waits for the earlier one's answer
// (prev). It returns what the next request waits for.
func (s *Server) globalRequest(ctx *connContext, req *gossh.Request, prev chan struct{}) chan struct{} {
	handler := s.requestHandlers[req.Type]
	if handler == nil && answered(prev) {
		req.Reply(false, nil)
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		ok, payload := false, []byte(nil)
		if handler != nil {
			ok, payload = handler(ctx, nil, req)
		}
		if req.WantReply {
			req.Reply(ok, payload)
		}
	}()
	return done
}

func answered(prev chan struct{}) bool {
	if prev == nil {
		return true
	}
	select {
	case <-prev:
		return true
	default:
		return false
	}
}

// applyConnMetadata puts what the handshake learned into ctx, once, under
// gliderlabs' keys.
func applyConnMetadata(ctx ssh.Context, meta gossh.ConnMetadata) {
	if ctx.Value(ssh.ContextKeySessionID) != nil {
		return
	}
	ctx.SetValue(ssh.ContextKeySessionID, hex.EncodeToString(meta.SessionID()))
	ctx.SetValue(ssh.ContextKeyClientVersion, string(meta.ClientVersion()))
	ctx.SetValue(ssh.ContextKeyServerVersion, string(meta.ServerVersion()))
	ctx.SetValue(ssh.ContextKeyUser, meta.User())
	ctx.SetValue(ssh.ContextKeyLocalAddr, meta.LocalAddr())
	ctx.SetValue(ssh.ContextKeyRemoteAddr, meta.RemoteAddr())
}

// connContext is a connection's ssh.Context: a context that ends with
// the connection (end), the connection-wide lock, and the values the
// bridge and gliderlabs' keys put in it.
type connContext struct {
	context.Context
	sync.Mutex // ssh.Context's connection-wide lock

	cancel context.CancelFunc
	ended  sync.Once

	valuesMu sync.Mutex // for onEnd and values
	// onEnd, when set (watchConn), runs on a goroutine of its own once
	// the context has ended: the connection's tidy-up.
	onEnd  func()
	values []ctxValue // a dozen at most: a list costs less than a map
}

type ctxValue struct{ key, value any }

func newConnContext() *connContext {
	inner, cancel := context.WithCancel(context.Background())
	ctx := &connContext{Context: inner, cancel: cancel, values: make([]ctxValue, 0, 12)}
	ctx.SetValue(ssh.ContextKeyPermissions, &ssh.Permissions{Permissions: &gossh.Permissions{}})
	return ctx
}

// setOnEnd sets onEnd.
func (ctx *connContext) setOnEnd(f func()) {
	ctx.valuesMu.Lock()
	defer ctx.valuesMu.Unlock()
	ctx.onEnd = f
}

// end ends the context, once: the connection closed, or failed.
func (ctx *connContext) end() {
	ctx.ended.Do(func() {
		ctx.cancel()
		ctx.valuesMu.Lock()
		f := ctx.onEnd
		ctx.valuesMu.Unlock()
		if f != nil {
			go f()
		}
	})
}

// Value looks among the connection's values, then in the context under
// them.
func (ctx *connContext) Value(key any) any {
	ctx.valuesMu.Lock()
	for _, kv := range ctx.values {
		if kv.key == key {
			ctx.valuesMu.Unlock()
			return kv.value
		}
	}
	ctx.valuesMu.Unlock()
	return ctx.Context.Value(key)
}

func (ctx *connContext) SetValue(key, value any) {
	ctx.valuesMu.Lock()
	defer ctx.valuesMu.Unlock()
	for i := range ctx.values {
		if ctx.values[i].key == key {
			ctx.values[i].value = value
			return
		}
	}
	ctx.values = append(ctx.values, ctxValue{key, value})
}

func (ctx *connContext) User() string { s, _ := ctx.Value(ssh.ContextKeyUser).(string); return s }
func (ctx *connContext) SessionID() string {
	s, _ := ctx.Value(ssh.ContextKeySessionID).(string)
	return s
}
func (ctx *connContext) ClientVersion() string {
	s, _ := ctx.Value(ssh.ContextKeyClientVersion).(string)
	return s
}
func (ctx *connContext) ServerVersion() string {
	s, _ := ctx.Value(ssh.ContextKeyServerVersion).(string)
	return s
}
func (ctx *connContext) RemoteAddr() net.Addr {
	a, _ := ctx.Value(ssh.ContextKeyRemoteAddr).(net.Addr)
	return a
}
func (ctx *connContext) LocalAddr() net.Addr {
	a, _ := ctx.Value(ssh.ContextKeyLocalAddr).(net.Addr)
	return a
}
func (ctx *connContext) Permissions() *ssh.Permissions {
	p, _ := ctx.Value(ssh.ContextKeyPermissions).(*ssh.Permissions)
	return p
}

// authConns are the authenticated connections, which Shutdown waits for
// and Close closes (as gliderlabs' Server did: a connection still
// authenticating is neither waited for nor closed).
type authConns struct {
	mu    sync.Mutex
	conns map[*gossh.ServerConn]struct{}
	none  chan struct{} // closed when conns becomes empty
}

func (a *authConns) add(sc *gossh.ServerConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.conns) == 0 {
		a.conns = map[*gossh.ServerConn]struct{}{}
		a.none = make(chan struct{})
	}
	a.conns[sc] = struct{}{}
}

func (a *authConns) remove(sc *gossh.ServerConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.conns[sc]; !ok {
		return
	}
	delete(a.conns, sc)
	if len(a.conns) == 0 {
		close(a.none)
	}
}

// wait returns nil once no connection is left, else ctx's error when it
// ends first.
func (a *authConns) wait(ctx context.Context) error {
	a.mu.Lock()
	if len(a.conns) == 0 {
		a.mu.Unlock()
		return nil
	}
	none := a.none
	a.mu.Unlock()
	select {
	case <-none:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *authConns) closeAll() {
	a.mu.Lock()
	conns := make([]*gossh.ServerConn, 0, len(a.conns))
	for sc := range a.conns {
		conns = append(conns, sc)
	}
	a.mu.Unlock()
	// At once: each Close may give a write blocked on a client that reads
	// nothing its closeWriteGrace.
	var wg sync.WaitGroup
	for _, sc := range conns {
		wg.Go(func() { sc.Close() })
	}
	wg.Wait()
}
