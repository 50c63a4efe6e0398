package sftp

import (
	"path"
	"strings"
	"testing"

	"sshbridge/uploads"
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{".", ""},
		{"/tmp/uploads", ""},
		{"/tmp/uploads/", ""},
		{"f", "f"},
		{"./a/b/../c", "a/c"},
		{"/tmp/uploads/dir/sub/f", "dir/sub/f"},
		{"-rf", "-rf"},
		{"a b/ünï", "a b/ünï"},
	} {
		got, err := resolve(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"/", "/etc", "..", "../x", "/tmp", "/tmp/uploads/..", "/tmp/uploadsx", "a\x00", "x\n", "\xff"} {
		if got, err := resolve(bad); err == nil {
			t.Errorf("resolve(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzResolve checks that whatever the client sends, a resolved name stays
// inside Home, is a valid scope name, and names the path the client meant.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", ".", "..", "/", "/tmp/uploads/a", "a/../../b", "/tmp/uploads/../../etc", "a\x00b", "//tmp//uploads//x/", "~/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := resolve(p)
		if err != nil {
			return
		}
		if strings.IndexByte(p, 0) >= 0 {
			t.Fatalf("NUL accepted: %q", p)
		}
		abs := path.Clean(path.Join(Home, p))
		if path.IsAbs(p) {
			abs = path.Clean(p)
		}
		if rel == "" {
			if abs != Home {
				t.Fatalf("%q resolved to the root, is %q", p, abs)
			}
			return
		}
		if err := uploads.CheckPath(rel); err != nil {
			t.Fatalf("%q resolved to invalid %q: %v", p, rel, err)
		}
		if abs != Home+"/"+rel {
			t.Fatalf("%q resolved to %q, is %q", p, rel, abs)
		}
	})
}
