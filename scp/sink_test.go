package scp

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"sshbridge/uploads"
)

func newScope(t *testing.T, lim uploads.Limits) *uploads.Scope {
	t.Helper()
	s, err := uploads.Open(t.TempDir(), lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Scope("SHA256:user", "demo-app")
}

type transcript struct {
	in  io.Reader
	out bytes.Buffer
}

func (t *transcript) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t *transcript) Write(p []byte) (int, error) { return t.out.Write(p) }

// run feeds the bytes a client would send and returns what the server
// answered and its exit status.
func run(t *testing.T, sc *uploads.Scope, args, input string) (string, int) {
	t.Helper()
	tr := &transcript{in: strings.NewReader(input)}
	var stderr bytes.Buffer
	code := Sink(context.Background(), tr, &stderr, sc, strings.Fields(args), nil)
	return tr.out.String(), code
}

func tree(t *testing.T, sc *uploads.Scope) string {
	t.Helper()
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		es, err := sc.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.IsDir() {
				out = append(out, e.Name+"/")
				walk(e.Name)
				continue
			}
			f, _, err := sc.Open(e.Name)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(f)
			f.Close()
			out = append(out, e.Name+"="+string(b))
		}
	}
	walk("")
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestSinkGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lim    uploads.Limits
		setup  func(sc *uploads.Scope)
		args   string
		in     string
		out    string
		code   int
		result string
	}{
		{name: "one file", args: "-t .", in: "C0644 5 hello.txt\nhello\x00",
			out: "\x00\x00\x00", result: "hello.txt=hello"},
		{name: "empty and one byte", args: "-t -- /tmp/uploads/", in: "C0644 0 empty\n\x00C0644 1 one\nx\x00",
			out: "\x00\x00\x00\x00\x00", result: "empty= one=x"},
		{name: "home by tilde", args: "-t ~", in: "C0644 1 -dash name ünï\nx\x00",
			out: "\x00\x00\x00", result: "-dash name ünï=x"},
		{name: "target is a new name", args: "-t renamed", in: "C0644 3 orig\nabc\x00",
			out: "\x00\x00\x00", result: "renamed=abc"},
		{name: "recursive tree", args: "-r -t .",
			in:  "D0755 0 dir\nC0644 1 a\nx\x00D0700 0 sub\nC0600 0 empty\n\x00E\nE\n",
			out: strings.Repeat("\x00", 9), result: "dir/ dir/a=x dir/sub/ dir/sub/empty="},
		{name: "recursive into a new name", args: "-r -t newdir",
			in: "D0755 0 dir\nC0644 1 a\nx\x00E\n", out: strings.Repeat("\x00", 5), result: "newdir/ newdir/a=x"},
		{name: "grouped flags and -d", args: "-prdt .", in: "T1600000000 0 1600000000 0\nC0600 3 f\nabc\x00",
			out: "\x00\x00\x00\x00", result: "f=abc"},
		{name: "over the size limit, then a file that fits", lim: uploads.Limits{MaxFileSize: 4}, args: "-t .",
			in:  "C0644 10 big\nC0644 1 ok\nx\x00",
			out: "\x00\x01scp: \"big\": file exceeds the per-file upload limit (4 bytes)\n\x00\x00", code: 1, result: "ok=x"},
		{name: "over the quota", lim: uploads.Limits{UserQuota: 3}, args: "-t .",
			in:   "C0644 2 a\nxx\x00C0644 2 b\n",
			out:  "\x00\x00\x00\x01scp: \"b\": upload quota exceeded (3 bytes pending per user; deliver or remove files first)\n",
			code: 1, result: "a=xx"},
		{name: "traversal in a record", args: "-t .", in: "C0644 1 ../x\nx\x00",
			out: "\x00\x01scp: error: unexpected filename: \"../x\"\n", code: 1},
		{name: "slash in a record", args: "-r -t .", in: "D0755 0 a/b\n",
			out: "\x00\x01scp: error: unexpected filename: \"a/b\"\n", code: 1},
		{name: "control character in a name is skipped", args: "-t .", in: "C0644 1 a\x01b\nC0644 1 ok\nx\x00",
			out:  "\x00\x01scp: invalid file name \"a\\x01b\": control characters (NUL, newline...) are not allowed\n\x00\x00",
			code: 1, result: "ok=x"},
		{name: "directory without -r", args: "-t .", in: "D0755 0 dir\n",
			out: "\x00\x01scp: protocol error: received directory without -r\n", code: 1},
		{name: "target outside", args: "-t /etc", in: "C0644 1 x\nx\x00",
			out: "\x01scp: \"/etc\": permission denied: only /tmp/uploads is served\n", code: 1},
		{name: "traversal in the target", args: "-t ../../etc/x", in: "",
			out: "\x01scp: \"/etc/x\": permission denied: only /tmp/uploads is served\n", code: 1},
		{name: "-d on a file target", args: "-d -t f", setup: func(sc *uploads.Scope) { put(sc, "f", "old") },
			out: "\x01scp: /tmp/uploads/f: Not a directory\n", code: 1, result: "f=old"},
		{name: "overwrite a pending file", args: "-t .", setup: func(sc *uploads.Scope) { put(sc, "f", "old") },
			in: "C0644 3 f\nnew\x00", out: "\x00\x00\x00", result: "f=new"},
		{name: "broken transfer", args: "-t .", in: "C0644 10 f\nabc",
			out: "\x00\x00", code: 1},
		{name: "sender error after the bytes", args: "-t .", in: "C0644 3 f\nabc\x01scp: f: read error\n",
			out: "\x00\x00\x00", code: 1},
		{name: "sender warning record", args: "-t .", in: "\x01scp: missing: No such file or directory\nC0644 1 ok\nx\x00",
			out: "\x00\x00\x00", code: 1, result: "ok=x"},
		{name: "sender fatal record", args: "-t .", in: "\x02scp: gone\nC0644 1 ok\nx\x00",
			out: "\x00", code: 1},
		{name: "shell noise first", args: "-t .", in: "No match.\n",
			out: "\x00\x01scp: No match.\n", code: 1},
		{name: "bad mode", args: "-t .", in: "C0x44 1 f\nx\x00",
			out: "\x00\x01scp: protocol error: bad mode\n", code: 1},
		{name: "top-level end", args: "-t .", in: "C0644 1 a\nx\x00E\n",
			out: "\x00\x00\x00\x00", result: "a=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScope(t, tc.lim)
			if tc.setup != nil {
				tc.setup(sc)
			}
			out, code := run(t, sc, tc.args, tc.in)
			if out != tc.out || code != tc.code {
				t.Errorf("answered %q, exit %d\nwant     %q, exit %d", out, code, tc.out, tc.code)
			}
			if got := tree(t, sc); got != tc.result {
				t.Errorf("staged %q, want %q", got, tc.result)
			}
			if es, _ := sc.Pending(); tc.result == "" && len(es) != 0 {
				t.Errorf("pending %v", es)
			}
		})
	}
}

func put(sc *uploads.Scope, name, data string) {
	w, err := sc.Create(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0)
	if err != nil {
		panic(err)
	}
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		panic(err)
	}
}

func TestSinkPreservesModeAndTimes(t *testing.T) {
	sc := newScope(t, uploads.Limits{})
	out, code := run(t, sc, "-r -p -t .", "T1600000000 0 1600000001 0\nD0700 0 d\nT1500000000 0 1500000000 0\nC0600 1 f\nx\x00E\n")
	if code != 0 || out != strings.Repeat("\x00", 7) {
		t.Fatalf("answered %q, exit %d", out, code)
	}
	e, err := sc.Stat("d/f")
	if err != nil || e.Mode != fs.FileMode(0o600) || !e.ModTime.Equal(time.Unix(1500000000, 0)) {
		t.Fatalf("d/f = %+v, %v", e, err)
	}
	d, err := sc.Stat("d")
	if err != nil || d.Mode.Perm() != 0o700 || !d.ModTime.Equal(time.Unix(1600000000, 0)) {
		t.Fatalf("d = %+v, %v", d, err)
	}
}

func TestSourceReadsBack(t *testing.T) {
	sc := newScope(t, uploads.Limits{})
	sc.Mkdir("d", 0o755)
	put(sc, "d/f", "abc")
	// The client acknowledges every record and the end of each file.
	out, code := run(t, sc, "-r -f d", strings.Repeat("\x00", 6))
	if code != 0 || out != "D0755 0 d\nC0644 3 f\nabc\x00E\n" {
		t.Fatalf("sent %q, exit %d", out, code)
	}
	out, code = run(t, sc, "-f missing /etc/passwd", "\x00")
	if code != 1 || !strings.Contains(out, "\x01scp: \"missing\": file does not exist\n") ||
		!strings.Contains(out, "permission denied") {
		t.Fatalf("sent %q, exit %d", out, code)
	}
}

func TestRunAndIsCommand(t *testing.T) {
	for cmd, want := range map[string]bool{
		"scp -t .":                     true,
		"scp -v -r -p -d -t -- 'a b'":  true,
		"scp -f file":                  true,
		"scp a b":                      false,
		"/usr/bin/scp -t .":            false,
		"scp -t":                       false,
		"rsync --server":               false,
		"scp -t 'unterminated":         false,
		`scp -t "dir with \"quotes\""`: true,
	} {
		if got := IsCommand(cmd); got != want {
			t.Errorf("IsCommand(%q) = %v", cmd, got)
		}
	}
	sc := newScope(t, uploads.Limits{})
	sc.Mkdir("my dir", 0)
	tr := &transcript{in: strings.NewReader("C0644 1 f\nx\x00")}
	if code := Run(context.Background(), tr, io.Discard, sc, `scp -t 'my dir'`, nil); code != 0 {
		t.Fatalf("exit %d, answered %q", code, tr.out.String())
	}
	if got := tree(t, sc); got != "my dir/ my dir/f=x" {
		t.Fatalf("staged %q", got)
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string]string{
		`scp -t .`:                 "scp|-t|.",
		`scp  -t   'a b'`:          "scp|-t|a b",
		`scp -t "a \"b\" \$c\\d"`:  `scp|-t|a "b" $c\d`,
		`scp -t a\ b`:              "scp|-t|a b",
		`scp -t ''`:                "scp|-t|",
		`scp -t 'it'"'"'s'`:        "scp|-t|it's",
		"scp -t \"a\\\nb\"":        "scp|-t|ab",
		`scp -t -- -leading-dash`:  "scp|-t|--|-leading-dash",
		`scp -t "keep \n literal"`: `scp|-t|keep \n literal`,
	} {
		got, err := SplitCommand(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
