package oneoff

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Upload sends one file to the one-off's /tmp/uploads: POST {attach}/files,
// multipart/form-data with the single part "file". name may be a relative
// path ("dir/sub/f"); the platform decides whether it is acceptable. r must
// yield exactly size bytes: the body is streamed from r with its exact
// length announced, never buffered whole. When r is an io.WriterTo whose
// WriteTo hands an *os.File to io.Copy (the staging area's files do), a
// plain-HTTP upload sends the file with sendfile(2), the multipart framing
// written around it (bulkWriteConn); over TLS the bytes go through user
// space. Only before Attach.
//
// A refusal is ErrUploadRefused; a failure to read r is returned wrapping
// r's error, with no Kind.
func (o *OneOff) Upload(ctx context.Context, name string, size int64, r io.Reader) error {
	const op = "upload"
	// The name goes into a MIME header: a line break would forge headers.
	if name == "" || strings.ContainsAny(name, "\r\n") {
		return &APIError{Op: op, Kind: ErrUploadRefused, Message: fmt.Sprintf("invalid file name %q", name)}
	}
	if size < 0 {
		return &APIError{Op: op, Kind: ErrUploadRefused, Message: "negative size"}
	}
	head, tail, contentType, err := multipartFrame(name)
	if err != nil {
		return &APIError{Op: op, Kind: ErrUploadRefused, Err: err}
	}
	tok, err := o.c.bearer(ctx)
	if err != nil {
		return err
	}
	src := &exactReader{r: r, left: size}
	a, err := o.c.send(ctx, request{
		op:          op,
		svc:         svcUpload,
		method:      "POST",
		url:         subURL(o.attach, "/files"),
		auth:        basicAuth(tok),
		contentType: contentType,
		body:        &framedBody{head: head, src: src, tail: tail},
		length:      int64(len(head)) + size + int64(len(tail)),
	})
	if src.err != nil {
		return fmt.Errorf("upload %s: %w", name, src.err)
	}
	if err != nil {
		return err
	}
	if a.status != 200 {
		return apiErrorOf(op, svcUpload, a)
	}
	return nil
}

// multipartFrame returns the bytes before and after the file's content in a
// one-part multipart body, so that its length is known before sending.
func multipartFrame(name string) (head, tail []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+escapeQuotes(name)+`"`)
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// escapeQuotes escapes a filename as mime/multipart's CreateFormFile does.
func escapeQuotes(s string) string {
	return strings.NewReplacer("\\", "\\\\", `"`, "\\\"").Replace(s)
}

// exactReader yields exactly left bytes of r and records why it could not:
// a short or long source would otherwise truncate the file silently or
// break the announced Content-Length.
type exactReader struct {
	r       io.Reader
	left    int64
	err     error
	checked bool // read to its end, and nothing followed
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if e.checked {
			return 0, io.EOF
		}
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			e.err = errSourceTooLong
			return 0, e.err
		}
		e.checked = true
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = errShortSource(e.left)
		return n, e.err
	case err != nil && err != io.EOF:
		e.err = err
		return n, err
	}
	return n, nil
}

func errShortSource(left int64) error {
	return fmt.Errorf("source ended %d bytes short of its announced size: %w", left, io.ErrUnexpectedEOF)
}
