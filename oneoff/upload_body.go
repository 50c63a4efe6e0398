package oneoff

import (
	"errors"
	"io"
)

// framedBody is an upload's request body: the multipart framing before
// the file, the file (exactly its announced size), the framing after.
// Read serves all of it; WriteTo lets the file's own WriteTo write
// straight to the connection (sendfile), after whatever Read already gave.
type framedBody struct {
	head, tail []byte
	src        *exactReader
}

func (b *framedBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	if !b.src.over() {
		n, err := b.src.Read(p)
		if err == io.EOF {
			err = nil
		}
		if n > 0 || err != nil || !b.src.over() {
			return n, err
		}
	}
	if len(b.tail) > 0 {
		n := copy(p, b.tail)
		b.tail = b.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

// WriteTo writes the rest of the body to w.
func (b *framedBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(b.head) > 0 {
		n, err := w.Write(b.head)
		total += int64(n)
		b.head = b.head[n:]
		if err != nil {
			return total, err
		}
	}
	n, err := b.src.writeTo(w)
	total += n
	if err != nil {
		return total, err
	}
	if len(b.tail) > 0 {
		n, err := w.Write(b.tail)
		total += int64(n)
		b.tail = b.tail[n:]
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// over reports whether the source was read to its announced end and
// checked to end there.
func (e *exactReader) over() bool { return e.left == 0 && e.checked }

// writeTo writes the rest of the source to w through the source's own
// WriteTo when it has one, held to the announced size; else through Read.
// A failure of the source is recorded in e.err, as Read does; a failure
// of w is returned only.
func (e *exactReader) writeTo(w io.Writer) (int64, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		// Only the check that nothing follows (net/http calls WriteTo
		// again once the body's length was sent, to find extra bytes).
		_, err := e.Read(nil)
		if err == io.EOF {
			err = nil
		}
		return 0, err
	}
	wt, ok := e.r.(io.WriterTo)
	if !ok {
		// Large writes, as bulkWriteConn makes them.
		return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{e}, make([]byte, bodyCopyBuffer))
	}
	cw := &cappedWriter{w: w, left: e.left}
	n, err := wt.WriteTo(cw)
	e.left -= n
	switch {
	case errors.Is(cw.err, errSourceTooLong):
		e.err = cw.err
		return n, e.err
	case cw.err != nil:
		return n, cw.err
	case err != nil:
		e.err = err
		return n, err
	case e.left > 0:
		e.err = errShortSource(e.left)
		return n, e.err
	}
	// The end: Read checks that nothing follows.
	_, err = e.Read(nil)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

var errSourceTooLong = errors.New("source is longer than its announced size")

// cappedWriter passes at most left bytes on to w, keeping w's ReadFrom
// (sendfile) for an *io.LimitedReader source, and records w's own errors
// apart from the source's.
type cappedWriter struct {
	w    io.Writer
	left int64
	err  error // w's failure, or errSourceTooLong
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		c.err = errSourceTooLong
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *cappedWriter) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	switch {
	case !ok:
		lr = &io.LimitedReader{R: r, N: c.left}
	case lr.N > c.left:
		c.err = errSourceTooLong
		return 0, c.err
	}
	// The same LimitedReader: net's sendfile looks for exactly that shape.
	n, err := io.Copy(c.w, lr)
	c.left -= n
	if err != nil {
		c.err = err
	}
	return n, err
}

// sendBody writes a request body of known length that net/http hands the
// connection (as an *io.LimitedReader of it) through the body's own
// WriteTo, so that an upload's file reaches conn's ReadFrom (sendfile)
// rather than a 32 KiB copy loop. handled is false for any other reader.
func sendBody(conn io.Writer, r io.Reader) (n int64, handled bool, err error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return 0, false, nil
	}
	wt, ok := lr.R.(io.WriterTo)
	if !ok {
		return 0, false, nil
	}
	n, err = wt.WriteTo(&cappedWriter{w: conn, left: lr.N})
	lr.N -= n
	return n, true, err
}
