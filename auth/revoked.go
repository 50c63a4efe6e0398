package auth

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"slices"

	gossh "golang.org/x/crypto/ssh"
)

// revocationList is sshd's RevokedKeys: an OpenSSH KRL, or a text file of
// public keys (one per line, authorized_keys syntax without options).
type revocationList struct {
	keys   map[string]bool // plain key blobs
	sha1   map[string]bool // SHA1 of plain key blobs
	sha256 map[string]bool // SHA256 of plain key blobs
	certs  []certRevocations
}

// certRevocations is one KRL certificate section.
type certRevocations struct {
	ca      string // CA key blob; "" matches any CA (key ids only)
	serials []serialRange
	keyIDs  map[string]bool
}

type serialRange struct{ lo, hi uint64 }

func parseRevocationList(name string, raw []byte) (*revocationList, error) {
	rl := &revocationList{keys: map[string]bool{}, sha1: map[string]bool{}, sha256: map[string]bool{}}
	if bytes.HasPrefix(raw, []byte(krlMagic)) {
		if err := rl.parseKRL(raw); err != nil {
			return nil, fmt.Errorf("%s: KRL: %w", name, err)
		}
		return rl, nil
	}
	lines, err := parseAuthorizedKeys(name, bytes.NewReader(raw), nil)
	if err != nil {
		return nil, err
	}
	for _, kl := range lines {
		if kl.hasOpts {
			return nil, fmt.Errorf("%s: options are not allowed here", kl.source)
		}
		rl.keys[string(kl.key.Marshal())] = true
	}
	return rl, nil
}

// keyRevoked is OpenSSH's ssh_krl_check_key: the key itself, and for a
// certificate also its CA key and the certificate's serial and key id.
func (rl *revocationList) keyRevoked(key gossh.PublicKey) bool {
	cert, isCert := key.(*gossh.Certificate)
	if isCert {
		return rl.plainRevoked(cert.Key) || rl.plainRevoked(cert.SignatureKey) || rl.certRevoked(cert)
	}
	return rl.plainRevoked(key)
}

func (rl *revocationList) plainRevoked(key gossh.PublicKey) bool {
	blob := key.Marshal()
	if rl.keys[string(blob)] {
		return true
	}
	s1 := sha1.Sum(blob)
	s256 := sha256.Sum256(blob)
	return rl.sha1[string(s1[:])] || rl.sha256[string(s256[:])]
}

func (rl *revocationList) certRevoked(cert *gossh.Certificate) bool {
	ca := string(cert.SignatureKey.Marshal())
	for _, sec := range rl.certs {
		if sec.ca != "" && sec.ca != ca {
			continue
		}
		if sec.keyIDs[cert.KeyId] {
			return true
		}
		// Serial 0 is what a CA writes when it sets none: never matched,
		// as in OpenSSH.
		if cert.Serial != 0 && sec.hasSerial(cert.Serial) {
			return true
		}
	}
	return false
}

// hasSerial searches the sorted, disjoint ranges.
func (sec *certRevocations) hasSerial(s uint64) bool {
	i, _ := slices.BinarySearchFunc(sec.serials, s, func(r serialRange, s uint64) int {
		switch {
		case r.hi < s:
			return -1
		case r.lo > s:
			return 1
		}
		return 0
	})
	return i < len(sec.serials) && sec.serials[i].lo <= s && s <= sec.serials[i].hi
}
