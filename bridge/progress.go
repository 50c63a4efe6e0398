package bridge

import (
	"fmt"
	"io"
)

// Progress and failures go to the client's stderr. Progress only on shell
// sessions with a terminal: an exec's output, with a terminal or not,
// starts with the command's own bytes (tools and IDEs parse it, and a
// stray byte breaks scp, sftp or rsync). Failures always, as one line,
// since the exit code alone would not say what happened.

// showsProgress says whether progress lines are written.
func (sess *session) showsProgress() bool { return sess.shell && sess.pty != nil }

func (sess *session) stderr() io.Writer { return sess.ch.Stderr() }

// lineEnd is what ends a line on the client's terminal: in raw mode a bare
// \n would not return the cursor.
func (sess *session) lineEnd() string {
	if sess.pty != nil {
		return "\r\n"
	}
	return "\n"
}

func (sess *session) progress(line string) {
	if sess.showsProgress() {
		fmt.Fprint(sess.stderr(), line+"\r\n")
	}
}

func (sess *session) progressStart(text string) {
	if sess.showsProgress() {
		fmt.Fprint(sess.stderr(), text+" ")
	}
}

func (sess *session) progressEnd(text string) {
	sess.progress(text)
}

// printLine writes one line on the session's stderr, with the line end of
// its terminal (\r\n) or of a pipe (\n): the bridge's failure lines, which
// every kind of session gets.
func (sess *session) printLine(message string) {
	fmt.Fprint(sess.stderr(), message+sess.lineEnd())
}

// announce tells a line that may come while the command's output is on
// the screen: on a terminal it starts on a line of its own. Safe to call
// from outside the session's goroutines; once the session's channel is
// ending (finish), it tells nothing.
func (sess *session) announce(message string) {
	sess.mu.Lock()
	pty := sess.pty != nil
	sess.mu.Unlock()
	sess.announceMu.Lock()
	defer sess.announceMu.Unlock()
	if sess.ended {
		return
	}
	if pty {
		fmt.Fprint(sess.stderr(), "\r\n"+message+"\r\n")
	} else {
		fmt.Fprint(sess.stderr(), message+"\n")
	}
}

// uploadProgress reports each delivered file on sessions that show
// progress, "done" only once the platform accepted it. failed ends the line
// of a file whose upload failed.
func (sess *session) uploadProgress() (progress func(name string, sent, size int64, accepted bool), failed func()) {
	if !sess.showsProgress() {
		return nil, func() {}
	}
	started := ""
	progress = func(name string, sent, size int64, accepted bool) {
		if sent == 0 && !accepted && started != name {
			started = name
			sess.progressStart(fmt.Sprintf("Uploading %s (%s)...", name, humanBytes(size)))
		}
		if accepted && started == name {
			started = ""
			sess.progressEnd("done")
		}
	}
	failed = func() {
		if started != "" {
			started = ""
			sess.progressEnd("failed")
		}
	}
	return progress, failed
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
