package objstage

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minio/sio"
)

// KeySize is the operator's key's length in bytes: 256 bits.
const KeySize = 32

// ReadKeyFile reads the operator's key: KeySize bytes in standard base64
// (what `openssl rand -base64 32` prints), surrounding white space
// ignored. Any other content is an error that names the file and never
// shows it.
func ReadKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--staging-key-file is required with an s3:// staging URL")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("staging key file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("staging key file %s: want a 256-bit key in base64, as `openssl rand -base64 32` prints", path)
	}
	return key, nil
}

// sioConfig is the DARE configuration of blob id: its own key, derived
// from the operator's.
func (s *Store) sioConfig(id string) (sio.Config, error) {
	k, err := hkdf.Key(sha256.New, s.key, nil, "sshbridge staging blob v1 "+id, KeySize)
	if err != nil {
		return sio.Config{}, err
	}
	return sio.Config{MinVersion: sio.Version20, MaxVersion: sio.Version20, Key: k}, nil
}

// encryptedSize is the size of the blob of a plaintext of n bytes.
func encryptedSize(n int64) int64 {
	e, err := sio.EncryptedSize(uint64(n))
	if err != nil {
		return -1
	}
	return int64(e)
}

// decryptReader decrypts blob id's stream.
func (s *Store) decryptReader(id string, r io.Reader) (io.Reader, error) {
	cfg, err := s.sioConfig(id)
	if err != nil {
		return nil, err
	}
	return sio.DecryptReader(r, cfg)
}
