package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// keyOptions are the options of one authorized_keys line, as sshd(8)
// documents them, plus apps="..." and session-mode="...".
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
	sessionMode   string // "", "session" or "connection"
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

// keyOption is one authorized_keys option the bridge knows.
type keyOption struct {
	// value: the option takes a quoted value (name="..."); otherwise it is
	// a flag, which takes none.
	value bool
	// repeatable: a valued option may come more than once on a line; a
	// flag always may.
	repeatable bool
	// apply records the option in o; nil: the option is known but refused.
	apply func(o *keyOptions, value string, loc *time.Location) error
}

// flagOption is a keyOption without a value that sets what set says.
func flagOption(set func(o *keyOptions)) keyOption {
	return keyOption{apply: func(o *keyOptions, _ string, _ *time.Location) error {
		set(o)
		return nil
	}}
}

// keyOptionTable holds every option name the bridge knows, as sshd(8)
// documents them (AUTHORIZED_KEYS FILE FORMAT), plus apps="..." and
// session-mode="...".
var keyOptionTable = map[string]keyOption{
	"cert-authority":      flagOption(func(o *keyOptions) { o.certAuthority = true }),
	"no-pty":              flagOption(func(o *keyOptions) { o.noPTY = true }),
	"pty":                 flagOption(func(o *keyOptions) { o.noPTY = false }),
	"no-port-forwarding":  flagOption(func(o *keyOptions) { o.noPortFwd = true }),
	"port-forwarding":     flagOption(func(o *keyOptions) { o.noPortFwd = false }),
	"no-agent-forwarding": flagOption(func(o *keyOptions) { o.noAgentFwd = true }),
	"agent-forwarding":    flagOption(func(o *keyOptions) { o.noAgentFwd = false }),
	"no-x11-forwarding":   flagOption(func(o *keyOptions) { o.noX11Fwd = true }),
	"x11-forwarding":      flagOption(func(o *keyOptions) { o.noX11Fwd = false }),
	"no-user-rc":          flagOption(func(o *keyOptions) { o.noUserRC = true }),
	"user-rc":             flagOption(func(o *keyOptions) { o.noUserRC = false }),
	"no-touch-required":   flagOption(func(o *keyOptions) { o.noTouch = true }),
	// Every restriction; options after it may lift one, as in sshd
	// ("restrict,pty").
	"restrict": flagOption(func(o *keyOptions) {
		o.noPTY, o.noPortFwd, o.noAgentFwd, o.noX11Fwd, o.noUserRC = true, true, true, true, true
	}),
	// Needs the FIDO signature flags, which the bridge cannot see:
	// refusing the line beats silently weakening it.
	"verify-required": {},

	"apps":         {value: true, apply: applyApps},
	"from":         {value: true, apply: applyFrom},
	"command":      {value: true, apply: applyCommand},
	"expiry-time":  {value: true, repeatable: true, apply: applyExpiry},
	"environment":  {value: true, repeatable: true, apply: applyEnvironment},
	"permitopen":   {value: true, repeatable: true, apply: applyPermit("permitopen", func(o *keyOptions) *[]string { return &o.permitOpen })},
	"permitlisten": {value: true, repeatable: true, apply: applyPermit("permitlisten", func(o *keyOptions) *[]string { return &o.permitListen })},
	"principals":   {value: true, apply: applyPrincipals},
	"session-mode": {value: true, apply: applySessionMode},
	"tunnel":       {value: true, apply: func(o *keyOptions, v string, _ *time.Location) error { o.tunnel = v; return nil }},
}

// apply checks one option against keyOptionTable and records it; seen
// holds the valued options already given on the line.
func (o *keyOptions) apply(name, value string, hasValue bool, seen map[string]bool, loc *time.Location) error {
	opt, ok := keyOptionTable[name]
	switch {
	case !ok:
		return fmt.Errorf("unknown option %q", name)
	case opt.apply == nil:
		return fmt.Errorf("option %q is not supported", name)
	case !opt.value && hasValue:
		return fmt.Errorf("option %q takes no value", name)
	case opt.value && !hasValue:
		return fmt.Errorf("option %q needs a quoted value", name)
	case opt.value && seen[name] && !opt.repeatable:
		return fmt.Errorf("option %q given twice", name)
	}
	if opt.value {
		seen[name] = true
	}
	return opt.apply(o, value, loc)
}

func applyApps(o *keyOptions, v string, _ *time.Location) error {
	l, err := parseAppList(v)
	if err != nil {
		return err
	}
	o.apps = l
	return nil
}

func applyFrom(o *keyOptions, v string, _ *time.Location) error {
	l, err := parseAddrList(v, false)
	if err != nil {
		return fmt.Errorf("from: %w", err)
	}
	o.from = l
	return nil
}

func applyCommand(o *keyOptions, v string, _ *time.Location) error {
	o.command, o.hasCommand = v, true
	return nil
}

// applyExpiry keeps the earliest of several expiry-time options, as sshd.
func applyExpiry(o *keyOptions, v string, loc *time.Location) error {
	t, err := parseExpiry(v, loc)
	if err != nil {
		return err
	}
	if o.expiry.IsZero() || t.Before(o.expiry) {
		o.expiry = t
	}
	return nil
}

// applyEnvironment keeps the first value of each name, as sshd.
func applyEnvironment(o *keyOptions, v string, _ *time.Location) error {
	n, val, ok := strings.Cut(v, "=")
	if !ok || !validEnvName(n) {
		// The value is not quoted back: it may be a secret.
		return errors.New("environment: value is not NAME=value")
	}
	for _, e := range o.env {
		if e.name == n {
			return nil
		}
	}
	o.env = append(o.env, envVar{n, val})
	return nil
}

// applyPermit checks a permitopen or permitlisten value as sshd does
// (parsePermit) and appends it, as written, to the list field returns.
func applyPermit(name string, field func(o *keyOptions) *[]string) func(*keyOptions, string, *time.Location) error {
	return func(o *keyOptions, v string, _ *time.Location) error {
		if strings.ContainsAny(v, " \t") {
			return fmt.Errorf("%s: bad value %q: no blanks allowed", name, v)
		}
		if _, err := parsePermit(v, name == "permitlisten"); err != nil {
			return fmt.Errorf("%s: bad value %q: %w", name, v, err)
		}
		l := field(o)
		*l = append(*l, v)
		return nil
	}
}

// Session modes of the session-mode option.
const (
	SessionModeSession    = "session"
	SessionModeConnection = "connection"
)

// applySessionMode reads session-mode="session" or "connection", the
// bridge's own option: which mode the key's connections get.
func applySessionMode(o *keyOptions, v string, _ *time.Location) error {
	switch v {
	case SessionModeSession, SessionModeConnection:
		o.sessionMode = v
		return nil
	}
	return fmt.Errorf(`session-mode: bad value %q (want "session" or "connection")`, v)
}

func applyPrincipals(o *keyOptions, v string, _ *time.Location) error {
	for _, p := range strings.Split(v, ",") {
		if p == "" {
			return errors.New("principals: empty name")
		}
		o.principals = append(o.principals, p)
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
