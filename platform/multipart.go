package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

// formReader reads a multipart body (RFC 2046, RFC 7578) the way
// mime/multipart's Reader does, part for part and byte for byte, but
// through one large buffer: a part's content is found with one scan of
// each buffer-full and written to its destination straight from the
// buffer (Part.WriteTo), instead of passing through a 4 KiB buffer a few
// KiB per call.
//
// It differs from mime/multipart in two ways, both limits: a line before
// or between parts may be as long as the buffer (mime/multipart fails past
// 4 KiB), and a part's header block must fit in the buffer (mime/multipart
// allows 10 MiB).
type formReader struct {
	br          *bufio.Reader
	currentPart *formPart
	partsRead   int

	nl               []byte // "\r\n" or "\n" (set after seeing the first boundary line)
	nlDashBoundary   []byte // nl + "--boundary"
	dashBoundaryDash []byte // "--boundary--"
	dashBoundary     []byte // "--boundary"
}

// formBufferSize is the read buffer of a formReader: large enough that
// each scan for the boundary and each write of content covers a lot of
// bytes.
const formBufferSize = 1 << 20

var (
	errNotMultipart      = errors.New("not a multipart body")
	errPartHeaderTooLong = errors.New("multipart: part header block too long")
)

// newFormReader reads r as a multipart body with the given boundary.
func newFormReader(r io.Reader, boundary string, size int) *formReader {
	b := []byte("\r\n--" + boundary + "--")
	return &formReader{
		br:               bufio.NewReaderSize(r, size),
		nl:               b[:2],
		nlDashBoundary:   b[:len(b)-2],
		dashBoundary:     b[2 : len(b)-2],
		dashBoundaryDash: b[2:],
	}
}

// multipartBoundary is the boundary of a multipart/form-data (or, as
// net/http's Request.MultipartReader allows, multipart/mixed) content type.
func multipartBoundary(contentType string) (string, error) {
	d, params, err := mime.ParseMediaType(contentType)
	if err != nil || (d != "multipart/form-data" && d != "multipart/mixed") {
		return "", errNotMultipart
	}
	b, ok := params["boundary"]
	if !ok || b == "" {
		return "", errNotMultipart
	}
	return b, nil
}

// formPart is one part. Its content is read with Read or, faster, WriteTo.
type formPart struct {
	Header textproto.MIMEHeader

	mr          *formReader
	qp          io.Reader // set when the content is quoted-printable: decoded
	disposition string
	dispParams  map[string]string

	// n is the number of content bytes known to be at the head of the
	// buffer, total how many were consumed, err what comes once the n
	// bytes are consumed, readErr the buffer's read error.
	n       int
	total   int64
	err     error
	readErr error
}

// FormName is the name parameter of a form-data Content-Disposition, or "".
func (p *formPart) FormName() string {
	if p.dispParams == nil {
		var err error
		p.disposition, p.dispParams, err = mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil {
			p.dispParams = map[string]string{}
		}
	}
	if p.disposition != "form-data" {
		return ""
	}
	return p.dispParams["name"]
}

// NextPart skips the rest of the current part and returns the next one;
// io.EOF after the final boundary.
func (r *formReader) NextPart() (*formPart, error) {
	if r.currentPart != nil {
		r.currentPart.Close()
	}
	if string(r.dashBoundary) == "--" {
		return nil, fmt.Errorf("multipart: boundary is empty")
	}
	expectNewPart := false
	for {
		line, err := r.br.ReadSlice('\n')
		if err == io.EOF && r.isFinalBoundary(line) {
			// A body may end without the CRLF after its final boundary.
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("multipart: NextPart: %w", err)
		}
		if r.isBoundaryDelimiterLine(line) {
			r.partsRead++
			p, err := r.newPart()
			if err != nil {
				return nil, err
			}
			r.currentPart = p
			return p, nil
		}
		if r.isFinalBoundary(line) {
			return nil, io.EOF
		}
		if expectNewPart {
			return nil, fmt.Errorf("multipart: expecting a new Part; got line %q", string(line))
		}
		if r.partsRead == 0 {
			continue // the preamble
		}
		// The content of the previous part ended at "\r\n--boundary": its
		// line ending was read with the content.
		if bytes.Equal(line, r.nl) {
			expectNewPart = true
			continue
		}
		return nil, fmt.Errorf("multipart: unexpected line in Next(): %q", line)
	}
}

func (r *formReader) newPart() (*formPart, error) {
	if err := r.headerFits(); err != nil {
		return nil, err
	}
	h, err := textproto.NewReader(r.br).ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	p := &formPart{Header: h, mr: r}
	const cte = "Content-Transfer-Encoding"
	if strings.EqualFold(h.Get(cte), "quoted-printable") {
		h.Del(cte)
		p.qp = quotedprintable.NewReader(partContent{p})
	}
	return p, nil
}

// headerFits checks that the part's header block, up to its blank line,
// is in the buffer, so that reading it takes no more memory than that.
func (r *formReader) headerFits() error {
	for {
		buf, _ := r.br.Peek(r.br.Buffered())
		if len(buf) > 0 && (buf[0] == '\n' || bytes.HasPrefix(buf, []byte("\r\n"))) {
			return nil // no header lines
		}
		if bytes.Contains(buf, []byte("\n\n")) || bytes.Contains(buf, []byte("\n\r\n")) {
			return nil
		}
		if len(buf) == r.br.Size() {
			return errPartHeaderTooLong
		}
		if _, err := r.br.Peek(len(buf) + 1); err != nil {
			return nil // textproto reports the early end as such
		}
	}
}

func (r *formReader) isFinalBoundary(line []byte) bool {
	if !bytes.HasPrefix(line, r.dashBoundaryDash) {
		return false
	}
	rest := skipLWSPChar(line[len(r.dashBoundaryDash):])
	return len(rest) == 0 || bytes.Equal(rest, r.nl)
}

func (r *formReader) isBoundaryDelimiterLine(line []byte) bool {
	if !bytes.HasPrefix(line, r.dashBoundary) {
		return false
	}
	rest := skipLWSPChar(line[len(r.dashBoundary):])
	// A body whose first boundary line ends in a bare "\n" uses "\n"
	// throughout, as mime/multipart accepts.
	if r.partsRead == 0 && len(rest) == 1 && rest[0] == '\n' {
		r.nl = r.nl[1:]
		r.nlDashBoundary = r.nlDashBoundary[1:]
	}
	return bytes.Equal(rest, r.nl)
}

func skipLWSPChar(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// Read reads the part's content (decoded when quoted-printable).
func (p *formPart) Read(d []byte) (int, error) {
	if p.qp != nil {
		return p.qp.Read(d)
	}
	return p.readContent(d)
}

// WriteTo writes the rest of the part's content to w, straight from the
// read buffer, each write as large as what the buffer holds of it.
func (p *formPart) WriteTo(w io.Writer) (int64, error) {
	if p.qp != nil {
		return io.Copy(w, struct{ io.Reader }{p.qp})
	}
	br := p.mr.br
	var written int64
	for {
		if err := p.scan(true); err != nil {
			if err == io.EOF {
				err = nil
			}
			return written, err
		}
		buf, _ := br.Peek(p.n)
		m, err := w.Write(buf)
		br.Discard(m)
		p.consumed(m)
		written += int64(m)
		if err != nil {
			return written, err
		}
		if m < len(buf) {
			return written, io.ErrShortWrite
		}
	}
}

// Close skips the rest of the part.
func (p *formPart) Close() error {
	if p.qp != nil {
		_, err := io.Copy(io.Discard, struct{ io.Reader }{p.qp})
		return err
	}
	_, err := p.WriteTo(io.Discard)
	return err
}

// partContent is the raw content of a part, under a quoted-printable decoder.
type partContent struct{ p *formPart }

func (c partContent) Read(d []byte) (int, error) { return c.p.readContent(d) }

func (p *formPart) readContent(d []byte) (int, error) {
	if err := p.scan(false); err != nil {
		return 0, err
	}
	n, _ := p.mr.br.Read(d[:min(len(d), p.n)])
	p.consumed(n)
	if p.n == 0 && p.err != nil {
		return n, p.err
	}
	return n, nil
}

func (p *formPart) consumed(n int) {
	p.total += int64(n)
	p.n -= n
}

// scan finds how many bytes at the head of the buffer are content (p.n),
// reading more when it cannot tell. It returns nil while content is
// available, then io.EOF at the part's end or the error that cut it short.
// With fill, a buffer less than half full is filled first, so that the
// content comes in large pieces.
func (p *formPart) scan(fill bool) error {
	br := p.mr.br
	for p.n == 0 && p.err == nil {
		if fill && p.readErr == nil && br.Buffered() < br.Size()/2 {
			if _, err := br.Peek(br.Size()); err != nil && err != bufio.ErrBufferFull {
				p.readErr = readErr(err)
			}
		}
		peek, _ := br.Peek(br.Buffered())
		p.n, p.err = scanUntilBoundary(peek, p.mr.dashBoundary, p.mr.nlDashBoundary, p.total, p.readErr)
		if p.n == 0 && p.err == nil {
			if _, err := br.Peek(len(peek) + 1); err != nil {
				p.readErr = readErr(err)
			}
		}
	}
	if p.n == 0 {
		return p.err
	}
	return nil
}

// readErr is a read error of the body inside a part: its end is early.
func readErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// scanUntilBoundary scans buf to identify how much of it can be safely
// returned as part of the Part body, as mime/multipart does. dashBoundary
// is "--boundary". nlDashBoundary is "\r\n--boundary" or "\n--boundary",
// depending on what mode we are in. The comments in mime/multipart explain
// the details. The return values are the number of bytes of buf that are
// content and the error to give once they are consumed (nil, io.EOF at the
// part's end, or readErr).
func scanUntilBoundary(buf, dashBoundary, nlDashBoundary []byte, total int64, readErr error) (int, error) {
	if total == 0 {
		// At the start of the content: a boundary right away means empty
		// content.
		if bytes.HasPrefix(buf, dashBoundary) {
			switch matchAfterPrefix(buf, dashBoundary, readErr) {
			case -1:
				return len(dashBoundary), nil
			case 0:
				return 0, nil
			case +1:
				return 0, io.EOF
			}
		}
		if bytes.HasPrefix(dashBoundary, buf) {
			return 0, readErr
		}
	}
	if i := bytes.Index(buf, nlDashBoundary); i >= 0 {
		switch matchAfterPrefix(buf[i:], nlDashBoundary, readErr) {
		case -1:
			return i + len(nlDashBoundary), nil
		case 0:
			return i, nil
		case +1:
			return i, io.EOF
		}
	}
	if bytes.HasPrefix(nlDashBoundary, buf) {
		return 0, readErr
	}
	// Keep back a tail that may be the start of a boundary split across
	// reads.
	i := bytes.LastIndexByte(buf, nlDashBoundary[0])
	if i >= 0 && bytes.HasPrefix(nlDashBoundary, buf[i:]) {
		return i, nil
	}
	return len(buf), readErr
}

// matchAfterPrefix checks whether buf, which starts with prefix (a
// boundary), really is a boundary: +1 if so, -1 if not (the boundary is
// followed by more characters), 0 if it cannot tell yet.
func matchAfterPrefix(buf, prefix []byte, readErr error) int {
	if len(buf) == len(prefix) {
		if readErr != nil {
			return +1
		}
		return 0
	}
	c := buf[len(prefix)]
	if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
		return +1
	}
	// "--boundary--" is the final boundary.
	if c == '-' {
		if len(buf) == len(prefix)+1 {
			if readErr != nil {
				return -1
			}
			return 0
		}
		if buf[len(prefix)+1] == '-' {
			return +1
		}
	}
	return -1
}
