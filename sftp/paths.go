package sftp

import (
	"path"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// Home is the one directory the client sees, its home and start directory:
// where the platform puts the files in the container, so that names read
// the same on both sides.
const Home = uploads.Home

// realPath is the absolute, clean form of an SFTP path: relative paths are
// taken from Home. It never fails, and says nothing of what exists.
func realPath(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(Home, p)
	}
	return path.Clean(p)
}

// resolve maps an SFTP path to a name of the staging scope ("" for Home
// itself). Anything outside Home, and any name the platform cannot take,
// is refused with SSH_FX_PERMISSION_DENIED and a message saying why.
func resolve(p string) (string, error) {
	rel, err := uploads.Resolve(p)
	if err != nil {
		return "", &statusError{code: pkgsftp.ErrSSHFxPermissionDenied, msg: err.Error(), cause: err}
	}
	return rel, nil
}
