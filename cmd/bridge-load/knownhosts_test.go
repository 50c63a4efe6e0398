package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// A known_hosts file hashed by OpenSSH (HashKnownHosts yes, Debian's
// default; here ssh-keygen -H) still gives the host's key algorithm, and
// a host it does not name is an error.
func TestKnownAlgorithmsHashedLines(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize("localhost:2222")}, key)
	if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-H", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(file)
	if raw[0] != '|' {
		t.Fatalf("not hashed: %s", raw)
	}
	hk, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	algs, err := knownAlgorithms(hk, file, "localhost:2222")
	if err != nil || !slices.Equal(algs, []string{ssh.KeyAlgoED25519}) {
		t.Fatalf("knownAlgorithms = %v, %v; want [%s]", algs, err, ssh.KeyAlgoED25519)
	}
	if algs, err := knownAlgorithms(hk, file, "localhost:2223"); err == nil {
		t.Fatalf("another port: %v, want an error", algs)
	}
}
