package bridge

import (
	"context"
	"io"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// Platform is the part of the one-off container API the bridge uses: the
// consumer's view, so that a session runs against any backend (the one-off
// API client through ClientPlatform, or a fake in tests).
type Platform interface {
	// Start asks for a one-off container and returns it once it is ready to
	// take uploads and an attach. Its errors are classified by the kinds of
	// package oneoff (oneoff.ErrAppNotFound, ...), matched with errors.Is;
	// any other error ends the session with ExitInternal.
	Start(ctx context.Context, req oneoff.RunRequest) (OneOff, error)
}

// OneOff is a started one-off container as a session drives it, in this
// order: Resize (pty sessions only, may come before Attach), Upload of each
// pending file, Attach, Resize again on window changes, then Wait once the
// output ended. Its methods may be called from several goroutines.
type OneOff interface {
	// ContainerID is the platform's id of the container, for the log; ""
	// if it gave none.
	ContainerID() string
	// PipeMode is true when the stream carries plain bytes and stdin's EOF
	// is a half-close; false on a terminal. For the log.
	PipeMode() bool
	// Upload sends one pending file of exactly size bytes from r, before
	// Attach; a refusal wraps oneoff.ErrUploadRefused.
	Upload(ctx context.Context, name string, size int64, r io.Reader) error
	// Attach opens the byte stream to the command, which starts with it.
	// ctx bounds the whole stream: when ctx ends, the stream is closed.
	Attach(ctx context.Context) (Stream, error)
	// Resize tells the terminal its size in columns and rows; a side of
	// zero or less is not sent.
	Resize(ctx context.Context, cols, rows int) error
	// Wait returns the command's exit code once it ended; an inactivity
	// kill wraps oneoff.ErrInactivity. Only ctx bounds it.
	Wait(ctx context.Context) (int, error)
}

// Stream is the attach stream of a one-off: Read returns the command's
// output (io.EOF once it ended and was drained), Write sends its input.
type Stream interface {
	io.ReadWriteCloser
	// CloseWrite ends the input: a half-close in pipe mode, ^D on a
	// terminal. Output keeps coming.
	CloseWrite() error
}

// ClientPlatform is the one-off API client c as a Platform.
func ClientPlatform(c *oneoff.Client) Platform { return clientPlatform{c} }

type clientPlatform struct{ c *oneoff.Client }

func (p clientPlatform) Start(ctx context.Context, req oneoff.RunRequest) (OneOff, error) {
	o, err := p.c.Start(ctx, req)
	if err != nil {
		// Not a nil *oneoff.OneOff in a non-nil interface.
		return nil, err
	}
	return clientOneOff{o}, nil
}

// clientOneOff returns the attach stream as a Stream; the rest is
// oneoff.OneOff's own.
type clientOneOff struct{ *oneoff.OneOff }

func (o clientOneOff) Attach(ctx context.Context) (Stream, error) {
	s, err := o.OneOff.Attach(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var (
	_ OneOff = clientOneOff{}
	_ Stream = (*oneoff.Stream)(nil)
)

// Authenticator decides who may connect; the grant it leaves in the
// connection's context decides what the session may do.
type Authenticator interface {
	PublicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool
	// VerifiedPublicKeyCallback runs once the client proved it holds the
	// key: the check that the grant in force is that key's.
	VerifiedPublicKeyCallback(ctx ssh.Context) func(gossh.ConnMetadata, gossh.PublicKey, *gossh.Permissions, string) (*gossh.Permissions, error)
}
