package probe

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"sshbridge/uploads"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		command string
		want    string // String() of the probe; "" when not a probe
	}{
		{"echo ${ShellId}%ComSpec%", "shell-type"},
		{"md5sum", "md5sum -"},
		{"sha1sum", "sha1sum -"},
		{"md5sum /tmp/uploads/f", "md5sum /tmp/uploads/f"},
		{"sha1sum /tmp/uploads/d/f.tar.gz", "sha1sum /tmp/uploads/d/f.tar.gz"},
		// rclone's escaping, and quotes.
		{`md5sum /tmp/uploads/b\ c`, "md5sum /tmp/uploads/b c"},
		{`md5sum /tmp/uploads/\-dash\ ünï`, "md5sum /tmp/uploads/-dash ünï"},
		{`md5sum '/tmp/uploads/it'\''s'`, "md5sum /tmp/uploads/it's"},
		{`md5sum "/tmp/uploads/b c"`, "md5sum /tmp/uploads/b c"},
		{`md5sum /tmp/uploads/a\\b`, `md5sum /tmp/uploads/a\b`},
		// Not probes: other echoes, other commands, other spellings.
		{"echo hello", ""},
		{"echo ${ShellId}%ComSpec% ", ""},
		{"echo $ShellId%ComSpec%", ""},
		{"md5sum ", ""},
		{"md5sum  /tmp/uploads/f", ""},
		{"md5sum /tmp/uploads/f ", ""},
		{"md5sum -b /tmp/uploads/f", ""},
		{"md5sum /tmp/uploads/f /tmp/uploads/g", ""},
		{"md5 -r /tmp/uploads/f", ""},
		{"sha256sum /tmp/uploads/f", ""},
		{"rclone md5sum", ""},
		{"MD5SUM /tmp/uploads/f", ""},
		// Outside the staging area, or not clean.
		{"md5sum /etc/passwd", ""},
		{"md5sum /tmp/uploads", ""},
		{"md5sum /tmp/uploads/", ""},
		{"md5sum /tmp/uploadsx/f", ""},
		{"md5sum /tmp/uploads/../etc/passwd", ""},
		{"md5sum /tmp/uploads/./f", ""},
		{"md5sum /tmp/uploads//f", ""},
		{"md5sum f", ""},
		{"md5sum ~/f", ""},
		// What a shell would expand, split or redirect.
		{"md5sum /tmp/uploads/*", ""},
		{"md5sum /tmp/uploads/f?", ""},
		{"md5sum /tmp/uploads/[ab]", ""},
		{"md5sum /tmp/uploads/{a,b}", ""},
		{"md5sum /tmp/uploads/$HOME", ""},
		{`md5sum "/tmp/uploads/$HOME"`, ""},
		{"md5sum \"/tmp/uploads/`id`\"", ""},
		{"md5sum /tmp/uploads/$(id)", ""},
		{"md5sum /tmp/uploads/f;id", ""},
		{"md5sum /tmp/uploads/f|id", ""},
		{"md5sum /tmp/uploads/f&&id", ""},
		{"md5sum /tmp/uploads/f>x", ""},
		{"md5sum /tmp/uploads/f\nid", ""},
		{"md5sum /tmp/uploads/f\\\nid", ""},
		{"md5sum /tmp/uploads/f\tg", ""},
		{"md5sum '/tmp/uploads/f", ""},
		{`md5sum "/tmp/uploads/f`, ""},
		{`md5sum /tmp/uploads/f\`, ""},
		{"md5sum /tmp/uploads/f#x", ""},
		{"md5sum /tmp/uploads/'a\nb'", ""},
	} {
		p, ok := Parse(c.command)
		got := ""
		if ok {
			got = p.String()
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.command, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"md5sum /tmp/uploads/f", `md5sum /tmp/uploads/b\ c`, `sha1sum '/tmp/uploads/a'"b"`, "md5sum /tmp/uploads/$(id)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, command string) {
		p, ok := Parse(command)
		if !ok || p.path == "" {
			return
		}
		if !strings.HasPrefix(p.path, uploads.Home+"/") || uploads.CheckPath(p.rel) != nil {
			t.Fatalf("Parse(%q) accepted path %q", command, p.path)
		}
		if strings.ContainsAny(command, "$`*?[;|&<>(){}~#\t\n") && !strings.ContainsAny(command, `'\`) {
			t.Fatalf("Parse(%q) accepted a word the shell would expand", command)
		}
	})
}

func TestRun(t *testing.T) {
	st, err := uploads.Open(t.TempDir(), uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sc := st.Scope("u", "a")
	put := func(name, data string) {
		w, err := sc.Create(name, os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	put("d/b c", "hello\n")
	put(`a\b`, "")
	for _, c := range []struct {
		command, stdin string
		stdout, stderr string
		code           int
	}{
		{"echo ${ShellId}%ComSpec%", "", "%ComSpec%\n", "", 0},
		{"md5sum", "", "d41d8cd98f00b204e9800998ecf8427e  -\n", "", 0},
		{"sha1sum", "", "da39a3ee5e6b4b0d3255bfef95601890afd80709  -\n", "", 0},
		{"md5sum", "hello\n", "b1946ac92492d2347c6235b4d2611184  -\n", "", 0},
		{`md5sum /tmp/uploads/d/b\ c`, "", "b1946ac92492d2347c6235b4d2611184  /tmp/uploads/d/b c\n", "", 0},
		{`sha1sum /tmp/uploads/d/b\ c`, "", "f572d396fae9206628714fb2ce00f72e94f2258f  /tmp/uploads/d/b c\n", "", 0},
		{`md5sum '/tmp/uploads/a\b'`, "", `\d41d8cd98f00b204e9800998ecf8427e  /tmp/uploads/a\\b` + "\n", "", 0},
		{"md5sum /tmp/uploads/missing", "", "", "md5sum: /tmp/uploads/missing: No such file or directory\n", 1},
		{"sha1sum /tmp/uploads/d", "", "", "sha1sum: /tmp/uploads/d: Is a directory\n", 1},
	} {
		p, ok := Parse(c.command)
		if !ok {
			t.Fatalf("%q is not a probe", c.command)
		}
		var stdout, stderr bytes.Buffer
		code, err := p.Run(t.Context(), sc, strings.NewReader(c.stdin), &stdout, &stderr)
		if err != nil || code != c.code || stdout.String() != c.stdout || stderr.String() != c.stderr {
			t.Errorf("%q: exit %d, err %v, stdout %q, stderr %q; want exit %d, %q, %q",
				c.command, code, err, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
		}
	}
	// A probe reads the staging area and takes nothing from it.
	if es, err := sc.Pending(); err != nil || len(es) != 2 {
		t.Fatalf("pending after the probes: %v, %v", es, err)
	}
}
