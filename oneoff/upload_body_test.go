package oneoff

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// fileSource is a pending file as the staging area hands it over: Read,
// and WriteTo passing an *io.LimitedReader of the *os.File to io.Copy,
// which a TCP connection turns into sendfile.
type fileSource struct {
	f          *os.File
	done, size int64
	writeTos   int
}

func (s *fileSource) Read(p []byte) (int, error) {
	if s.done >= s.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.size-s.done)]
	n, err := s.f.ReadAt(p, s.done)
	s.done += int64(n)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func (s *fileSource) WriteTo(w io.Writer) (int64, error) {
	s.writeTos++
	if _, err := s.f.Seek(s.done, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, &io.LimitedReader{R: s.f, N: s.size - s.done})
	s.done += n
	return n, err
}

// An upload whose source has WriteTo arrives whole, in one multipart part,
// on both transports (the file written straight to the TCP connection over
// plain HTTP, read through user space over TLS), after net/http has read
// the start of the body through Read.
func TestUploadWriterToSource(t *testing.T) {
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tls := range []bool{false, true} {
		f := newFakeServer(t, tls)
		got := make(chan []byte, 1)
		f.files = func(w http.ResponseWriter, r *http.Request) {
			_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			mr := multipart.NewReader(r.Body, params["boundary"])
			pt, err := mr.NextPart()
			if err != nil {
				t.Errorf("multipart: %v", err)
				w.WriteHeader(400)
				return
			}
			b, _ := io.ReadAll(pt)
			if _, err := mr.NextPart(); err != io.EOF {
				t.Errorf("more than one part: %v", err)
			}
			got <- b
			w.WriteHeader(200)
		}
		o := start(t, f.client(t, nil), RunRequest{})
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		src := &fileSource{f: file, size: int64(len(data))}
		err = o.Upload(context.Background(), "f", src.size, src)
		file.Close()
		if err != nil {
			t.Fatalf("tls %v: Upload: %v", tls, err)
		}
		if b := <-got; !bytes.Equal(b, data) {
			t.Fatalf("tls %v: %d bytes arrived, not the %d sent", tls, len(b), len(data))
		}
		if want := !tls; (src.writeTos > 0) != want {
			t.Errorf("tls %v: WriteTo called %d times", tls, src.writeTos)
		}
	}
}

// A WriteTo source shorter or longer than announced fails the upload as
// a failure of the source, never a truncated or overlong file.
func TestUploadWriterToSourceSizeMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 100<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	accepted := 0
	f.files = func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err == nil {
			accepted++
		}
		w.WriteHeader(200)
	}
	o := start(t, f.client(t, nil), RunRequest{})
	for _, c := range []struct {
		announced, has int64
		want           error
	}{
		{200 << 10, 100 << 10, io.ErrUnexpectedEOF},
		{50 << 10, 100 << 10, errSourceTooLong},
	} {
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = o.Upload(context.Background(), "f", c.announced, &fileSource{f: file, size: c.has})
		file.Close()
		if !errors.Is(err, c.want) {
			t.Errorf("announced %d, source %d: %v, want %v", c.announced, c.has, err, c.want)
		}
	}
	if accepted != 0 {
		t.Errorf("the server read %d bodies whole", accepted)
	}
}
