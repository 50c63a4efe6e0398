package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"
)

// Check reads every file cfg names, with the parsers New uses, and
// reports each problem rather than only the first, as `sshd -t` does:
// every line of an authorized_keys, trusted CA keys or text revocation
// file that New would refuse, as "FILE:LINE: reason"; a file that cannot
// be read, or a KRL that does not parse, as "FILE: reason"; and an error
// wrapping ErrNoKeys when no key or CA would remain. warnings are what New
// would log (an apps= of only negated patterns), as "FILE:LINE: text".
// When Check reports no problem, New with the same files succeeds.
// Check writes nothing and starts nothing.
func Check(cfg Config) (problems []error, warnings []string) {
	loc := cfg.Location
	if loc == nil {
		loc = time.Local
	}
	if err := cfg.Validate(); err != nil {
		return []error{err}, nil
	}
	count := 0
	for _, name := range cfg.keyFiles() {
		p, w, n := checkKeyFile(name, loc, false)
		problems, warnings, count = append(problems, p...), append(warnings, w...), count+n
	}
	if name := cfg.TrustedUserCAKeysFile; name != "" {
		p, _, n := checkKeyFile(name, loc, true)
		problems, count = append(problems, p...), count+n
	}
	if name := cfg.RevokedKeysFile; name != "" {
		raw, err := os.ReadFile(name)
		switch {
		case err != nil:
			problems = append(problems, err)
		case bytes.HasPrefix(raw, []byte(krlMagic)):
			if _, err := parseRevocationList(name, raw); err != nil {
				problems = append(problems, err)
			}
		default:
			p, _, _ := checkKeyFile(name, loc, true)
			problems = append(problems, p...)
		}
	}
	if len(problems) > 0 {
		return problems, warnings
	}
	if count == 0 {
		return []error{fmt.Errorf("%w in %v", ErrNoKeys, cfg.watchedFiles())}, warnings
	}
	// The loader itself, so that a check that passes is a load that passes.
	if _, _, err := loadKeySet(&cfg, loc); err != nil {
		return []error{err}, warnings
	}
	return nil, warnings
}

// checkKeyFile reports every bad line of one file in authorized_keys
// syntax (noOptions: a trusted CA keys or revocation file, where options
// are refused), the warnings of its good lines and how many keys it holds.
func checkKeyFile(name string, loc *time.Location, noOptions bool) (problems []error, warnings []string, keys int) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return []error{err}, nil, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	n := 0
	for sc.Scan() {
		n++
		kl, ok, err := parseAuthorizedKeyLine(sc.Bytes(), loc)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("%s:%d: %w", name, n, err))
		case ok && noOptions && kl.hasOpts:
			problems = append(problems, fmt.Errorf("%s:%d: options are not allowed here", name, n))
		case ok:
			keys++
			if kl.opts.apps.onlyNegated() {
				warnings = append(warnings, fmt.Sprintf("%s:%d: apps= has only negated patterns, so this key may use no app", name, n))
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%s:%d: line longer than %d bytes", name, n+1, maxLineLen)
		}
		problems = append(problems, err)
	}
	return problems, warnings, keys
}
