package bridge

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"sshbridge/recording"
)

// recordSyncInterval is how long a recording's events may stay unsynced
// to disk while its session runs (recording.Options.SyncInterval).
const recordSyncInterval = time.Second

// sessionRecording is a terminal session's recording, or nil when the
// session is not recorded; its methods are no-ops on nil, so that the
// copies of run.go and connmode.go read the same either way.
type sessionRecording struct {
	rec  *recording.Recorder
	file string
	log  *slog.Logger
}

// startRecording starts recording the session's terminal from now, when
// Config.RecordApps matches its app and it has a pty: to a new file in
// Config.RecordDir named by app, start time, connection id and the
// session's number among the connection's recordings
// (recording.FileName). command is what runs, for the header. A file that
// cannot be made is logged and the session runs unrecorded.
func (sess *session) startRecording(command string) *sessionRecording {
	cfg := &sess.srv.cfg
	if sess.pty == nil || !matchApps(cfg.RecordApps, sess.app) {
		return nil
	}
	start := time.Now()
	h := recording.Header{Timestamp: start, Term: sess.pty.Term, Command: command, Title: sess.app}
	h.Width, h.Height = int(sess.pty.Columns), int(sess.pty.Rows)
	if cols, rows, ok := sess.win.get(); ok {
		h.Width, h.Height = cols, rows
	}
	if sess.shell && sess.grant.ForceCommand == "" {
		h.Shell = command
	}
	name := recording.FileName(sess.app, start, sess.st.id, int(sess.st.recorded.Add(1)))
	rec, err := recording.Create(cfg.RecordDir, name, h, recording.Options{Input: cfg.RecordInput, SyncInterval: recordSyncInterval})
	if err != nil {
		sess.log.Error("session not recorded", "err", err)
		return nil
	}
	file := filepath.Join(cfg.RecordDir, name)
	sess.log.Info("recording to file", "file", file, "input", cfg.RecordInput)
	return &sessionRecording{rec: rec, file: file, log: sess.log}
}

// close ends the recording: what is left is written and the file synced.
func (r *sessionRecording) close() {
	if r == nil {
		return
	}
	if err := r.rec.Close(); err != nil {
		r.log.Error("recording incomplete", "file", r.file, "err", err)
	}
}

// output is w, the client's channel, recording what each write delivered.
func (r *sessionRecording) output(w io.Writer) io.Writer {
	if r == nil {
		return w
	}
	return recordedWriter{w, r.rec}
}

// input is rd, the client's channel, recording what each read gave when
// input is recorded.
func (r *sessionRecording) input(rd io.Reader) io.Reader {
	if r == nil || !r.rec.RecordsInput() {
		return rd
	}
	return recordedReader{rd, r.rec}
}

// resize is resize recording each size the one-off took ("r" events).
func (r *sessionRecording) resize(resize func(ctx context.Context, cols, rows int) error) func(ctx context.Context, cols, rows int) error {
	if r == nil {
		return resize
	}
	return func(ctx context.Context, cols, rows int) error {
		err := resize(ctx, cols, rows)
		if err == nil {
			r.rec.Resize(cols, rows)
		}
		return err
	}
}

type recordedWriter struct {
	w   io.Writer
	rec *recording.Recorder
}

func (w recordedWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.rec.Output(p[:n])
	return n, err
}

type recordedReader struct {
	r   io.Reader
	rec *recording.Recorder
}

func (r recordedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.rec.Input(p[:n])
	return n, err
}
