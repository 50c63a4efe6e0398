package uploads

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of a name, those of the Linux file systems the platform writes to.
const (
	maxComponent = 255
	maxPath      = 4095
)

// CheckPath reports whether rel may name a pending file or directory: a
// relative, clean, slash-separated path of valid UTF-8 whose components are
// neither empty, ".", "..", longer than 255 bytes, nor hold a control
// character (NUL, newline...: they cannot travel in a multipart file name).
// Spaces, unicode and leading dashes are fine. The root ("") is not a name.
func CheckPath(rel string) error {
	reason := pathProblem(rel)
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w %s: %s", ErrInvalidName, quote(rel), reason)
}

func pathProblem(rel string) string {
	switch {
	case rel == "":
		return "empty name"
	case len(rel) > maxPath:
		return "path too long"
	case strings.HasPrefix(rel, "/"):
		return "absolute path outside /tmp/uploads"
	case !utf8.ValidString(rel):
		return "not valid UTF-8"
	}
	for _, c := range strings.Split(rel, "/") {
		switch {
		case c == "":
			return "empty path component"
		case c == "." || c == "..":
			return "\".\" and \"..\" are not allowed"
		case len(c) > maxComponent:
			return "name longer than 255 bytes"
		case strings.ContainsFunc(c, isControl):
			return "control characters (NUL, newline...) are not allowed"
		}
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// quote renders a user's name in a message without letting control bytes
// through.
func quote(s string) string { return strconv.Quote(s) }

// parentOf is the directory holding rel ("" for the root).
func parentOf(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

// under reports whether rel lies strictly inside dir ("" is the root).
func under(rel, dir string) bool {
	if dir == "" {
		return rel != ""
	}
	return strings.HasPrefix(rel, dir+"/")
}

func checkNonRoot(rel string) error {
	if rel == "" {
		return perr("", ErrPermission)
	}
	return CheckPath(rel)
}

// Home is where the user sees the scope's tree, in SSH tools and in the
// container alike.
const Home = "/tmp/uploads"

// Resolve maps a path as a client names it, absolute or relative to Home,
// to a name of the scope ("" for Home itself). A path outside Home is
// refused with ErrPermission, and a name CheckPath refuses with
// ErrInvalidName; NUL bytes are refused before any cleaning.
func Resolve(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w %s: NUL byte", ErrInvalidName, quote(p))
	}
	if !path.IsAbs(p) {
		p = path.Join(Home, p)
	}
	p = path.Clean(p)
	if p == Home {
		return "", nil
	}
	rel, ok := strings.CutPrefix(p, Home+"/")
	if !ok {
		return "", fmt.Errorf("%s: %w: only %s is served", quote(p), ErrPermission, Home)
	}
	if err := CheckPath(rel); err != nil {
		return "", err
	}
	return rel, nil
}
