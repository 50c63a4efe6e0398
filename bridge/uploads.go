package bridge

import (
	"bufio"
	"context"
	"errors"
	"io"
)

// SubsystemHandler serves one subsystem (RFC 4254 section 6.5) for
// (user, app) on the channel until the client ends it; nil means a clean
// end, and the client gets exit status 0, any other error 1. ch's Close is
// a no-op: the channel stays open for the exit status. stderr is the
// channel's extended data: sftp clients print only a status code's generic
// text, so a handler says more there.
type SubsystemHandler func(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error

// Interceptor answers some exec commands in the bridge itself, starting no
// one-off: commands about the staging area, which a one-off would empty,
// and commands a one-off cannot serve.
type Interceptor interface {
	// Intercept returns the handler of an exec command line the bridge
	// answers itself, or nil when the command goes to a one-off verbatim.
	Intercept(command string) ExecHandler
}

// InterceptorFunc is an Interceptor as a plain function.
type InterceptorFunc func(command string) ExecHandler

// Intercept calls f(command).
func (f InterceptorFunc) Intercept(command string) ExecHandler { return f(command) }

// ExecHandler answers one intercepted exec command for (user, app): rw is
// the channel (the client's stdin, the command's stdout), stderr its
// stderr. It returns the exit status sent to the client, or an error that
// ends the session as a failed one-off would (a failure's code and line;
// any other error is an internal one).
type ExecHandler func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error)

// ErrStagingUnavailable is a Deliverer's store that failed or could not be
// reached (an S3 staging area's store down): nothing was delivered, and
// what is pending stays so. The session's line says so instead of naming a
// file.
var ErrStagingUnavailable = errors.New("the upload store is unavailable")

// Deliverer hands the staging area's pending files to the next one-off of
// the same (user, app).
type Deliverer interface {
	// Deliver sends every pending file of (user, app) through send, oldest
	// first, and returns the delivery: the files stay pending until it is
	// committed. progress, which may be nil, learns of each file: sent == 0
	// before it is sent, the bytes read while it is sent, and accepted only
	// once send returned nil for it. On a failure no delivery is returned;
	// the error names the file, and its StillPending() []string method, when
	// it has one, lists every file of the delivery: all still pending.
	Deliver(ctx context.Context, user, app string,
		send func(ctx context.Context, name string, size int64, r io.Reader) error,
		progress func(name string, sent, size int64, accepted bool)) (Delivery, error)
}

// builtinInterceptors come before Deps.Interceptors: the commands no
// one-off may serve, whatever the staging area answers.
var builtinInterceptors = []Interceptor{InterceptorFunc(refuseRsyncUpload)}

// intercept asks each interceptor in turn about an exec command line, and
// returns the first handler, or nil: the command goes to a one-off.
func (s *Server) intercept(command string) ExecHandler {
	for _, ic := range s.interceptors {
		if h := ic.Intercept(command); h != nil {
			return h
		}
	}
	return nil
}

// Delivery is the pending files sent to one one-off. Exactly one of Commit
// and Release must be called; until then the next delivery of the same
// (user, app) waits, so that no file goes to two one-offs.
type Delivery interface {
	// Files names the files sent, oldest first.
	Files() []string
	// Commit removes the files from the staging area: the one-off they
	// were sent to has attached. On an error they stay pending.
	Commit() error
	// Release leaves every file pending: the one-off did not attach, so it
	// never ran the command and what it took is lost with it.
	Release()
}

func (s *Server) subsystemSupported(name string) bool {
	return s.deps.Subsystems[name] != nil
}

func (s *Server) serveSubsystem(sess *session, name string) (int, error) {
	// Buffered reads, for the small pieces the SFTP server reads a packet
	// in (its length, then its body, in as many reads as sftp.inflight
	// lets through). A body of a write (32 KiB from OpenSSH's sftp) is
	// larger than the buffer, so bufio reads most of it straight from the
	// channel rather than copying it once more.
	ch := keepOpen{Reader: bufio.NewReaderSize(sess.ch, 8<<10), Writer: sess.ch}
	if ch.conn, _ = sess.st.conn.(*coalescingConn); ch.conn != nil {
		ch.conn.HoldWhileBulk(true)
		defer ch.conn.HoldWhileBulk(false)
	}
	if err := s.deps.Subsystems[name](sess.ctx, sess.identity(), sess.app, ch, sess.ch.Stderr()); err != nil {
		if sess.ctx.Err() != nil {
			return 0, context.Cause(sess.ctx)
		}
		sess.log.Warn(name+" ended with an error", "err", err)
		return 1, nil
	}
	return 0, nil
}

// keepOpen hides Close from a subsystem's handler: the channel must stay
// open for the exit status that follows the end of the subsystem.
//
// Its Flush sends what the connection holds (coalescingConn.Flush), for an
// SFTP server whose client waits for the answer it just wrote.
type keepOpen struct {
	io.Reader
	io.Writer
	conn *coalescingConn // nil: Flush does nothing
}

func (keepOpen) Close() error { return nil }

func (k keepOpen) Flush() {
	if k.conn != nil {
		k.conn.Flush()
	}
}
