package auth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// maxLineLen bounds one line; sshd's limit is 16 KiB, RSA keys of 16384
// bits with options stay well below this.
const maxLineLen = 64 * 1024

// keyLine is one key of an authorized_keys file.
type keyLine struct {
	key     gossh.PublicKey
	opts    keyOptions
	hasOpts bool
	source  string // "file:line", for the audit log
}

// parseAuthorizedKeys reads an authorized_keys file. Any line it cannot
// parse is an error naming name and the line number.
func parseAuthorizedKeys(name string, r io.Reader, loc *time.Location) ([]keyLine, error) {
	var lines []keyLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	n := 0
	for sc.Scan() {
		n++
		kl, ok, err := parseAuthorizedKeyLine(sc.Bytes(), loc)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if ok {
			kl.source = fmt.Sprintf("%s:%d", name, n)
			lines = append(lines, kl)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, n+1, maxLineLen)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return lines, nil
}

// parseAuthorizedKeyLine parses one line; ok is false for blank lines and
// comments. Like sshd, it first tries the line as a bare key, then as
// options followed by a key.
func parseAuthorizedKeyLine(line []byte, loc *time.Location) (kl keyLine, ok bool, err error) {
	s := strings.TrimRight(string(bytes.TrimLeft(line, " \t")), "\r")
	if s == "" || s[0] == '#' {
		return kl, false, nil
	}
	key, bareErr := parseKeyText(s)
	if bareErr == nil {
		kl.key = key
		return kl, true, nil
	}
	if f := strings.Fields(s); len(f) > 0 && isKeyType(f[0]) {
		return kl, false, bareErr
	}
	optText, rest, err := splitOptions(s)
	if err != nil {
		return kl, false, err
	}
	kl.opts, err = parseOptions(optText, loc)
	if err != nil {
		return kl, false, err
	}
	kl.hasOpts = true
	kl.key, err = parseKeyText(strings.TrimLeft(rest, " \t"))
	if err != nil {
		return kl, false, err
	}
	return kl, true, nil
}

// isKeyType tells a key type name, to report a bad key as such rather
// than as an unknown option.
func isKeyType(name string) bool {
	switch name {
	case gossh.KeyAlgoRSA, gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384,
		gossh.KeyAlgoECDSA521, gossh.KeyAlgoED25519, gossh.KeyAlgoSKECDSA256, gossh.KeyAlgoSKED25519,
		gossh.CertAlgoRSAv01, gossh.CertAlgoECDSA256v01, gossh.CertAlgoECDSA384v01,
		gossh.CertAlgoECDSA521v01, gossh.CertAlgoED25519v01, gossh.CertAlgoSKECDSA256v01, gossh.CertAlgoSKED25519v01:
		return true
	// x/crypto deprecates the DSA names and no longer parses DSA keys, but
	// old authorized_keys files hold ssh-dss lines: named, such a line's
	// error says "bad ssh-dss key: unknown key algorithm", not that its
	// options are bad.
	//lint:ignore SA1019 recognising DSA lines, to name them in the error, is the use of these names
	case gossh.KeyAlgoDSA, gossh.CertAlgoDSAv01:
		return true
	}
	return false
}

// splitOptions cuts the option list at the first blank outside quotes.
func splitOptions(s string) (opts, rest string, err error) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[:i], s[i:], nil
		}
	}
	if quoted {
		return "", "", errors.New("missing closing quote in options")
	}
	return "", "", errors.New("no key after the options")
}

// parseKeyText parses "type base64 [comment]".
func parseKeyText(s string) (gossh.PublicKey, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return nil, errors.New("no key found")
	}
	if !isKeyType(f[0]) {
		// Not quoted back: the text may be anything, a secret included.
		return nil, errors.New("no key of a known type found")
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return nil, fmt.Errorf("bad base64 in %s key", f[0])
	}
	key, err := gossh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("bad %s key: %w", f[0], err)
	}
	if key.Type() != f[0] {
		return nil, fmt.Errorf("key type %q does not match its data (%s)", f[0], key.Type())
	}
	if _, isCert := key.(*gossh.Certificate); isCert {
		return nil, errors.New("a certificate is not an authorized key: add its CA key with cert-authority instead")
	}
	return key, nil
}
