package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoKeys means there is no key that could ever authenticate.
var ErrNoKeys = errors.New("no authorized key")

// DefaultAuthorizedKeys returns the key files of the user running the
// bridge, for a developer's machine: ~/.ssh/authorized_keys and
// ~/.ssh/id_*.pub, whichever exist. With none it returns an error wrapping
// ErrNoKeys that says how to make one.
func DefaultAuthorizedKeys() ([]string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("default authorized keys: %w", err)
	}
	return defaultAuthorizedKeysIn(filepath.Join(home, ".ssh"))
}

func defaultAuthorizedKeysIn(dir string) ([]string, error) {
	var paths []string
	if isRegular(filepath.Join(dir, "authorized_keys")) {
		paths = append(paths, filepath.Join(dir, "authorized_keys"))
	}
	pubs, err := filepath.Glob(filepath.Join(dir, "id_*.pub"))
	if err != nil {
		return nil, fmt.Errorf("default authorized keys: %w", err)
	}
	sort.Strings(pubs)
	for _, p := range pubs {
		// A certificate is not a key to authorize.
		if !strings.HasSuffix(p, "-cert.pub") && isRegular(p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no authorized_keys or id_*.pub in %s; create a key with `ssh-keygen -t ed25519` or give --authorized-keys FILE", ErrNoKeys, dir)
	}
	return paths, nil
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
