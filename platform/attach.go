package platform

import (
	"net/http"
	"strings"
	"time"

	"github.com/creack/pty"
)

// serveAttachService serves the attach URLs /<token>, /<token>/files and
// /<token>/wait, all behind Basic ":"+bearer token.
func (p *Platform) serveAttachService(w http.ResponseWriter, r *http.Request) {
	token, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if p.tokens.verify(basicPassword(r)) != nil {
		writeUnauthorized(w)
		return
	}
	o := p.byAttachToken(token)
	if o == nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	switch {
	case sub == "" && r.Method == http.MethodConnect:
		p.handleAttach(w, o)
	case sub == "" && r.Method == http.MethodPut:
		p.handleResize(w, r, o)
	case sub == "files" && r.Method == http.MethodPost:
		p.handleUpload(w, r, o)
	case sub == "wait" && r.Method == http.MethodGet:
		p.handleWait(w, r, o)
	case sub == "" || sub == "files" || sub == "wait":
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

// cliReaderSize is the buffer of the reader Scalingo's CLI parses the
// CONNECT answer with: bufio.NewReader's default, 4096 bytes.
const cliReaderSize = 4096

// attachOK is the whole answer to CONNECT: 200, padded with one header so
// that it is exactly cliReaderSize bytes long, written in one write before
// any output.
//
// Scalingo's CLI reads the answer with http.ReadResponse through
// bufio.NewReader(conn), then reads the raw conn: whatever that reader took
// from the socket beyond the answer is lost, and a short answer followed at
// once by output lost the command's first line. A read into a 4096-byte
// buffer returns at most 4096 bytes, so once the whole answer is in the
// socket, the reader's first read returns exactly the answer, whatever
// output is queued behind it; net/http then finds every line of it in the
// buffer and reads nothing more (no body is read for this answer: it has no
// Content-Length, and the CLI closes it only at its end). The answer is in
// the socket whole when it arrives in one segment, as one write of 4 KiB
// does on loopback and on any path whose MSS is at least that: sure there,
// and free (no delay; the bridge, which keeps reading from the reader it
// parsed the answer with, reads 4 KiB more once per session). Over smaller
// segments a first read may return part of the answer, and only the order
// of arrival protects the output, as it did the short answer.
var attachOK = func() string {
	const head, tail = "HTTP/1.1 200 OK\r\nX-Attach-Padding: ", "\r\n\r\n"
	return head + strings.Repeat("0", cliReaderSize-len(head)-len(tail)) + tail
}()

// handleAttach starts the process (uploads are in place by then), answers
// 200 and turns the connection into the one-off's raw stream. A second
// attach is refused with 409, an ended one-off with 410.
func (p *Platform) handleAttach(w http.ResponseWriter, o *oneOff) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusInternalServerError, "attach needs HTTP/1.1")
		return
	}
	o.mu.Lock()
	switch {
	case o.attached:
		o.mu.Unlock()
		writeError(w, http.StatusConflict, "this one-off container is already attached")
		return
	case o.reason != endNone:
		o.mu.Unlock()
		writeError(w, http.StatusGone, "this one-off container has ended")
		return
	}
	o.attached = true
	if o.attachTimer != nil {
		o.attachTimer.Stop()
	}
	spec := startSpec{command: o.command, env: o.env, dir: o.dir, lock: o.lock, tty: o.tty}
	o.mu.Unlock()

	o.uploads.Wait()
	o.mu.Lock()
	spec.width, spec.height = o.width, o.height // the last size given before the start
	o.mu.Unlock()
	proc, err := p.runner.start(spec)
	if err != nil {
		o.log.Error("start one-off", "err", err)
		o.end(endStartFailed)
		writeError(w, http.StatusInternalServerError, "could not start the one-off container")
		return
	}
	o.mu.Lock()
	o.proc = proc
	killed := o.killedLocked()
	// A resize that came while the process started found no terminal.
	resized := spec.tty && (o.width != spec.width || o.height != spec.height)
	width, height := o.width, o.height
	o.mu.Unlock()
	if resized {
		_ = pty.Setsize(proc.pty, &pty.Winsize{Cols: width, Rows: height})
	}
	if killed { // while starting, by Shutdown
		proc.kill()
		<-proc.done
		proc.closeAll()
		writeError(w, http.StatusGone, "this one-off container has ended")
		return
	}
	go func() {
		<-proc.done
		o.finish(proc.code)
	}()
	if p.hookAfterStart != nil {
		p.hookAfterStart(proc)
	}

	conn, brw, err := hj.Hijack()
	if err != nil {
		o.log.Warn("attach: hijack", "err", err)
		o.end(endClientGone)
		proc.closeAll()
		return
	}
	_ = conn.SetDeadline(time.Time{}) // the server's header deadline no longer applies
	o.mu.Lock()
	o.conn = conn
	killed = o.killedLocked()
	o.mu.Unlock()
	if _, err := conn.Write([]byte(attachOK)); err != nil || killed {
		o.end(endClientGone)
		_ = conn.Close()
		proc.closeAll()
		return
	}
	o.log.Info("one-off attached")
	o.watchIdle(p.cfg.InactivityTimeout)
	p.sessions.Add(1)
	go o.stream(proc, conn, brw.Reader)
}
