package auth

import (
	"bytes"
	"fmt"
	"os"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// keySet is one loaded version of every key file; it is never modified
// after load, so handlers read it without locks.
type keySet struct {
	keys       map[string][]*keyLine // plain key blob -> lines, in file order
	caLines    map[string][]*keyLine // cert-authority key blob -> lines
	trustedCAs map[string]string     // CA key blob -> source file
	revoked    *revocationList       // nil: none
	count      int                   // keys and CAs, for the log
}

// loadKeySet reads every configured file.
func loadKeySet(cfg *Config, loc *time.Location) (*keySet, []string, error) {
	ks := &keySet{
		keys:       map[string][]*keyLine{},
		caLines:    map[string][]*keyLine{},
		trustedCAs: map[string]string{},
	}
	var warnings []string
	for _, name := range cfg.keyFiles() {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("authorized keys: %w", err)
		}
		lines, err := parseAuthorizedKeys(name, bytes.NewReader(raw), loc)
		if err != nil {
			return nil, nil, fmt.Errorf("authorized keys: %w", err)
		}
		for i := range lines {
			kl := &lines[i]
			blob := string(kl.key.Marshal())
			if kl.opts.certAuthority {
				ks.caLines[blob] = append(ks.caLines[blob], kl)
			} else {
				ks.keys[blob] = append(ks.keys[blob], kl)
			}
			if kl.opts.apps.onlyNegated() {
				warnings = append(warnings, kl.source+": apps= has only negated patterns, so this key may use no app")
			}
			ks.count++
		}
	}
	if name := cfg.TrustedUserCAKeysFile; name != "" {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("trusted user CA keys: %w", err)
		}
		lines, err := parseAuthorizedKeys(name, bytes.NewReader(raw), loc)
		if err != nil {
			return nil, nil, fmt.Errorf("trusted user CA keys: %w", err)
		}
		for _, kl := range lines {
			if kl.hasOpts {
				return nil, nil, fmt.Errorf("trusted user CA keys: %s: options are not allowed here", kl.source)
			}
			ks.trustedCAs[string(kl.key.Marshal())] = name
			ks.count++
		}
	}
	if name := cfg.RevokedKeysFile; name != "" {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("revoked keys: %w", err)
		}
		rl, err := parseRevocationList(name, raw)
		if err != nil {
			return nil, nil, fmt.Errorf("revoked keys: %w", err)
		}
		ks.revoked = rl
	}
	return ks, warnings, nil
}

func (ks *keySet) isRevoked(key gossh.PublicKey) bool {
	return ks.revoked != nil && ks.revoked.keyRevoked(key)
}
