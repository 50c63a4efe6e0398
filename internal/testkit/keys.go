package testkit

import (
	"embed"
	"os"
	"path/filepath"
	"testing"
)

// keys are ed25519 client keys made once with
// `ssh-keygen -t ed25519 -N "" -C test-NAME -f NAME`: default, user-b,
// other-user, stranger, apps-nothing, attacker, wrong0 to wrong5.
//
//go:embed testdata/keys
var keys embed.FS

// KeyFile writes the fixed key called name into dir, unless it is there
// already, and returns the path of its private half (mode 0600, as ssh
// demands); the public half is that path + ".pub". An unknown name fails
// the test.
func KeyFile(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	for _, half := range []struct {
		file string
		mode os.FileMode
	}{{name + ".pub", 0o644}, {name, 0o600}} {
		raw, err := keys.ReadFile("testdata/keys/" + half.file)
		if err != nil {
			t.Fatalf("no fixed test key %q in testkit/testdata/keys: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, half.file), raw, half.mode); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
