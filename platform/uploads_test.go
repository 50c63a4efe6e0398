package platform

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestUploadLandsInTmpUploads(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	content := make([]byte, 300<<10)
	rand.Read(content)
	sum := sha256.Sum256(content)
	o := tp.run("demo", "sha256sum /tmp/uploads/x.bin; cat /tmp/uploads/dir/sub/f; rm /tmp/uploads/x.bin && echo removed", false, nil)
	for name, body := range map[string][]byte{"x.bin": content, "dir/sub/f": []byte("nested\n")} {
		if status, b := o.upload(name, body); status != 200 {
			t.Fatalf("upload %s: %d %s", name, status, b)
		}
	}
	_, br := o.attach()
	out, _ := io.ReadAll(br)
	want := hex.EncodeToString(sum[:]) + "  /tmp/uploads/x.bin\nnested\nremoved\n"
	if string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{MaxUploadBytes: 1024})
	o := tp.run("demo", "ls -R /tmp/uploads", false, nil)
	for _, name := range []string{"../x", "/etc/x", "a/../../x", "a//b", "./a", "a/.", "dir/", "", ".."} {
		status, body := o.upload(name, []byte("x"))
		if status != 422 || !strings.Contains(string(body), `"errors"`) {
			t.Errorf("name %q: %d %s", name, status, body)
		}
	}
	if status, body := o.upload("big", make([]byte, 1025)); status != 413 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("over the cap: %d %s", status, body)
	}
	if status, body := o.upload("ok", make([]byte, 1024)); status != 200 {
		t.Errorf("at the cap: %d %s", status, body)
	}
	if status, _ := o.upload("ok/sub", []byte("x")); status != 422 {
		t.Errorf("a file used as a directory: %d", status)
	}
	req, _ := http.NewRequest("POST", o.attachURL+"/files", strings.NewReader("plain"))
	req.Header.Set("Content-Type", "text/plain")
	if status, _ := tp.do(o.basic(req)); status != 400 {
		t.Errorf("not multipart: %d", status)
	}
	req, _ = http.NewRequest("POST", o.attachURL+"/files", strings.NewReader("x"))
	req.SetBasicAuth("", "bad")
	if status, _ := tp.do(req); status != 401 {
		t.Errorf("bad token: %d", status)
	}
	_, br := o.attach()
	out, _ := io.ReadAll(br)
	if strings.Contains(string(out), "big") || !strings.Contains(string(out), "ok") {
		t.Errorf("uploads seen: %q", out)
	}
	if status, body := o.upload("late", []byte("x")); status != 422 && status != 404 {
		t.Errorf("upload after attach: %d %s", status, body)
	}
}

func TestUploadAfterAttachRefused(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "sleep 5", false, nil)
	o.attach()
	status, body := o.upload("late", []byte("x"))
	if status != 422 || !bytes.Contains(body, []byte(`"errors"`)) {
		t.Errorf("upload after attach: %d %s", status, body)
	}
}
