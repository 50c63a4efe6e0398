package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Penalties configures the per-source penalties, after OpenSSH's
// PerSourcePenalties: each connection that ends in one of the events below
// adds that event's duration to its source address's penalty, which runs
// out as time passes and never holds more than Max. Once the penalty
// reaches Min the source is penalised until it runs out.
//
// What a penalty does here differs from sshd, which refuses the source's
// connections: the bridge still serves them, so that a client that proves
// an authorized key from a shared address (a NAT, an office, a load
// balancer) is never locked out by other people's failures. A penalised
// source's connections get PenaltyLoginGrace to authenticate instead of the
// login grace time, and each key the bridge refuses them is answered only
// after PenaltyKeyDelay: guessing and floods slow down, an authorized key
// gets in at once.
//
// The zero value means DefaultPenalties.
type Penalties struct {
	// Off disables penalties ("no").
	Off bool
	// AuthFail: a connection that failed to authenticate ("authfail").
	AuthFail time.Duration
	// NoAuth: a connection that ended without attempting authentication,
	// as a port scan or a health check does ("noauth").
	NoAuth time.Duration
	// GraceExceeded: a connection closed at the login grace time
	// ("grace-exceeded").
	GraceExceeded time.Duration
	// AppDenied: a connection whose key authenticated but may not use the
	// app it asked for ("app-denied"; sshd has no such event).
	AppDenied time.Duration
	// Max is the most penalty a source holds ("max").
	Max time.Duration
	// Min is the penalty a source must reach before it is penalised ("min").
	Min time.Duration
	// MaxSources4 and MaxSources6 bound the IPv4 and IPv6 sources tracked
	// ("max-sources4", "max-sources6"); 0 means 65536 each.
	MaxSources4, MaxSources6 int
	// OverflowDenyAll4 and OverflowDenyAll6 say what happens to a new
	// source once its table is full: false ("overflow:permissive") lets it
	// go unpenalised; true ("overflow:deny-all") serves every new source
	// as penalised until room is made.
	OverflowDenyAll4, OverflowDenyAll6 bool
}

// DefaultPenalties are OpenSSH's defaults for the events it shares with
// the bridge, and as much for a denied app as for a failed login.
var DefaultPenalties = Penalties{
	AuthFail:      5 * time.Second,
	NoAuth:        time.Second,
	GraceExceeded: 10 * time.Second,
	AppDenied:     5 * time.Second,
	Max:           10 * time.Minute,
	Min:           15 * time.Second,
}

const (
	// PenaltyKeyDelay is how long a penalised source's connection waits for
	// the answer to each key the bridge refuses.
	PenaltyKeyDelay = time.Second
	// PenaltyLoginGrace is the login grace time of a penalised source's
	// connections (or the login grace time, when shorter): long enough for
	// an agent that offers five wrong keys before the right one.
	PenaltyLoginGrace = 10 * time.Second
	// defaultMaxSources is sshd's default for max-sources4 and max-sources6.
	defaultMaxSources = 65536
)

// IsZero reports whether p is the zero value (use the defaults).
func (p Penalties) IsZero() bool { return p == Penalties{} }

// ParsePenalties reads OpenSSH's PerSourcePenalties syntax: "yes" (the
// defaults), "no" (none), or keywords separated by spaces (or commas),
// each overriding its default: authfail:D, noauth:D, grace-exceeded:D,
// app-denied:D, max:D, min:D with D a time in sshd's format (a number of
// seconds, or numbers with s, m, h, d or w, as 90, 90s, 1m30s), and
// max-sources4:N, max-sources6:N, overflow:permissive|deny-all,
// overflow6:permissive|deny-all. An unknown keyword is an error that lists
// the known ones.
func ParsePenalties(s string) (Penalties, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return Penalties{}, errors.New(`empty: want "yes", "no" or keywords as authfail:5s`)
	}
	if len(fields) == 1 {
		switch strings.ToLower(fields[0]) {
		case "yes":
			return DefaultPenalties, nil
		case "no":
			return Penalties{Off: true}, nil
		}
	}
	p := DefaultPenalties
	durations := map[string]*time.Duration{
		"authfail": &p.AuthFail, "noauth": &p.NoAuth, "grace-exceeded": &p.GraceExceeded,
		"app-denied": &p.AppDenied, "max": &p.Max, "min": &p.Min,
	}
	for _, f := range fields {
		key, val, ok := strings.Cut(f, ":")
		key = strings.ToLower(key)
		if !ok || val == "" {
			return Penalties{}, fmt.Errorf("%q is no keyword:value, as authfail:5s", f)
		}
		if d, ok := durations[key]; ok {
			v, err := parseSSHTime(val)
			if err != nil {
				return Penalties{}, fmt.Errorf("%s %q: %w", key, val, err)
			}
			*d = v
			continue
		}
		switch key {
		case "max-sources4", "max-sources6":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return Penalties{}, fmt.Errorf("%s %q: want a number of sources, at least 1", key, val)
			}
			if key == "max-sources4" {
				p.MaxSources4 = n
			} else {
				p.MaxSources6 = n
			}
		case "overflow", "overflow6":
			var deny bool
			switch strings.ToLower(val) {
			case "permissive":
			case "deny-all":
				deny = true
			default:
				return Penalties{}, fmt.Errorf("%s %q: want permissive or deny-all", key, val)
			}
			if key == "overflow" {
				p.OverflowDenyAll4 = deny
			} else {
				p.OverflowDenyAll6 = deny
			}
		default:
			return Penalties{}, fmt.Errorf("unknown keyword %q; known: authfail, noauth, grace-exceeded, app-denied, max, min, max-sources4, max-sources6, overflow, overflow6", key)
		}
	}
	if err := p.Validate(); err != nil {
		return Penalties{}, err
	}
	return p, nil
}

// Validate checks that Max is more than 0 and Min at most Max, and that no
// duration or count is negative.
func (p Penalties) Validate() error {
	if p.Off {
		return nil
	}
	for _, d := range []time.Duration{p.AuthFail, p.NoAuth, p.GraceExceeded, p.AppDenied, p.Min} {
		if d < 0 {
			return errors.New("penalty durations must not be negative")
		}
	}
	switch {
	case p.Max <= 0:
		return errors.New("max must be more than 0")
	case p.Min > p.Max:
		return fmt.Errorf("min (%s) must not be more than max (%s)", formatSSHTime(p.Min), formatSSHTime(p.Max))
	case p.MaxSources4 < 0 || p.MaxSources6 < 0:
		return errors.New("max-sources must not be negative")
	}
	return nil
}

// String gives p in the syntax ParsePenalties reads.
func (p Penalties) String() string {
	if p.Off {
		return "no"
	}
	s := fmt.Sprintf("authfail:%s noauth:%s grace-exceeded:%s app-denied:%s max:%s min:%s",
		formatSSHTime(p.AuthFail), formatSSHTime(p.NoAuth), formatSSHTime(p.GraceExceeded),
		formatSSHTime(p.AppDenied), formatSSHTime(p.Max), formatSSHTime(p.Min))
	if p.MaxSources4 != 0 {
		s += " max-sources4:" + strconv.Itoa(p.MaxSources4)
	}
	if p.MaxSources6 != 0 {
		s += " max-sources6:" + strconv.Itoa(p.MaxSources6)
	}
	if p.OverflowDenyAll4 {
		s += " overflow:deny-all"
	}
	if p.OverflowDenyAll6 {
		s += " overflow6:deny-all"
	}
	return s
}

var sshTimeUnits = map[byte]time.Duration{
	's': time.Second, 'S': time.Second, 'm': time.Minute, 'M': time.Minute,
	'h': time.Hour, 'H': time.Hour, 'd': 24 * time.Hour, 'D': 24 * time.Hour,
	'w': 7 * 24 * time.Hour, 'W': 7 * 24 * time.Hour,
}

// parseSSHTime reads sshd_config(5)'s TIME FORMATS: a number of seconds,
// or numbers each followed by s, m, h, d or w, added up ("1h30m").
func parseSSHTime(s string) (time.Duration, error) {
	const want = "want a time as 30, 30s, 2m or 1h30m"
	if s == "" {
		return 0, errors.New(want)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, errors.New(want)
		}
		n, _ := strconv.Atoi(s[:i])
		unit := time.Second
		rest := s[i:]
		if rest != "" {
			u, ok := sshTimeUnits[rest[0]]
			if !ok {
				return 0, errors.New(want)
			}
			unit, rest = u, rest[1:]
		} else if total != 0 {
			// A bare number only alone: "1m30" is no time.
			return 0, errors.New(want)
		}
		total += time.Duration(n) * unit
		if total > 365*24*time.Hour {
			return 0, errors.New("more than a year")
		}
		s = rest
	}
	return total, nil
}

// formatSSHTime writes d in the format parseSSHTime reads ("1m30s", "0s").
func formatSSHTime(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
