// Package audit writes the bridge's audit stream: one JSON object per
// line for each connection, authentication, session, staged file and
// forward, with stable event names and fields (README: "Operations:
// metrics, health, audit"). A Log is a bridge.Observer.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"sshbridge/bridge"
)

// Log writes audit lines to one writer, each with a single Write, so that
// lines from several goroutines (and, on a file opened with O_APPEND,
// several processes) never interleave.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer // nil for stderr
	now func() time.Time
	// errOnce: a failed write is reported once, on stderr.
	errOnce sync.Once
}

var _ bridge.Observer = (*Log)(nil)

// Open opens the audit stream at path: "-" is standard error; a file is
// created (mode 0600) or appended to, opened with O_APPEND. Its error is
// os.OpenFile's.
func Open(path string) (*Log, error) {
	if path == "-" {
		return New(os.Stderr), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l := New(f)
	l.c = f
	return l, nil
}

// New writes the audit stream to w.
func New(w io.Writer) *Log { return &Log{w: w, now: time.Now} }

// Close closes the file Open opened; nothing for standard error.
func (l *Log) Close() error {
	if l.c == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Close()
}

// line is one event's fields in order; a field whose value is nil is
// left out.
type line struct {
	b bytes.Buffer
}

func (l *Log) start(event string) *line {
	ln := &line{}
	ln.b.WriteString(`{"time":`)
	ln.value(l.now().UTC().Format(time.RFC3339Nano))
	ln.b.WriteString(`,"event":`)
	ln.value(event)
	return ln
}

func (ln *line) value(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	ln.b.Write(b)
}

// f adds the field name with value v.
func (ln *line) f(name string, v any) *line {
	ln.b.WriteString(`,"`)
	ln.b.WriteString(name)
	ln.b.WriteString(`":`)
	ln.value(v)
	return ln
}

// s adds a string field unless it is "".
func (ln *line) s(name, v string) *line {
	if v == "" {
		return ln
	}
	return ln.f(name, v)
}

func (l *Log) write(ln *line) {
	ln.b.WriteString("}\n")
	l.mu.Lock()
	_, err := l.w.Write(ln.b.Bytes())
	l.mu.Unlock()
	if err != nil {
		l.errOnce.Do(func() { fmt.Fprintf(os.Stderr, "audit log: write failed, lines are being lost: %v\n", err) })
	}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// Connection writes "connection": action "open" or "close".
func (l *Log) Connection(e bridge.ConnectionEvent) {
	ln := l.start("connection").f("action", e.Phase).s("conn", e.ConnID).s("remote", e.Remote)
	if e.Phase == "close" {
		ln.f("outcome", e.Outcome)
		if e.ConnID != "" {
			ln.f("duration_ms", ms(e.Duration))
		}
	}
	l.write(ln)
}

// Auth writes "auth": result "ok" or "fail".
func (l *Log) Auth(e bridge.AuthEvent) {
	result := "fail"
	if e.OK {
		result = "ok"
	}
	ln := l.start("auth").f("result", result).s("conn", e.ConnID).s("remote", e.Remote).f("method", e.Method).
		f("ssh_user", e.User).f("app", e.App).s("fingerprint", e.Fingerprint).s("user", e.Identity).
		s("reason", e.Reason).s("detail", e.Detail)
	l.write(ln)
}

func (l *Log) session(event string, e bridge.SessionEvent) *line {
	return l.start(event).s("conn", e.ConnID).f("user", e.User).f("app", e.App).f("kind", e.Kind).f("mode", e.Mode)
}

// SessionStart writes "session_start".
func (l *Log) SessionStart(e bridge.SessionEvent) { l.write(l.session("session_start", e)) }

// SessionEnd writes "session_end".
func (l *Log) SessionEnd(e bridge.SessionEvent) {
	ln := l.session("session_end", e)
	if e.ExitCode >= 0 {
		ln.f("exit_code", e.ExitCode)
	}
	ln.f("outcome", e.Outcome).f("bytes_in", e.BytesIn).f("bytes_out", e.BytesOut).f("duration_ms", ms(e.Duration))
	l.write(ln)
}

// StartPhase writes nothing: it is for metrics.
func (l *Log) StartPhase(string, time.Duration) {}

// Upload writes "upload_staged", "upload_delivered", "upload_refused" or
// "upload_expired".
func (l *Log) Upload(e bridge.UploadEvent) {
	ln := l.start("upload_"+e.Event).s("user", e.User).s("app", e.App).s("name", e.Name).f("size", e.Size).s("reason", e.Reason)
	if e.Event == "delivered" {
		ln.f("duration_ms", ms(e.Duration))
	}
	l.write(ln)
}

// Forward writes "forward_opened" or "forward_refused".
func (l *Log) Forward(e bridge.ForwardEvent) {
	ln := l.start("forward_"+e.Outcome).s("conn", e.ConnID).s("user", e.User).s("app", e.App).f("type", e.Type).f("target", e.Target)
	l.write(ln)
}

// PlatformError writes nothing: it is for metrics, and the session's
// log line says more.
func (l *Log) PlatformError(string) {}
