package platform

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// multipartSlack is room for the multipart framing around a file at the
// size cap.
const multipartSlack = 64 << 10

var errTooLarge = errors.New("file too large")

// handleUpload streams each `file` part of a multipart body to
// /tmp/uploads/<filename> of the one-off, before attach only. Refusals:
// 422 after attach or for a file name leaving /tmp/uploads, 413 over
// MaxUploadBytes, 400 for a body that is not multipart.
func (p *Platform) handleUpload(w http.ResponseWriter, r *http.Request, o *oneOff) {
	o.mu.Lock()
	if o.attached || o.reason != endNone {
		o.mu.Unlock()
		writeFieldErrors(w, "file", "can't be uploaded once the one-off container is attached")
		return
	}
	o.uploads.Add(1)
	o.mu.Unlock()
	defer o.uploads.Done()

	limit := p.cfg.MaxUploadBytes
	if r.ContentLength > limit+multipartSlack {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("file too large: %d bytes at most", limit))
		return
	}
	boundary, err := multipartBoundary(r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "expected a multipart/form-data body")
		return
	}
	if spliceable(r) && p.spliceUpload(w, r, o, boundary, limit) {
		return
	}
	// Not mime/multipart's reader: it passes content on a few KiB per call
	// through a 4 KiB buffer, which caps an upload far below what the
	// connection and the disk allow.
	mr := newFormReader(http.MaxBytesReader(w, r.Body, limit+multipartSlack), boundary, formBufferFor(r.ContentLength))
	p.saveParts(w, mr, o, limit, 0)
}

// saveParts saves each `file` part left in mr and answers: 200 once at
// least one file (saved before, or here) was saved.
func (p *Platform) saveParts(w http.ResponseWriter, mr *formReader, o *oneOff, limit int64, saved int) {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.uploadFailed(w, o, err, limit)
			return
		}
		if part.FormName() != "file" {
			continue
		}
		name := partFileName(part.Header.Get("Content-Disposition"))
		if err := checkUploadName(name); err != nil {
			writeFieldErrors(w, "filename", err.Error())
			return
		}
		if err := p.saveUpload(o, name, part, limit); err != nil {
			p.uploadFailed(w, o, err, limit)
			return
		}
		saved++
	}
	if saved == 0 {
		writeFieldErrors(w, "file", "is missing")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// minFormBuffer is the smallest read buffer of an upload's multipart
// reader; a part's header block must fit in it.
const minFormBuffer = 64 << 10

// formBufferFor sizes the read buffer for a body of length n (-1 when
// unknown): no larger than the body, so that a small file does not cost a
// 1 MiB allocation (zeroed, then swept), which was most of the platform's
// CPU time for a delivery of many small files.
func formBufferFor(n int64) int {
	if n < 0 {
		return formBufferSize
	}
	return int(min(max(n+1, minFormBuffer), formBufferSize))
}

func (p *Platform) uploadFailed(w http.ResponseWriter, o *oneOff, err error, limit int64) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errTooLarge) || errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("file too large: %d bytes at most", limit))
	case errors.Is(err, errUploadPath):
		writeFieldErrors(w, "filename", "conflicts with an existing file or directory")
	default:
		o.log.Warn("upload failed", "err", err)
		writeError(w, http.StatusBadRequest, "upload failed")
	}
}

// partFileName is the filename parameter as sent: multipart.Part.FileName
// keeps only the base name, and uploads may carry subdirectories.
func partFileName(disposition string) string {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return ""
	}
	return params["filename"]
}

var errUploadPath = errors.New("upload path conflict")

// saveUpload writes one file under the one-off's uploads dir, creating its
// subdirectories, all owned by the user the one-off runs as. A file over the
// cap is removed.
func (p *Platform) saveUpload(o *oneOff, name string, r io.Reader, limit int64) error {
	return p.writeUpload(o, name, func(f *os.File) error {
		// A part writes its content straight from its read buffer (WriteTo).
		_, err := io.Copy(&capWriter{w: f, left: limit}, r)
		return err
	})
}

// writeUpload makes the file name under the one-off's uploads dir, with
// its subdirectories, all owned by the user the one-off runs as, and has
// write fill it. On any error the file is removed; errTooLarge and
// errUploadPath pass through as such.
func (p *Platform) writeUpload(o *oneOff, name string, write func(*os.File) error) (err error) {
	root := o.uploadDir()
	if dir := filepath.Dir(name); dir != "." {
		if err := p.mkdirUploads(root, dir); err != nil {
			return err
		}
	}
	path := root + "/" + name
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %w", errUploadPath, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("save upload: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if p.runner.uid >= 0 {
		if err := f.Chown(p.runner.uid, p.runner.gid); err != nil {
			return fmt.Errorf("save upload: %w", err)
		}
	}
	if err := write(f); err != nil {
		if errors.Is(err, errTooLarge) {
			return err
		}
		return fmt.Errorf("save upload: %w", err)
	}
	return nil
}

// capWriter refuses a write that would take the total past left bytes.
type capWriter struct {
	w    io.Writer
	left int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, errTooLarge
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}

// mkdirUploads makes the subdirectories of rel under root one by one, so
// each gets the one-off user as owner.
func (p *Platform) mkdirUploads(root, rel string) error {
	cur := root
	for c := range strings.SplitSeq(rel, "/") {
		cur += "/" + c
		err := os.Mkdir(cur, 0o755)
		if errors.Is(err, os.ErrExist) {
			if st, serr := os.Lstat(cur); serr == nil && st.IsDir() {
				continue
			}
			return fmt.Errorf("%w: %s is not a directory", errUploadPath, c)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errUploadPath, err)
		}
		if p.runner.uid >= 0 {
			if err := os.Chown(cur, p.runner.uid, p.runner.gid); err != nil {
				return fmt.Errorf("save upload: %w", err)
			}
		}
	}
	return nil
}
