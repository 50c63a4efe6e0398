package bridge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sshbridge/internal/testkit"
	"sync"
	"testing"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
	"sshbridge/oneoff"
)

// A fake backend for the session: the one-off API as the bridge sees it
// (Platform, OneOff, Stream), with the command played by a Go function.
// The SSH side is real: bridge.New and Serve on 127.0.0.1:0, dialled by
// x/crypto's client.

// program plays the one-off's command: in is its stdin, out its output;
// it returns the exit code. It must return once in fails (the stream was
// closed).
type program func(in io.Reader, out io.Writer) int

// echo copies stdin to the output and exits with code.
func echo(code int) program {
	return func(in io.Reader, out io.Writer) int {
		io.Copy(out, in)
		return code
	}
}

// fakePlatform starts a fakeOneOff per Start, or fails with err.
type fakePlatform struct {
	err     error
	waiting bool // Start calls req.Waiting, as on a 429
	oneOff  func() *fakeOneOff
	// run, when set, makes each one-off's program from its run request
	// (connection mode: the agent, which takes its host key from it).
	run func(req oneoff.RunRequest) program

	mu      sync.Mutex
	reqs    []oneoff.RunRequest
	started []*fakeOneOff
	notify  chan *fakeOneOff
}

// startedCh gets each one-off as it starts.
func (p *fakePlatform) startedCh() chan *fakeOneOff {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notify == nil {
		p.notify = make(chan *fakeOneOff, 16)
	}
	return p.notify
}

func (p *fakePlatform) Start(ctx context.Context, req oneoff.RunRequest) (OneOff, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	if p.waiting && req.Waiting != nil {
		req.Waiting()
	}
	if p.err != nil {
		return nil, p.err
	}
	o := &fakeOneOff{prog: echo(0)}
	if p.oneOff != nil {
		o = p.oneOff()
	}
	if p.run != nil {
		o.prog = p.run(req)
	}
	o.exit = make(chan int, 1)
	o.attached = make(chan struct{})
	p.mu.Lock()
	p.started = append(p.started, o)
	p.mu.Unlock()
	p.startedCh() <- o
	return o, nil
}

func (p *fakePlatform) requests() []oneoff.RunRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]oneoff.RunRequest(nil), p.reqs...)
}

// fakeOneOff records what the session did to it, in order.
type fakeOneOff struct {
	prog      program
	attachErr error
	uploadErr error         // every upload fails with it
	waitErr   error         // Wait fails with it
	waitBlock bool          // Wait blocks until its ctx ends
	input     *bytes.Buffer // when set, gets every byte written to the stream
	resized   chan string   // when set, gets each resize as it is logged

	exit     chan int
	attached chan struct{}

	mu     sync.Mutex
	events []string // "resize 80x24", "upload name=content", "attach"
}

func (o *fakeOneOff) ContainerID() string { return "fake-1" }
func (o *fakeOneOff) PipeMode() bool      { return false }

func (o *fakeOneOff) record(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *fakeOneOff) log() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

func (o *fakeOneOff) Upload(ctx context.Context, name string, size int64, r io.Reader) error {
	if o.uploadErr != nil {
		return o.uploadErr
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return err
	}
	o.record("upload " + name + "=" + string(b))
	return nil
}

func (o *fakeOneOff) Resize(ctx context.Context, cols, rows int) error {
	e := fmt.Sprintf("resize %dx%d", cols, rows)
	o.record(e)
	if o.resized != nil {
		o.resized <- e
	}
	return nil
}

func (o *fakeOneOff) Attach(ctx context.Context) (Stream, error) {
	if o.attachErr != nil {
		return nil, o.attachErr
	}
	o.record("attach")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &fakeStream{inW: inW, outR: outR}
	var in io.Reader = inR
	if o.input != nil {
		in = io.TeeReader(inR, lockedWriter{&o.mu, o.input})
	}
	close(o.attached)
	go func() {
		code := o.prog(in, outW)
		outW.Close()
		o.exit <- code
	}()
	// As the real stream: ctx bounds the whole stream.
	context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

func (o *fakeOneOff) Wait(ctx context.Context) (int, error) {
	if o.waitBlock {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if o.waitErr != nil {
		return 0, o.waitErr
	}
	select {
	case code := <-o.exit:
		o.exit <- code // a second Wait gets it too
		return code, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fakeStream joins the session to the program by two pipes.
type fakeStream struct {
	inW  *io.PipeWriter
	outR *io.PipeReader
}

func (s *fakeStream) Read(p []byte) (int, error)  { return s.outR.Read(p) }
func (s *fakeStream) Write(p []byte) (int, error) { return s.inW.Write(p) }
func (s *fakeStream) CloseWrite() error           { return s.inW.Close() }
func (s *fakeStream) Close() error {
	s.inW.CloseWithError(net.ErrClosed)
	s.outR.CloseWithError(net.ErrClosed)
	return nil
}

// testSigner is a fixed ed25519 key made from seed.
func testSigner(t *testing.T, seed byte) gossh.Signer {
	t.Helper()
	s, err := gossh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// syncBuffer is the test kit's buffer: a log sink safe for the server's
// goroutines.
type syncBuffer = testkit.Buffer

// testBridge is a bridge serving on loopback against the fake platform.
type testBridge struct {
	srv      *Server
	addr     string
	hostKey  gossh.PublicKey
	userKey  gossh.Signer
	platform *fakePlatform
	logs     *syncBuffer
}

// startBridge serves a bridge whose authorized_keys holds the test user
// key with the options opts ("" for none). up may be nil.
func startBridge(t *testing.T, cfg Config, p *fakePlatform, up *fakeUploads, opts string) *testBridge {
	t.Helper()
	return startBridgeWith(t, cfg, p, up, opts, nil)
}

// startBridgeWith is startBridge with more: with, when not nil, changes
// the server's dependencies before it starts.
func startBridgeWith(t *testing.T, cfg Config, p *fakePlatform, up *fakeUploads, opts string, with func(*Deps)) *testBridge {
	t.Helper()
	user, host := testSigner(t, 1), testSigner(t, 2)
	keys := filepath.Join(t.TempDir(), "authorized_keys")
	line := string(gossh.MarshalAuthorizedKey(user.PublicKey()))
	if opts != "" {
		line = opts + " " + line
	}
	if err := os.WriteFile(keys, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{AuthorizedKeysFile: keys, ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	deps := Deps{Platform: p, Auth: a, HostKey: host, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if up != nil {
		deps.Subsystems = map[string]SubsystemHandler{"sftp": up.ServeSFTP}
		deps.Interceptors = []Interceptor{up}
		deps.Deliverer = up
	}
	if with != nil {
		with(&deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testBridge{srv: srv, addr: ln.Addr().String(), hostKey: host.PublicKey(), userKey: user, platform: p, logs: logs}
}

// dial connects as the test user to app.
func (b *testBridge) dial(t *testing.T, app string) *gossh.Client {
	t.Helper()
	c, err := gossh.Dial("tcp", b.addr, &gossh.ClientConfig{
		User:            app,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(b.userKey)},
		HostKeyCallback: gossh.FixedHostKey(b.hostKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// result is what the client saw of one session.
type result struct {
	stdout, stderr string
	code           int
}

// run runs an exec session of command with stdin, and setup applied to the
// session before it starts.
func (b *testBridge) run(t *testing.T, app, command, stdin string, setup func(*gossh.Session)) result {
	t.Helper()
	s, err := b.dial(t, app).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errOut, bytes.NewBufferString(stdin)
	if setup != nil {
		setup(s)
	}
	code := exitCode(t, s.Run(command))
	return result{out.String(), errOut.String(), code}
}

// startExec starts an exec session of command on c, with its stdin and
// stderr as pipes.
func startExec(t *testing.T, c *gossh.Client, command string) (*gossh.Session, io.WriteCloser, io.Reader) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	in, _ := s.StdinPipe()
	errOut, _ := s.StderrPipe()
	if err := s.Start(command); err != nil {
		t.Fatal(err)
	}
	return s, in, errOut
}

// exitCode is the exit status of a session that ended with err.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitStatus()
	}
	t.Fatalf("session ended without an exit status: %v", err)
	return -1
}

// recordChannels has the server's session channels record, in order, the
// messages the session sends on them: "data", "stderr", a request's
// type, "eof" and "close" (one call of gossh.Channel is one message).
func recordChannels(b *testBridge) *frames {
	f := &frames{}
	handle := b.srv.channelHandlers["session"]
	b.srv.channelHandlers["session"] = func(srv *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
		handle(srv, conn, recordingNewChannel{nc, f}, ctx)
	}
	return f
}

type frames struct {
	mu   sync.Mutex
	list []string
}

func (f *frames) add(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.list); n > 0 && f.list[n-1] == s {
		return // consecutive writes are one entry; a second Close sends nothing
	}
	f.list = append(f.list, s)
}

func (f *frames) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}

type recordingNewChannel struct {
	gossh.NewChannel
	f *frames
}

func (nc recordingNewChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := nc.NewChannel.Accept()
	if err != nil {
		return nil, nil, err
	}
	return recordingChannel{ch, nc.f}, reqs, nil
}

type recordingChannel struct {
	gossh.Channel
	f *frames
}

func (c recordingChannel) Write(p []byte) (int, error) {
	c.f.add("data")
	return c.Channel.Write(p)
}

func (c recordingChannel) Stderr() io.ReadWriter {
	return recordingStderr{c.Channel.Stderr(), c.f}
}

func (c recordingChannel) SendRequest(name string, wantReply bool, payload []byte) (bool, error) {
	c.f.add(name)
	return c.Channel.SendRequest(name, wantReply, payload)
}

func (c recordingChannel) CloseWrite() error {
	c.f.add("eof")
	return c.Channel.CloseWrite()
}

func (c recordingChannel) Close() error {
	c.f.add("close")
	return c.Channel.Close()
}

type recordingStderr struct {
	io.ReadWriter
	f *frames
}

func (s recordingStderr) Write(p []byte) (int, error) {
	s.f.add("stderr")
	return s.ReadWriter.Write(p)
}
