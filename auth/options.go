package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// keyOptions are the options of one authorized_keys line, as sshd(8)
// documents them, plus apps="...".
type keyOptions struct {
	apps          appList // nil: every app
	from          addrList
	expiry        time.Time // zero: none
	env           []envVar  // in file order; the first of a name wins
	command       string
	hasCommand    bool
	noPTY         bool
	noPortFwd     bool
	noAgentFwd    bool
	noX11Fwd      bool
	noUserRC      bool
	permitOpen    []string
	permitListen  []string
	principals    []string // cert-authority lines only
	certAuthority bool
	tunnel        string
	noTouch       bool
}

type envVar struct{ name, value string }

// parseOptions parses a comma-separated option list: names are
// case-insensitive, values are double-quoted with \" for a quote.
func parseOptions(s string, loc *time.Location) (keyOptions, error) {
	var o keyOptions
	seen := map[string]bool{}
	for s != "" {
		name, value, hasValue, rest, err := nextOption(s)
		if err != nil {
			return o, err
		}
		s = rest
		if err := o.apply(name, value, hasValue, seen, loc); err != nil {
			return o, err
		}
	}
	if len(o.principals) > 0 && !o.certAuthority {
		return o, errors.New(`"principals" is only allowed with "cert-authority"`)
	}
	return o, nil
}

// nextOption splits the first option off s.
func nextOption(s string) (name, value string, hasValue bool, rest string, err error) {
	i := 0
	for i < len(s) && s[i] != '=' && s[i] != ',' {
		i++
	}
	name = strings.ToLower(s[:i])
	if name == "" {
		return "", "", false, "", errors.New("empty option")
	}
	if !looksLikeOptionName(name) {
		// Not quoted back: it may be a pasted secret.
		return "", "", false, "", errors.New("malformed option list")
	}
	if i == len(s) {
		return name, "", false, "", nil
	}
	if s[i] == ',' {
		if i+1 == len(s) {
			return "", "", false, "", errors.New("trailing comma in options")
		}
		return name, "", false, s[i+1:], nil
	}
	i++ // '='
	if i >= len(s) || s[i] != '"' {
		return "", "", false, "", fmt.Errorf("option %q: value must be in double quotes", name)
	}
	i++
	var b strings.Builder
	for {
		if i >= len(s) {
			return "", "", false, "", fmt.Errorf("option %q: missing closing quote", name)
		}
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i += 2
			continue
		}
		if c == '"' {
			i++
			break
		}
		b.WriteByte(c)
		i++
	}
	switch {
	case i == len(s):
		rest = ""
	case s[i] == ',' && i+1 < len(s):
		rest = s[i+1:]
	case s[i] == ',':
		return "", "", false, "", errors.New("trailing comma in options")
	default:
		return "", "", false, "", fmt.Errorf("option %q: unexpected text after the closing quote", name)
	}
	return name, b.String(), true, rest, nil
}

// setFlag applies an option without a value; false for any other name.
func (o *keyOptions) setFlag(name string) bool {
	switch name {
	case "cert-authority":
		o.certAuthority = true
	case "no-pty":
		o.noPTY = true
	case "pty":
		o.noPTY = false
	case "no-port-forwarding":
		o.noPortFwd = true
	case "port-forwarding":
		o.noPortFwd = false
	case "no-agent-forwarding":
		o.noAgentFwd = true
	case "agent-forwarding":
		o.noAgentFwd = false
	case "no-x11-forwarding":
		o.noX11Fwd = true
	case "x11-forwarding":
		o.noX11Fwd = false
	case "no-user-rc":
		o.noUserRC = true
	case "user-rc":
		o.noUserRC = false
	case "no-touch-required":
		o.noTouch = true
	case "restrict":
		// Every restriction; options after it may lift one, as in sshd
		// ("restrict,pty").
		o.noPTY, o.noPortFwd, o.noAgentFwd, o.noX11Fwd, o.noUserRC = true, true, true, true, true
	default:
		return false
	}
	return true
}

func (o *keyOptions) apply(name, value string, hasValue bool, seen map[string]bool, loc *time.Location) error {
	if !hasValue {
		if o.setFlag(name) {
			return nil
		}
	} else if (&keyOptions{}).setFlag(name) {
		return fmt.Errorf("option %q takes no value", name)
	}
	switch name {
	case "apps", "from", "command", "expiry-time", "environment", "permitopen", "permitlisten", "principals", "tunnel":
	case "verify-required":
		// Needs the FIDO signature flags, which the bridge cannot see:
		// refusing the line beats silently weakening it.
		return fmt.Errorf("option %q is not supported", name)
	default:
		return fmt.Errorf("unknown option %q", name)
	}
	if !hasValue {
		return fmt.Errorf("option %q needs a quoted value", name)
	}
	repeatable := name == "environment" || name == "permitopen" || name == "permitlisten" || name == "expiry-time"
	if seen[name] && !repeatable {
		return fmt.Errorf("option %q given twice", name)
	}
	seen[name] = true
	switch name {
	case "apps":
		l, err := parseAppList(value)
		if err != nil {
			return err
		}
		o.apps = l
	case "from":
		l, err := parseAddrList(value, false)
		if err != nil {
			return fmt.Errorf("from: %w", err)
		}
		o.from = l
	case "command":
		o.command, o.hasCommand = value, true
	case "expiry-time":
		t, err := parseExpiry(value, loc)
		if err != nil {
			return err
		}
		// The earliest of several wins, as in sshd.
		if o.expiry.IsZero() || t.Before(o.expiry) {
			o.expiry = t
		}
	case "environment":
		n, v, ok := strings.Cut(value, "=")
		if !ok || !validEnvName(n) {
			// The value is not quoted back: it may be a secret.
			return errors.New("environment: value is not NAME=value")
		}
		for _, e := range o.env {
			if e.name == n {
				return nil
			}
		}
		o.env = append(o.env, envVar{n, v})
	case "permitopen", "permitlisten":
		if value == "" || strings.ContainsAny(value, " \t") {
			return fmt.Errorf("%s: bad value %q", name, value)
		}
		if name == "permitopen" {
			o.permitOpen = append(o.permitOpen, value)
		} else {
			o.permitListen = append(o.permitListen, value)
		}
	case "principals":
		for _, p := range strings.Split(value, ",") {
			if p == "" {
				return errors.New("principals: empty name")
			}
			o.principals = append(o.principals, p)
		}
	case "tunnel":
		o.tunnel = value
	}
	return nil
}

// looksLikeOptionName tells a name safe to quote in an error (letters and
// dashes, as every option name but x11 ones): a typo is worth showing, a
// token with digits is not.
func looksLikeOptionName(n string) bool {
	n = strings.ReplaceAll(n, "x11", "")
	return strings.Trim(n, "abcdefghijklmnopqrstuvwxyz-") == ""
}

func validEnvName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseExpiry reads YYYYMMDD[HHMM[SS]], in loc unless it ends in Z (UTC),
// as sshd reads expiry-time.
func parseExpiry(s string, loc *time.Location) (time.Time, error) {
	v := s
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		v, loc = v[:len(v)-1], time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if !ok {
		return time.Time{}, fmt.Errorf("expiry-time: bad time %q (want YYYYMMDD[HHMM[SS]][Z])", s)
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiry-time: bad time %q (want YYYYMMDD[HHMM[SS]][Z])", s)
	}
	return t, nil
}
