package scp

import (
	"errors"
	"fmt"
	"io"
	"path"

	"sshbridge/uploads"
)

// source serves `scp -f`: pending files (and, with -r, directories) read
// back, as `sftp get` can.
func (p *peer) source() int {
	// The receiving client speaks first, with a "\0".
	if ok, err := p.response(); err != nil || !ok {
		return ExitError
	}
	for _, arg := range p.args.Paths {
		name, err := uploads.Resolve(homePath(arg))
		if err != nil {
			if p.report("%s", p.message(arg, err)) != nil {
				return ExitError
			}
			continue
		}
		if err := p.send(name); errors.Is(err, errFatal) {
			return ExitError
		}
	}
	return p.exit()
}

// send sends one file or directory; an error other than errFatal was
// reported and the transfer goes on.
func (p *peer) send(name string) error {
	e, err := p.sc.Stat(name)
	if err != nil {
		return p.reportOr(p.message(name, err))
	}
	base := path.Base(name)
	if name == "" {
		base = path.Base(uploads.Home)
	}
	if p.args.Preserve {
		if ok, err := p.record(Record{Kind: KindTimes, Mtime: e.ModTime, Atime: e.ModTime}); err != nil || !ok {
			return orFatal(err)
		}
	}
	if e.IsDir() {
		if !p.args.Recursive {
			return p.reportOr(fmt.Sprintf("%s: not a regular file", quoteName(name)))
		}
		if ok, err := p.record(Record{Kind: KindDir, Mode: e.Mode.Perm(), Name: base}); err != nil || !ok {
			return orFatal(err)
		}
		list, err := p.sc.List(name)
		if err != nil {
			p.report("%s", p.message(name, err))
		}
		for _, c := range list {
			if err := p.send(c.Name); errors.Is(err, errFatal) {
				return err
			}
		}
		_, err = p.record(Record{Kind: KindEndDir})
		return orFatal(err)
	}
	f, e, err := p.sc.OpenFile(name)
	if err != nil {
		return p.reportOr(p.message(name, err))
	}
	defer f.Close()
	if ok, err := p.record(Record{Kind: KindFile, Mode: e.Mode.Perm(), Size: e.Size, Name: base}); err != nil || !ok {
		return orFatal(err)
	}
	if n, err := io.Copy(p.w, io.NewSectionReader(f, 0, e.Size)); err != nil || n != e.Size {
		return errFatal // the receiver counts bytes: nothing can be said any more
	}
	if err := p.ack(); err != nil {
		return errFatal
	}
	_, err = p.response()
	return orFatal(err)
}

// record sends a control record and reads the answer.
func (p *peer) record(r Record) (bool, error) {
	if _, err := io.WriteString(p.w, r.String()+"\n"); err != nil {
		return false, err
	}
	return p.response()
}

func orFatal(err error) error {
	if err != nil {
		return errFatal
	}
	return nil
}
