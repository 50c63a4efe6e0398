package platform

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// parsedPart is what a reader made of one part.
type parsedPart struct {
	Header  textproto.MIMEHeader
	Name    string
	Content string
}

// parsed is what a reader made of a whole body: its parts, and whether it
// ended on an error rather than at the final boundary.
type parsed struct {
	Parts  []parsedPart
	Failed bool
	err    error
}

// part is what the tests need of a part of either reader.
type part interface {
	io.Reader
	FormName() string
}

// parseWith reads parts from next until the end or an error. Parts are
// read whole with io.Copy (which takes WriteTo when there is one), whole
// with Read, or partly with the rest skipped by the next call to next,
// which is recorded as "(skipped)": the choice turns with mode.
func parseWith(next func() (part, textproto.MIMEHeader, error), mode byte) parsed {
	var res parsed
	for i := 0; ; i++ {
		p, h, err := next()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.Failed, res.err = true, err
			return res
		}
		var buf bytes.Buffer
		switch (int(mode) + i) % 3 {
		case 0:
			_, err = io.Copy(&buf, p)
		case 1:
			_, err = io.Copy(&buf, struct{ io.Reader }{p})
		case 2:
			_, err = io.CopyN(&buf, struct{ io.Reader }{p}, 3)
			if errors.Is(err, io.EOF) {
				err = nil
			}
			buf.Reset()
			buf.WriteString("(skipped)")
		}
		res.Parts = append(res.Parts, parsedPart{h, p.FormName(), buf.String()})
		if err != nil {
			res.Failed, res.err = true, err
			return res
		}
	}
}

// parseStd reads body with mime/multipart, as the platform did before.
func parseStd(body []byte, boundary string, mode byte) parsed {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	return parseWith(func() (part, textproto.MIMEHeader, error) {
		p, err := mr.NextPart()
		if err != nil {
			return nil, nil, err
		}
		return p, p.Header, nil
	}, mode)
}

// parseForm reads with formReader through a buffer of size bytes, fed by
// src (which may cut the body in small reads).
func parseForm(src io.Reader, boundary string, size int, mode byte) parsed {
	mr := newFormReader(src, boundary, size)
	return parseWith(func() (part, textproto.MIMEHeader, error) {
		p, err := mr.NextPart()
		if err != nil {
			return nil, nil, err
		}
		return p, p.Header, nil
	}, mode)
}

// formBody is a multipart/form-data body as Go's mime/multipart writes it
// (the Scalingo CLI's way), with a field and two files.
func formBody(t testing.TB, boundary string, files ...string) []byte {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(boundary); err != nil {
		t.Fatal(err)
	}
	mw.WriteField("note", "a field")
	for i, content := range files {
		w, _ := mw.CreateFormFile("file", fmt.Sprintf("f%d", i))
		io.WriteString(w, content)
	}
	mw.Close()
	return buf.Bytes()
}

func TestFormReaderEdgeCases(t *testing.T) {
	t.Parallel()
	const b = "BOUNDARY"
	cases := map[string]string{
		"go writer":              string(formBody(t, b, "one", "", "three\r\n")),
		"preamble and epilogue":  "preamble line\r\nmore\r\n--BOUNDARY\r\nA: 1\r\n\r\nx\r\n--BOUNDARY--\r\nepilogue",
		"no final CRLF":          "--BOUNDARY\r\nA: 1\r\n\r\nx\r\n--BOUNDARY--",
		"LF line endings":        "--BOUNDARY\nA: 1\n\nx\n--BOUNDARY\nA: 2\n\ny\n--BOUNDARY--\n",
		"boundary-like content":  "--BOUNDARY\r\nA: 1\r\n\r\n--BOUNDARYx\r\n--BOUNDARY-x\r\n--BOUNDAR\r\n--BOUNDARY--",
		"space after boundary":   "--BOUNDARY \t\r\nA: 1\r\n\r\nx\r\n--BOUNDARY \r\nA: 2\r\n\r\ny\r\n--BOUNDARY-- \r\n",
		"empty part, no headers": "--BOUNDARY\r\n\r\n\r\n--BOUNDARY--\r\n",
		"empty content at once":  "--BOUNDARY\r\nA: 1\r\n\r\n--BOUNDARY--\r\n",
		"quoted-printable": "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q\"\r\n" +
			"Content-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc\r\n--BOUNDARY--\r\n",
		"no parts":                 "--BOUNDARY--\r\n",
		"truncated content":        "--BOUNDARY\r\nA: 1\r\n\r\nxyz",
		"truncated headers":        "--BOUNDARY\r\nA: 1\r\n",
		"bad header":               "--BOUNDARY\r\nno colon\r\n\r\nx\r\n--BOUNDARY--\r\n",
		"junk between parts":       "--BOUNDARY\r\nA: 1\r\n\r\nx\r\n--BOUNDARY\r\nA: 2\r\n\r\ny\r\n--BOUNDARY\r\njunk",
		"no boundary at all":       "just text\r\n",
		"empty body":               "",
		"line after part content":  "--BOUNDARY\r\nA: 1\r\n\r\nx\r\n--BOUNDARY--\r\n\r\nmore",
		"expecting a new part":     "--BOUNDARY\r\nA: 1\r\n\r\nx\r\n--BOUNDARYjunk\r\n\r\nx",
		"CR alone before boundary": "--BOUNDARY\r\nA: 1\r\n\r\nx\r--BOUNDARY--\r\n",
	}
	for name, body := range cases {
		for mode := range byte(3) {
			want := parseStd([]byte(body), b, mode)
			for _, size := range []int{16, 64, 4096, formBufferSize} {
				for src, r := range map[string]io.Reader{
					"whole":    bytes.NewReader([]byte(body)),
					"one byte": iotest.OneByteReader(bytes.NewReader([]byte(body))),
				} {
					got := parseForm(r, b, size, mode)
					if size < 64 && got.Failed && errors.Is(got.err, bufio.ErrBufferFull) || errors.Is(got.err, errPartHeaderTooLong) {
						continue // lines longer than a tiny buffer
					}
					if !reflect.DeepEqual(got.Parts, want.Parts) || got.Failed != want.Failed {
						t.Errorf("%s (mode %d, buffer %d, %s):\n got %+v %v\nwant %+v %v", name, mode, size, src, got.Parts, got.err, want.Parts, want.err)
					}
				}
			}
		}
	}
}

// A boundary cut at every place by the end of the buffer.
func TestFormReaderBoundaryAcrossReads(t *testing.T) {
	t.Parallel()
	const b = "b0undary"
	for n := 0; n < 300; n++ {
		content := make([]byte, n)
		rand.Read(content)
		body := []byte("--" + b + "\r\nA: 1\r\n\r\n" + string(content) + "\r\n--" + b + "\r\nA: 2\r\n\r\nsecond\r\n--" + b + "--\r\n")
		for _, size := range []int{64, 100, 128} {
			got := parseForm(bytes.NewReader(body), b, size, 0)
			if got.Failed || len(got.Parts) != 2 || got.Parts[0].Content != string(content) || got.Parts[1].Content != "second" {
				t.Fatalf("content of %d bytes, buffer %d: %+v %v", n, size, got.Parts, got.err)
			}
		}
	}
}

func TestFormReaderLargeContent(t *testing.T) {
	t.Parallel()
	content := make([]byte, 5*formBufferSize+123)
	rand.Read(content)
	// Boundary starts inside the content, as random data will have.
	copy(content[formBufferSize-3:], "\r\n--")
	body := formBody(t, "xyz", string(content))
	got := parseForm(bytes.NewReader(body), "xyz", formBufferSize, 0)
	if got.Failed || len(got.Parts) != 2 || got.Parts[1].Content != string(content) || got.Parts[1].Name != "file" {
		t.Fatalf("large content: failed=%v %v, %d parts", got.Failed, got.err, len(got.Parts))
	}
}

// WriteTo writes large pieces, straight from the buffer.
func TestFormPartWriteToWritesLargePieces(t *testing.T) {
	t.Parallel()
	content := make([]byte, 8<<20)
	rand.Read(content)
	body := formBody(t, "xyz", string(content))
	mr := newFormReader(bytes.NewReader(body), "xyz", formBufferSize)
	mr.NextPart() // the field
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	w := &countingWriter{}
	if n, err := p.WriteTo(w); err != nil || n != int64(len(content)) {
		t.Fatalf("WriteTo: %d %v", n, err)
	}
	if w.writes > len(content)/(formBufferSize/2)+2 {
		t.Errorf("%d writes for %d bytes", w.writes, len(content))
	}
}

type countingWriter struct{ writes int }

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return len(p), nil }

// The read error of the body, such as http.MaxBytesReader's, reaches the
// caller of WriteTo.
func TestFormPartReadError(t *testing.T) {
	t.Parallel()
	body := formBody(t, "xyz", strings.Repeat("x", 1000))
	limited := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), 500)
	mr := newFormReader(limited, "xyz", 4096)
	mr.NextPart()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.WriteTo(io.Discard)
	var mbe *http.MaxBytesError
	if !errors.As(err, &mbe) {
		t.Errorf("WriteTo past the limit: %v", err)
	}
}

func TestMultipartBoundary(t *testing.T) {
	t.Parallel()
	for ct, want := range map[string]string{
		"multipart/form-data; boundary=abc":   "abc",
		`multipart/form-data; boundary="a:b"`: "a:b",
		"multipart/mixed; boundary=x":         "x",
		"multipart/form-data":                 "",
		"multipart/form-data; boundary=":      "",
		"text/plain; boundary=abc":            "",
		"":                                    "",
	} {
		got, err := multipartBoundary(ct)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("multipartBoundary(%q) = %q, %v; want %q", ct, got, err, want)
		}
	}
}

// FuzzFormReader: on any body, formReader finds the parts, headers and
// content mime/multipart finds, and fails where it fails, whatever the
// sizes of the reads and however the content is read.
func FuzzFormReader(f *testing.F) {
	for _, s := range []string{
		string(formBody(f, "b", "one", "two")),
		"pre\r\n--b\r\nA: 1\r\n\r\nx\r\n--b--",
		"--b\nA: 1\n\nx\n--b\n\ny\n--b--\n",
		"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3D=\r\nb\r\n--b--\r\n",
		"--b\r\n\r\n--b-x\r\n--b\r\n--b--",
		"--b\r\nA: 1\r\n\r\nx\r\n--b\r\njunk",
		"--b \r\n\r\n\r\n--b--  ",
	} {
		f.Add("b", []byte(s), byte(0))
	}
	f.Fuzz(func(t *testing.T, boundary string, body []byte, mode byte) {
		want := parseStd(body, boundary, mode%3)
		if errors.Is(want.err, bufio.ErrBufferFull) || errors.Is(want.err, multipart.ErrMessageTooLarge) {
			return // mime/multipart's own limits: a line over 4 KiB, a huge header
		}
		var src io.Reader = bytes.NewReader(body)
		switch mode / 3 % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		got := parseForm(src, boundary, 4096, mode%3)
		if errors.Is(got.err, errPartHeaderTooLong) {
			return
		}
		if !reflect.DeepEqual(got.Parts, want.Parts) || got.Failed != want.Failed {
			t.Errorf("body %q boundary %q mode %d:\n got %+v %v\nwant %+v %v", body, boundary, mode, got.Parts, got.err, want.Parts, want.err)
		}
	})
}

// The upload handler takes any conforming multipart body: a preamble,
// fields beside the file parts, several files, no CRLF after the final
// boundary; and refuses a malformed or cut one with 400.
func TestUploadMultipartBodies(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{MaxUploadBytes: 1 << 20})
	o := tp.run("demo", "cd /tmp/uploads && ls && cat a b", false, nil)
	post := func(body string) int {
		req, _ := http.NewRequest("POST", o.attachURL+"/files", strings.NewReader(body))
		req.Header.Set("Content-Type", `multipart/form-data; boundary="x y"`)
		status, _ := tp.do(o.basic(req))
		return status
	}
	file := func(name, content string) string {
		return "--x y\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + "\"\r\n\r\n" + content + "\r\n"
	}
	good := "preamble\r\n--x y\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot a file\r\n" +
		file("a", "first\r\n--x yz") + file("b", "second") + "--x y--"
	if status := post(good); status != 200 {
		t.Errorf("good body: %d", status)
	}
	for name, body := range map[string]string{
		"cut in a file":      file("c", "third"),
		"junk after a part":  file("c", "third") + "junk\r\n",
		"bad part header":    "--x y\r\nno colon\r\n\r\nx\r\n--x y--\r\n",
		"file over the size": file("c", strings.Repeat("z", 1<<20+1)) + "--x y--\r\n",
	} {
		want := 400
		if name == "file over the size" {
			want = 413
		}
		if status := post(body); status != want {
			t.Errorf("%s: %d, want %d", name, status, want)
		}
	}
	_, br := o.attach()
	if out, _ := io.ReadAll(br); string(out) != "a\nb\nfirst\r\n--x yzsecond" {
		t.Errorf("uploads seen: %q", out)
	}
}
