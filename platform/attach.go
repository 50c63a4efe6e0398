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

// attachOK is the whole answer to CONNECT, written and sent before any
// output: Scalingo's CLI drops bytes that arrive in the same read.
const attachOK = "HTTP/1.1 200 OK\r\n\r\n"

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
	spec := startSpec{command: o.command, env: o.env, dir: o.dir, lock: o.lock, tty: o.tty, width: o.width, height: o.height}
	o.mu.Unlock()

	o.uploads.Wait()
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
