package platform

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckUploadName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"f": true, "dir/sub/f": true, "a.tar.gz": true, "..x": true, "x..": true, `a\b`: true,
		"": false, "/f": false, "../f": false, "a/../f": false, "a/..": false, ".": false, "a/./b": false,
		"a//b": false, "a/": false, "a\x00b": false, strings.Repeat("a", 256): false,
	} {
		if err := checkUploadName(name); (err == nil) != ok {
			t.Errorf("checkUploadName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// FuzzCheckUploadName: whatever is accepted stays strictly inside the
// uploads dir once joined.
func FuzzCheckUploadName(f *testing.F) {
	for _, s := range []string{"f", "dir/sub/f", "../x", "/etc/passwd", "a//b", "a/./b", "a\x00", "..", "x/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkUploadName(name) != nil {
			return
		}
		const root = "/tmp/uploads"
		joined := filepath.Join(root, name)
		if !strings.HasPrefix(joined, root+"/") || joined != root+"/"+name {
			t.Errorf("accepted %q lands at %q", name, joined)
		}
	})
}

func TestPartFileName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`form-data; name="file"; filename="dir/sub/f"`: "dir/sub/f",
		`form-data; name="file"; filename="up.txt"`:    "up.txt",
		`form-data; name="file"`:                       "",
		`garbage`:                                      "",
	} {
		if got := partFileName(in); got != want {
			t.Errorf("partFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzPartFileName(f *testing.F) {
	f.Add(`form-data; name="file"; filename="a/b"`)
	f.Add(`form-data; filename*=UTF-8''%2e%2e%2fx`)
	f.Fuzz(func(t *testing.T, disposition string) {
		name := partFileName(disposition)
		if checkUploadName(name) == nil && strings.Contains("/"+name+"/", "/../") {
			t.Errorf("escaping name %q accepted from %q", name, disposition)
		}
	})
}

func TestParseDimension(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{`"80"`: 80, `80`: 80, `"0"`: 0, `65535`: 65535, `65536`: -1, `"-1"`: -1, `"x"`: -1, `null`: -1, `1.5`: -1, ``: -1} {
		got, ok := parseDimension(json.RawMessage(in))
		if ok != (want >= 0) || ok && int(got) != want {
			t.Errorf("parseDimension(%s) = %d %v, want %d", in, got, ok, want)
		}
	}
}

func FuzzParseDimension(f *testing.F) {
	for _, s := range []string{`"80"`, `25`, `"0"`, `null`, `"1e3"`, `-0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		parseDimension(json.RawMessage(raw))
	})
}

// FuzzTokenVerify: no input but a token this signer issued is accepted.
func FuzzTokenVerify(f *testing.F) {
	s, err := newTokenSigner(time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.issue("u")
	f.Add(good)
	f.Add("a.b.c")
	f.Add(jwtHeader + ".e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		if s.verify(tok) == nil && tok != good {
			t.Errorf("forged token accepted: %q", tok)
		}
	})
}

// FuzzRunBody: a run body never passes validation with a blank command or
// an environment the process cannot carry.
func FuzzRunBody(f *testing.F) {
	f.Add(`{"command":"echo hi","env":{"TERM":"xterm"},"size":"M","tty":false}`)
	f.Add(`{"command":"  "}`)
	f.Add(`{"command":"x","env":{"A=B":"c"}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var b runBody
		if json.Unmarshal([]byte(raw), &b) != nil {
			return
		}
		if field, _ := validateRun(&b); field != "" {
			return
		}
		if strings.TrimSpace(b.Command) == "" || strings.ContainsRune(b.Command, 0) {
			t.Errorf("accepted command %q", b.Command)
		}
		for k, v := range b.Env {
			if !validEnvName(k) || strings.ContainsRune(v, 0) {
				t.Errorf("accepted env %q=%q", k, v)
			}
		}
	})
}
