package scp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"syscall"

	"sshbridge/uploads"
)

// Exit codes, as OpenSSH's scp: the client reports a failure for 1.
const (
	ExitOK    = 0
	ExitError = 1
)

// Run serves an exec command line that IsCommand accepted and returns the
// exit status to send. stderr gets only a usage error; every other message
// travels in the protocol, where the client prints it.
func Run(ctx context.Context, rw io.ReadWriter, stderr io.Writer, sc uploads.Files, command string, log *slog.Logger) int {
	if stderr == nil {
		stderr = io.Discard
	}
	words, err := SplitCommand(command)
	if err != nil || len(words) == 0 || words[0] != "scp" {
		fmt.Fprintf(stderr, "scp: cannot parse the command line\n")
		return ExitError
	}
	return Sink(ctx, rw, stderr, sc, words[1:], log)
}

// Sink serves the scp arguments (those after "scp": "-t [-r] [-d] [-p]
// target", or "-f [-r] [-p] path...") on rw, the channel's stdin and
// stdout, into the scope. It returns the exit status the client expects:
// 0 when every file went through, 1 otherwise. Files refused (size, quota,
// name) are reported to the client, which goes on with the next one; a file
// cut short never becomes pending.
func Sink(ctx context.Context, rw io.ReadWriter, stderr io.Writer, sc uploads.Files, args []string, log *slog.Logger) int {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stderr == nil {
		stderr = io.Discard
	}
	a, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "scp: %v\n", err)
		return ExitError
	}
	p := &peer{ctx: ctx, r: bufio.NewReaderSize(rw, 64<<10), w: rw, sc: sc, log: log, args: a}
	if a.Source {
		return p.source()
	}
	return p.sink()
}

// peer is one scp session.
type peer struct {
	ctx  context.Context
	r    *bufio.Reader
	w    io.Writer
	sc   uploads.Files
	log  *slog.Logger
	args Args
	errs int
}

var errFatal = errors.New("fatal")

func (p *peer) ack() error {
	_, err := p.w.Write([]byte{0})
	return err
}

// report sends an error the other side prints and counts, as OpenSSH's
// run_err does.
func (p *peer) report(format string, a ...any) error {
	p.errs++
	msg := fmt.Sprintf(format, a...)
	p.log.Info("scp: error reported to the client", "msg", msg)
	_, err := fmt.Fprintf(p.w, "\x01scp: %s\n", msg)
	return err
}

// message is what the user may read of a staging error: the uploads
// sentinels name only the user's path and limits; anything else is logged.
func (p *peer) message(name string, err error) string {
	for _, e := range []error{uploads.ErrNotExist, uploads.ErrExist, uploads.ErrPermission, uploads.ErrInvalidName,
		uploads.ErrFileTooLarge, uploads.ErrQuotaExceeded, uploads.ErrNotDir, uploads.ErrIsDir,
		uploads.ErrDirNotEmpty, uploads.ErrBusy, uploads.ErrUnsupported, uploads.ErrBroken,
		uploads.ErrSpoolFull, uploads.ErrStoreUnavailable} {
		if errors.Is(err, e) {
			return err.Error()
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		p.log.Error("scp: staging area out of disk space", "err", err)
		return fmt.Sprintf("%s: the bridge is out of disk space for uploads", name)
	}
	p.log.Error("scp: internal error", "err", err)
	return fmt.Sprintf("%s: internal error of the upload area", name)
}

// readLine reads one control line without its '\n'.
func (p *peer) readLine() (string, error) {
	var line []byte
	for {
		frag, err := p.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine+1 {
			return "", errors.New("record too long")
		}
		switch {
		case err == nil:
			return string(line[:len(line)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
}

// frame is a directory being received: where its entries go.
type frame struct {
	dir   string // scope name of the directory, or of the file when not isDir
	isDir bool
}

func (p *peer) sink() int {
	if len(p.args.Paths) != 1 {
		p.report("ambiguous target")
		return ExitError
	}
	target, err := uploads.Resolve(homePath(p.args.Paths[0]))
	if err != nil {
		p.report("%s", p.message(p.args.Paths[0], err))
		return ExitError
	}
	st, err := p.sc.Stat(target)
	isDir := err == nil && st.IsDir()
	if p.args.TargetDir && !isDir {
		p.report("%s: Not a directory", path.Join(uploads.Home, target))
		return ExitError
	}
	if err := p.ack(); err != nil {
		return ExitError
	}
	stack := []frame{{dir: target, isDir: isDir}}
	var times *Record
	for first := true; ; first = false {
		if p.ctx.Err() != nil {
			return ExitError
		}
		line, err := p.readLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.log.Info("scp: connection lost", "err", err)
			return ExitError
		}
		rec, perr := ParseRecord(line)
		if perr != nil {
			switch {
			case errors.Is(perr, errUnexpectedName):
				p.report("error: %v", perr)
			case first && line != "" && line[0] != KindFile && line[0] != KindDir && line[0] != KindTimes:
				// A shell's complaint printed before scp ran ("No match."), as OpenSSH handles it.
				p.report("%s", line)
			default:
				p.report("protocol error: %v", perr)
			}
			return ExitError
		}
		switch rec.Kind {
		case KindWarning:
			p.errs++
			continue
		case KindFatal:
			return ExitError
		case KindEndDir:
			if err := p.ack(); err != nil {
				return ExitError
			}
			if len(stack) == 1 {
				return p.exit()
			}
			stack = stack[:len(stack)-1]
			continue
		case KindTimes:
			times = &rec
			if err := p.ack(); err != nil {
				return ExitError
			}
			continue
		}
		cur := stack[len(stack)-1]
		name := cur.dir
		if cur.isDir {
			name = path.Join(cur.dir, rec.Name)
		}
		t := times
		times = nil
		if rec.Kind == KindDir {
			if !p.args.Recursive {
				p.report("protocol error: received directory without -r")
				return ExitError
			}
			if err := p.receiveDir(name, rec, t); err != nil {
				if errors.Is(err, errFatal) {
					return ExitError
				}
				continue
			}
			stack = append(stack, frame{dir: name, isDir: true})
			continue
		}
		if err := p.receiveFile(name, rec, t); errors.Is(err, errFatal) {
			return ExitError
		}
	}
	return p.exit()
}

func (p *peer) exit() int {
	if p.errs > 0 {
		return ExitError
	}
	return ExitOK
}

// receiveDir makes (or reuses) a directory and acknowledges it. A
// non-fatal error was reported and the sender skips the directory.
func (p *peer) receiveDir(name string, rec Record, t *Record) error {
	if err := uploads.CheckPath(name); err != nil {
		return p.reportOr(p.message(name, err))
	}
	st, err := p.sc.Stat(name)
	switch {
	case err == nil && !st.IsDir():
		return p.reportOr(fmt.Sprintf("%s: Not a directory", quoteName(name)))
	case err == nil:
		if p.args.Preserve {
			mode := rec.Mode
			_ = p.sc.Setattr(name, uploads.Attrs{Mode: &mode})
		}
	default:
		if err := p.sc.Mkdir(name, rec.Mode|0o700); err != nil {
			return p.reportOr(p.message(name, err))
		}
	}
	if t != nil {
		_ = p.sc.Setattr(name, uploads.Attrs{ModTime: &t.Mtime})
	}
	if err := p.ack(); err != nil {
		return errFatal
	}
	return nil
}

// reportOr reports a non-fatal error; a failed write is fatal.
func (p *peer) reportOr(msg string) error {
	if err := p.report("%s", msg); err != nil {
		return errFatal
	}
	return errors.New(msg)
}

func quoteName(name string) string { return fmt.Sprintf("%q", name) }

// receiveFile stages one file. Refusals known from the record (size,
// quota, name) are reported before any byte moves, so the sender skips the
// file; a failure during the bytes is reported after them. Only a file
// received whole and acknowledged by the sender becomes pending.
func (p *peer) receiveFile(name string, rec Record, t *Record) error {
	if err := uploads.CheckPath(name); err != nil {
		return p.reportOr(p.message(name, err))
	}
	if err := p.sc.CheckSize(name, rec.Size); err != nil {
		return p.reportOr(p.message(name, err))
	}
	mode := rec.Mode
	if !p.args.Preserve {
		mode &^= 0o022 // the umask OpenSSH's sink would apply
	}
	w, err := p.sc.CreateFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode|0o200)
	if err != nil {
		return p.reportOr(p.message(name, err))
	}
	if err := p.ack(); err != nil {
		w.Abort(err)
		w.Close()
		return errFatal
	}
	var werr error
	buf := make([]byte, 32<<10)
	for left := rec.Size; left > 0; {
		n, err := p.r.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 && werr == nil {
			_, werr = w.Write(buf[:n])
		}
		left -= int64(n)
		if err != nil && left > 0 {
			w.Abort(err)
			w.Close()
			p.log.Info("scp: connection lost during a file", "err", err)
			return errFatal
		}
	}
	// The sender's verdict on the bytes it sent.
	ok, err := p.response()
	if err != nil {
		w.Abort(err)
		w.Close()
		return errFatal
	}
	if !ok {
		w.Abort(errors.New("the sender reported an error"))
		w.Close()
		if err := p.ack(); err != nil {
			return errFatal
		}
		return nil
	}
	if werr == nil && t != nil {
		_ = p.sc.Setattr(name, uploads.Attrs{ModTime: &t.Mtime})
	}
	if werr != nil {
		w.Abort(werr)
	}
	if err := w.Close(); err != nil {
		return p.reportOr(p.message(name, err))
	}
	if err := p.ack(); err != nil {
		return errFatal
	}
	return nil
}

// response reads the other side's one-byte answer: true for "\0", false
// for a warning (its message read and counted); a fatal answer or a lost
// connection is an error.
func (p *peer) response() (bool, error) {
	b, err := p.r.ReadByte()
	if err != nil {
		return false, err
	}
	if b == 0 {
		return true, nil
	}
	msg, err := p.readLine()
	if err != nil {
		return false, err
	}
	p.errs++
	p.log.Info("scp: the client reported an error", "msg", msg)
	if b == KindWarning {
		return false, nil
	}
	return false, errFatal
}
