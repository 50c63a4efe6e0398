// Package recording writes terminal sessions as asciicast v2 files, the
// format `asciinema play` and `asciinema cat` read
// (https://docs.asciinema.org/manual/asciicast/v2/): a JSON header line,
// then one JSON event line per chunk of output ("o"), input ("i") or
// terminal size change ("r", "COLSxROWS").
//
// Each event line goes to the file in one write as it happens, with no
// buffering in the process: a bridge killed mid-session (SIGKILL) leaves a
// file that parses up to its last event. Recorder.Close, and the sync
// policy of Options.SyncInterval, fsync it to survive a machine crash too.
package recording

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header is what the asciicast header line says of a recording.
type Header struct {
	// Width and Height are the terminal's size at the start, in columns
	// and rows. Zero: 80x24, as a terminal without a size.
	Width, Height int
	// Timestamp is the start of the recording; the events' times count
	// from it. Zero: the time Create or New is called.
	Timestamp time.Time
	// Term and Shell are the header's env.TERM and env.SHELL; empty ones
	// are left out.
	Term, Shell string
	// Command is the command recorded; Title the recording's title. Empty
	// ones are left out.
	Command, Title string
}

// Options say what a Recorder writes besides output, and when it syncs.
type Options struct {
	// Input records what the user typed as "i" events. Off by default:
	// input holds passwords typed at prompts that do not echo.
	Input bool
	// SyncInterval is the longest time written events stay unsynced
	// (fsync) while the session runs: a background sync runs that often
	// when something was written since the last one. Zero: the file is
	// synced only at Create (its header) and Close. Written events survive
	// the process's death either way; a sync is for the machine's.
	SyncInterval time.Duration
}

// File is what a Recorder writes to: an *os.File, or a test's double.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// Recorder writes one session's events. Its methods are safe for
// concurrent use (output, input and resizes come from different
// goroutines); events are written in the order the calls take its lock,
// with times that never go back.
type Recorder struct {
	opts  Options
	start time.Time
	now   func() time.Time

	mu     sync.Mutex
	f      File
	out    decoder
	in     decoder
	last   float64
	dirty  bool
	err    error // the first write error; later events are dropped
	closed bool
	stop   chan struct{}
	synced chan struct{} // closed when the sync loop ended
	line   []byte
}

// FileName is the name of a recording: the app, the start time in UTC to
// the second, the connection's id and the session's number on that
// connection, as "APP-20060102T150405Z-CONN-N.cast". app and conn are used
// as given and must not hold a path separator.
func FileName(app string, start time.Time, conn string, n int) string {
	return fmt.Sprintf("%s-%s-%s-%d.cast", app, start.UTC().Format("20060102T150405Z"), conn, n)
}

// Create makes dir (mode 0700) if needed and a new file name in it (mode
// 0600; an existing file is an error, never overwritten), writes and syncs
// the header, and returns the Recorder that writes the events. The caller
// must Close it.
func Create(dir, name string, h Header, opts Options) (*Recorder, error) {
	if name == "" || strings.ContainsRune(name, filepath.Separator) || name == "." || name == ".." {
		return nil, fmt.Errorf("recording file name %q: not a plain file name", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("recording file: %w", err)
	}
	r, err := New(f, h, opts)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return r, nil
}

// New writes the header to f, syncs it, and returns the Recorder that
// writes the events to f. Close closes f.
func New(f File, h Header, opts Options) (*Recorder, error) {
	return newRecorder(f, h, opts, time.Now)
}

func newRecorder(f File, h Header, opts Options, now func() time.Time) (*Recorder, error) {
	if h.Timestamp.IsZero() {
		h.Timestamp = now()
	}
	if h.Width <= 0 || h.Height <= 0 {
		h.Width, h.Height = 80, 24
	}
	r := &Recorder{opts: opts, start: h.Timestamp, now: now, f: f, stop: make(chan struct{}), synced: make(chan struct{})}
	line, err := headerLine(h)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(line); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	if opts.SyncInterval > 0 {
		go r.syncLoop(opts.SyncInterval)
	} else {
		close(r.synced)
	}
	return r, nil
}

func headerLine(h Header) ([]byte, error) {
	type header struct {
		Version   int               `json:"version"`
		Width     int               `json:"width"`
		Height    int               `json:"height"`
		Timestamp int64             `json:"timestamp"`
		Command   string            `json:"command,omitempty"`
		Title     string            `json:"title,omitempty"`
		Env       map[string]string `json:"env"`
	}
	env := map[string]string{}
	if h.Term != "" {
		env["TERM"] = validString(h.Term)
	}
	if h.Shell != "" {
		env["SHELL"] = validString(h.Shell)
	}
	return marshalLine(header{2, h.Width, h.Height, h.Timestamp.Unix(), validString(h.Command), validString(h.Title), env})
}

// marshalLine is v as JSON without HTML escaping, ended by a newline.
func marshalLine(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// Output records bytes the session's terminal showed. A UTF-8 sequence
// split across calls is kept until its end arrives; invalid bytes become
// U+FFFD, as asciinema's recorder does.
func (r *Recorder) Output(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.out.decode(p); s != "" {
		r.event("o", s)
	}
}

// Input records bytes the user typed, when Options.Input is set; else
// nothing. Decoded as Output.
func (r *Recorder) Input(p []byte) {
	if !r.opts.Input {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.in.decode(p); s != "" {
		r.event("i", s)
	}
}

// RecordsInput says whether Input records anything.
func (r *Recorder) RecordsInput() bool { return r.opts.Input }

// Resize records a new terminal size, in columns and rows, as an "r"
// event "COLSxROWS".
func (r *Recorder) Resize(cols, rows int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.event("r", strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
}

// event writes one event line; r.mu is held.
func (r *Recorder) event(kind, data string) {
	if r.closed || r.err != nil {
		return
	}
	t := r.now().Sub(r.start).Seconds()
	if t < r.last {
		t = r.last
	}
	r.last = t
	line := append(r.line[:0], '[')
	line = strconv.AppendFloat(line, t, 'f', 6, 64)
	line = append(line, ", \""...)
	line = append(line, kind...)
	line = append(line, "\", "...)
	line = appendJSONString(line, data)
	line = append(line, "]\n"...)
	r.line = line
	if _, err := r.f.Write(line); err != nil {
		r.err = err
		return
	}
	r.dirty = true
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (r *Recorder) syncLoop(every time.Duration) {
	defer close(r.synced)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		dirty := r.dirty && !r.closed
		r.dirty = false
		r.mu.Unlock()
		if dirty {
			// Outside the lock: a slow disk must not hold up the session.
			r.f.Sync()
		}
	}
}

// Err is the first error writing an event; the events after it were
// dropped. Nil while all were written.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close writes what is left of a split UTF-8 sequence (as U+FFFD), syncs
// and closes the file. It returns the first error of the recording's
// writes, its sync or its close. Events after Close are dropped; a second
// Close returns an error.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("recording already closed")
	}
	if s := r.out.flush(); s != "" {
		r.event("o", s)
	}
	if s := r.in.flush(); s != "" && r.opts.Input {
		r.event("i", s)
	}
	r.closed = true
	err := r.err
	r.mu.Unlock()
	close(r.stop)
	<-r.synced
	if serr := r.f.Sync(); err == nil {
		err = serr
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
