package platform

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// rawUpload posts body as a multipart/form-data upload with boundary.
func (o *testOneOff) rawUpload(boundary string, body []byte) (int, []byte) {
	o.tp.t.Helper()
	req, _ := http.NewRequest("POST", o.attachURL+"/files", bytes.NewReader(body))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	return o.tp.do(o.basic(req))
}

func filePart(boundary, name string, content []byte) []byte {
	return append([]byte(fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\nContent-Type: application/octet-stream\r\n\r\n", boundary, name)), append(content, "\r\n"...)...)
}

// Uploads large enough to be spliced from the connection into the file
// arrive whole, whatever follows the first file (a second part, an
// epilogue) or comes before it (a preamble: read the usual way); a body
// cut before its closing delimiter or over the size cap leaves no file,
// and each answer reaches the client.
func TestUploadSpliced(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{MaxUploadBytes: 8 << 20})
	o := tp.run("demo", "cd /tmp/uploads && sha256sum $(find . -type f | sort)", false, nil)
	const bd = "b0undary"
	rnd := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	want := map[string][]byte{}
	expect := func(name string, content []byte) { want[name] = content }

	big := rnd(3<<20 + 7)
	if status, b := o.upload("plain.bin", big); status != 200 {
		t.Fatalf("plain: %d %s", status, b)
	}
	expect("plain.bin", big)

	first, second := rnd(2<<20), rnd(100)
	body := append(filePart(bd, "first", first), filePart(bd, "dir/second", second)...)
	body = append(body, "--"+bd+"--\r\nepilogue"...)
	if status, b := o.rawUpload(bd, body); status != 200 {
		t.Fatalf("two parts: %d %s", status, b)
	}
	expect("first", first)
	expect("dir/second", second)

	pre := rnd(2 << 20)
	body = append([]byte("a preamble\r\n"), filePart(bd, "preamble", pre)...)
	if status, b := o.rawUpload(bd, append(body, "--"+bd+"--"...)); status != 200 {
		t.Fatalf("preamble: %d %s", status, b)
	}
	expect("preamble", pre)

	if status, b := o.rawUpload(bd, filePart(bd, "cut", rnd(2<<20))); status != 400 {
		t.Errorf("no closing delimiter: %d %s, want 400", status, b)
	}
	over := append(filePart(bd, "over", rnd(8<<20+1)), "--"+bd+"--\r\n"...)
	if status, b := o.rawUpload(bd, over); status != 413 {
		t.Errorf("over the cap: %d %s, want 413", status, b)
	}

	_, br := o.attach()
	out, _ := io.ReadAll(br)
	var lines []string
	for name, content := range want {
		sum := sha256.Sum256(content)
		lines = append(lines, hex.EncodeToString(sum[:])+"  ./"+name)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	if got := strings.TrimSpace(string(out)); got != strings.Join(lines, "\n") {
		t.Fatalf("the one-off has\n%s\nwant\n%s", got, strings.Join(lines, "\n"))
	}
}
