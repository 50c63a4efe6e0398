package platform

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
)

// spliceMin is the smallest body an upload is spliced for: below it, the
// connection kept alive for the next request is worth more than the copy.
const spliceMin = 1 << 20

// spliceTail is how much of the end of a spliced body is read through
// user space: the end of the file's content, where the closing delimiter
// is looked for, and whatever follows it.
const spliceTail = minFormBuffer

// spliceable says whether an upload may go by splice(2) from the
// connection into the file: a plain HTTP/1.x body of known length, large
// enough, sent without waiting for 100-continue.
func spliceable(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.TLS == nil && r.ContentLength >= spliceMin &&
		len(r.TransferEncoding) == 0 && r.Header.Get("Expect") == ""
}

// spliceUpload receives an upload whose first part is a file by taking
// the connection over from net/http: the part's header is parsed from the
// start of the body, and the file's content goes from the socket into the
// file by splice(2) ((*os.File).ReadFrom of the TCP connection), all but
// its last spliceTail bytes, which are read as usual: the closing
// delimiter is looked for there, and any part after it is saved as the
// generic path does. The bytes spliced are not looked at: a delimiter
// among them (a second part before the last 64 KiB of a body) stays in
// the first file; PROTOCOL.md's requests carry one file each. The answer
// is written on the connection, which is then closed (the next request
// opens another). It returns false, having taken nothing, when the
// connection cannot be taken over.
func (p *Platform) spliceUpload(w http.ResponseWriter, r *http.Request, o *oneOff, boundary string, limit int64) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	// The server no longer counts this request: Shutdown waits for it here.
	p.sessions.Add(1)
	defer p.sessions.Done()
	res := &connResponse{header: http.Header{}}
	// net/http's buffered reader may hold the start of the body.
	prefix, _ := brw.Reader.Peek(brw.Reader.Buffered())
	src := &io.LimitedReader{R: io.MultiReader(bytes.NewReader(bytes.Clone(prefix)), conn), N: r.ContentLength}
	head := bufio.NewReaderSize(src, minFormBuffer)
	p.receiveSpliced(res, o, conn, src, head, boundary, limit)
	res.send(conn)
	return true
}

// receiveSpliced saves the body read from head (over src, itself over
// conn) and records the answer in w.
func (p *Platform) receiveSpliced(w http.ResponseWriter, o *oneOff, conn io.Reader, src *io.LimitedReader, head *bufio.Reader, boundary string, limit int64) {
	generic := func() {
		p.saveParts(w, newFormReader(head, boundary, formBufferSize), o, limit, 0)
	}
	peek, _ := head.Peek(head.Size())
	name, n, ok := firstFilePart(peek, boundary)
	if !ok {
		generic() // nothing consumed yet
		return
	}
	if err := checkUploadName(name); err != nil {
		writeFieldErrors(w, "filename", err.Error())
		return
	}
	_, _ = head.Discard(n)
	delim := []byte("\r\n--" + boundary)
	var rest []byte
	err := p.writeUpload(o, name, func(f *os.File) error {
		out := &capWriter{w: f, left: limit}
		// The content: what head holds, then the socket straight into the
		// file, then the end through user space.
		bulk := int64(head.Buffered()) + src.N - spliceTail
		buffered, _ := head.Peek(head.Buffered())
		if _, err := out.Write(buffered); err != nil {
			return err
		}
		_, _ = head.Discard(len(buffered))
		bulk = max(bulk-int64(len(buffered)), 0)
		if bulk > out.left {
			return errTooLarge
		}
		spliced, err := f.ReadFrom(&io.LimitedReader{R: conn, N: bulk})
		src.N -= spliced
		out.left -= spliced
		if err != nil {
			return err
		}
		if spliced < bulk {
			return io.ErrUnexpectedEOF
		}
		end, err := io.ReadAll(head)
		if err != nil {
			return err
		}
		i := bytes.Index(end, delim)
		if i < 0 {
			return errNoDelimiter
		}
		if _, err := out.Write(end[:i]); err != nil {
			return err
		}
		rest = end[i+2:] // from "--boundary"
		return nil
	})
	if err != nil {
		p.uploadFailed(w, o, err, limit)
		return
	}
	if bytes.HasPrefix(rest, []byte("--"+boundary+"--")) {
		w.WriteHeader(http.StatusOK)
		return
	}
	// More parts follow: the generic path takes them, this file counted.
	p.saveParts(w, newFormReader(bytes.NewReader(rest), boundary, minFormBuffer), o, limit, 1)
}

var errNoDelimiter = fmt.Errorf("multipart: %w", io.ErrUnexpectedEOF)

// firstFilePart parses the start of a body, as mime/multipart would, when
// it is exactly a `file` part's opening: "--boundary" CRLF, a header block
// whose Content-Disposition names the form field "file" with a filename
// and which asks for no transfer encoding, then a blank line. It returns
// the filename as sent and the length of that opening; ok is false for
// anything else (a preamble, another field first, a header block that
// does not fit), which the generic path then reads.
func firstFilePart(b []byte, boundary string) (name string, n int, ok bool) {
	open := "--" + boundary + "\r\n"
	if !bytes.HasPrefix(b, []byte(open)) {
		return "", 0, false
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < len(open)-2 {
		return "", 0, false
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(b[len(open) : end+4]))).ReadMIMEHeader()
	if err != nil {
		return "", 0, false
	}
	if cte := hdr.Get("Content-Transfer-Encoding"); cte != "" && !strings.EqualFold(cte, "binary") {
		return "", 0, false
	}
	disp, params, err := mime.ParseMediaType(hdr.Get("Content-Disposition"))
	if err != nil || disp != "form-data" || params["name"] != "file" {
		return "", 0, false
	}
	return params["filename"], end + 4, true
}

// connResponse records the answer to a request whose connection was taken
// over, for send to write as HTTP/1.1 with Connection: close.
type connResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *connResponse) Header() http.Header { return c.header }

func (c *connResponse) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (c *connResponse) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

func (c *connResponse) send(w io.Writer) {
	c.WriteHeader(http.StatusOK)
	c.header.Set("Content-Length", strconv.Itoa(c.body.Len()))
	c.header.Set("Connection", "close")
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", c.code, http.StatusText(c.code))
	_ = c.header.Write(bw)
	bw.WriteString("\r\n")
	bw.Write(c.body.Bytes())
	_ = bw.Flush()
}
