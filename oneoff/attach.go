package oneoff

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Attach connects to the one-off: CONNECT on the attach URL, answer 200,
// then one raw byte stream both ways. ctx bounds the whole stream, not only
// its opening: when ctx ends the stream is closed (and the platform kills
// the one-off). A refusal is ErrAttachRefused. A terminal size the platform
// refused before attach (see Resize) is sent before Attach returns.
func (o *OneOff) Attach(ctx context.Context) (*Stream, error) {
	const op = "attach"
	tok, err := o.c.bearer(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := o.c.dialAttach(ctx, o.attach)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*Stream, error) {
		stop()
		conn.Close()
		return nil, err
	}
	// A server that accepts the connection but never answers must not
	// hold the caller forever.
	conn.SetDeadline(time.Now().Add(requestTimeout))

	// net/http's client cannot send CONNECT with a path target: written by hand.
	line := "CONNECT " + requestTarget(o.attach) + " HTTP/1.1\r\n" +
		"Host: " + o.attach.Host + "\r\n" +
		"Authorization: " + basicAuth(tok) + "\r\n" +
		"User-Agent: " + userAgent + "\r\n\r\n"
	if _, err := io.WriteString(conn, line); err != nil {
		return fail(transportError(ctx, op, err))
	}
	// The stream is read through this same reader: bytes the server sent
	// right after the headers are already in its buffer.
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if ctx.Err() != nil || isConnError(err) {
			return fail(transportError(ctx, op, err))
		}
		return fail(malformed(op, 0, "not an HTTP answer", err))
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		return fail(&APIError{Op: op, Status: resp.StatusCode, Message: errorMessage(body),
			Kind: statusKind(svcAttach, resp.StatusCode)})
	}
	conn.SetDeadline(time.Time{})
	o.c.log.Debug("one-off attached", "container", o.containerID, "pipe", o.pipe)
	o.resendEarlySize(ctx)
	return &Stream{conn: conn, r: br, pipe: o.pipe, ctx: ctx, stop: stop}, nil
}

// isConnError tells a broken or silent connection from a garbled answer.
func isConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// dialAttach opens the TCP connection to the attach service, with TLS when
// the scheme is https.
func (c *Client) dialAttach(ctx context.Context, u *url.URL) (net.Conn, error) {
	const op = "attach"
	raw, err := c.dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, transportError(ctx, op, err)
	}
	if u.Scheme != "https" {
		return raw, nil
	}
	cfg := &tls.Config{}
	if c.tls != nil {
		cfg = c.tls.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	// The stream is HTTP/1.1 CONNECT; h2 must not be negotiated.
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, transportError(ctx, op, fmt.Errorf("tls: %w", timedOut(ctx, hctx, dialTimeout, err)))
	}
	return tc, nil
}

// Stream is an attached one-off: what is written is the process's stdin,
// what is read its stdout and stderr, merged. Read and Write may be used
// from different goroutines.
type Stream struct {
	conn      net.Conn
	r         *bufio.Reader // the reader that parsed the 200
	pipe      bool
	ctx       context.Context
	stop      func() bool
	closed    atomic.Bool
	closeOnce sync.Once
}

// Read returns output; io.EOF when the server closed the stream (the
// process exited and its output was drained, or the platform dropped it:
// Wait tells which).
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	return n, s.wrap(err)
}

// Write sends input.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.conn.Write(p)
	return n, s.wrap(err)
}

// CloseWrite signals the end of input. Terminal mode: the byte 0x04, which
// the terminal reads as end of file at the start of a line (after a partial
// line it only flushes that line, as on any terminal); further writes still
// work. Pipe mode: a TCP (or TLS) half-close; the output keeps coming.
func (s *Stream) CloseWrite() error {
	if !s.pipe {
		_, err := s.conn.Write([]byte{0x04})
		return s.wrap(err)
	}
	cw, ok := s.conn.(interface{ CloseWrite() error })
	if !ok {
		return &APIError{Op: "attach stream", Kind: ErrUnreachable, Err: errors.New("connection cannot half-close")}
	}
	return s.wrap(cw.CloseWrite())
}

// Close ends the stream both ways; the platform kills a one-off whose
// stream is closed. It may be called more than once.
//
// The connection is reset rather than closed with a FIN: after a pipe-mode
// half-close the platform has already read its EOF, and only a reset tells
// it that the client is gone, not merely done sending.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stop()
		raw := s.conn
		if tc, ok := raw.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		if tc, ok := raw.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		if e := s.conn.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	})
	return err
}

func (s *Stream) wrap(err error) error {
	switch {
	case err == nil || err == io.EOF:
		return err
	case s.ctx.Err() != nil:
		return fmt.Errorf("attach stream: %w", context.Cause(s.ctx))
	case s.closed.Load():
		return fmt.Errorf("attach stream: %w", net.ErrClosed)
	}
	return &APIError{Op: "attach stream", Kind: ErrUnreachable, Err: err}
}
