package sftp

import (
	"path"
	"strings"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// Home is the one directory the client sees: where the platform puts the
// files in the container, so that names read the same on both sides.
const Home = "/tmp/uploads"

// realPath is the absolute, clean form of an SFTP path: relative paths are
// taken from Home. It never fails, and says nothing of what exists.
func realPath(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(Home, p)
	}
	return path.Clean(p)
}

// errOutside is the refusal of a path outside Home.
var errOutside = &statusError{code: pkgsftp.ErrSSHFxPermissionDenied,
	msg: "permission denied: only " + Home + " is served"}

// resolve maps an SFTP path to a name of the staging scope ("" for Home
// itself), refusing anything outside Home and names the platform cannot take.
func resolve(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		// Before Clean, which could otherwise fold a NUL into a harmless look.
		return "", &statusError{code: pkgsftp.ErrSSHFxPermissionDenied, msg: "invalid file name: NUL byte"}
	}
	p = realPath(p)
	if p == Home {
		return "", nil
	}
	rel, ok := strings.CutPrefix(p, Home+"/")
	if !ok {
		return "", errOutside
	}
	if err := uploads.CheckPath(rel); err != nil {
		return "", &statusError{code: pkgsftp.ErrSSHFxPermissionDenied, msg: err.Error()}
	}
	return rel, nil
}
