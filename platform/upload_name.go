package platform

import (
	"errors"
	"strings"
)

// checkUploadName accepts a relative path below /tmp/uploads, subdirectories
// allowed ("dir/sub/file"), and refuses anything that could land elsewhere
// or that the file system cannot hold.
func checkUploadName(name string) error {
	switch {
	case name == "":
		return errors.New("is missing")
	case len(name) > 1024:
		return errors.New("is too long")
	case strings.ContainsRune(name, 0):
		return errors.New("contains a NUL byte")
	case strings.HasPrefix(name, "/"):
		return errors.New("must be relative to /tmp/uploads")
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return errors.New("has an empty path component")
		case c == "." || c == "..":
			return errors.New("must stay inside /tmp/uploads")
		case len(c) > 255:
			return errors.New("has a path component over 255 bytes")
		}
	}
	return nil
}
