package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// HostKeyName is the file name of the generated host key in the data directory.
const HostKeyName = "ssh_host_ed25519_key"

// LoadHostKey reads an OpenSSH private key file. The file must not be readable
// by others than its owner, as sshd insists too.
func LoadHostKey(file string) (gossh.Signer, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("host key %s: permissions %#o are too open (want 0600)", file, st.Mode().Perm())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", file, err)
	}
	return signer, nil
}

// EnsureHostKey loads the ed25519 host key kept in dir, making it on first
// use. A host key that changed at every start would train users to ignore
// OpenSSH's warning, so it is made once and kept with mode 0600.
func EnsureHostKey(dir string) (gossh.Signer, error) {
	file := filepath.Join(dir, HostKeyName)
	signer, err := LoadHostKey(file)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return signer, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "ssh bridge host key")
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".hostkey-*")
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("host key: %w", err)
	}
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	// Link rather than rename: two bridges starting on one shared data
	// directory must end up with the same key, not the last writer's.
	if err := os.Link(tmp.Name(), file); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return LoadHostKey(file)
}
