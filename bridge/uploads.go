package bridge

import (
	"bufio"
	"context"
	"io"
)

// Uploads is the staging area as the SSH side sees it: files arrive by SFTP
// or legacy scp and leave, before attach, for the next one-off of the same
// (user, app).
type Uploads interface {
	// ServeSFTP serves the SFTP subsystem on the channel until the client
	// ends it; nil means a clean end.
	// stderr gets one line per refused upload: sftp clients print only a
	// status code's generic text.
	ServeSFTP(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error
	// The staging area answers the exec commands that work on it: legacy
	// scp's server side (scp -t, scp -f), so that the image needs no scp,
	// and the probes SFTP tools send about the files they uploaded.
	Interceptor
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

// Interceptor answers some exec commands in the bridge itself, starting no
// one-off: commands about the staging area, which a one-off would empty.
type Interceptor interface {
	// Intercept returns the handler of an exec command line the bridge
	// answers itself, or nil when the command goes to a one-off verbatim.
	Intercept(command string) ExecHandler
}

// ExecHandler answers one intercepted exec command for (user, app): rw is
// the channel (the client's stdin, the command's stdout), stderr its
// stderr. It returns the exit status sent to the client.
type ExecHandler func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) int

// intercept asks each interceptor in turn about an exec command line, and
// returns the first handler, or nil: the command goes to a one-off.
func (s *Server) intercept(command string) ExecHandler {
	var list []Interceptor
	if s.deps.Uploads != nil {
		list = append(list, s.deps.Uploads)
	}
	for _, ic := range list {
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
	return name == "sftp" && s.deps.Uploads != nil
}

func (s *Server) serveSubsystem(sess *session, name string) (int, error) {
	// Buffered reads: x/crypto sends a window adjustment for every read of
	// a channel, and the SFTP server reads each packet in two small pieces.
	ch := keepOpen{bufio.NewReaderSize(sess.ch, 64<<10), sess.ch}
	if err := s.deps.Uploads.ServeSFTP(sess.ctx, sess.identity(), sess.app, ch, sess.ch.Stderr()); err != nil {
		if sess.ctx.Err() != nil {
			return 0, context.Cause(sess.ctx)
		}
		sess.log.Warn("sftp ended with an error", "err", err)
		return 1, nil
	}
	return 0, nil
}

// keepOpen hides Close from the SFTP server: the channel must stay open for
// the exit status that follows the end of the subsystem.
type keepOpen struct {
	io.Reader
	io.Writer
}

func (keepOpen) Close() error { return nil }
