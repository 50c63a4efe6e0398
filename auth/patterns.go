package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// appList is the value of apps="...": shell globs (path.Match), "!" negates.
// As in OpenSSH pattern lists, a name is allowed when some positive pattern
// matches and no negated pattern does.
type appList []listPattern

type listPattern struct {
	neg     bool
	pattern string
}

func parseAppList(s string) (appList, error) {
	var l appList
	for _, p := range strings.Split(s, ",") {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if p == "" {
			return nil, errors.New("empty pattern in apps list")
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad apps pattern %q", p)
		}
		l = append(l, listPattern{neg: neg, pattern: p})
	}
	return l, nil
}

// allows reports whether app is allowed by the list.
func (l appList) allows(app string) bool {
	matched := false
	for _, p := range l {
		if ok, _ := path.Match(p.pattern, app); ok {
			if p.neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// onlyNegated reports a list that can allow nothing, worth a warning.
func (l appList) onlyNegated() bool {
	for _, p := range l {
		if !p.neg {
			return false
		}
	}
	return len(l) > 0
}

// addrList is an OpenSSH address pattern list (from="..." and the
// certificate source-address option): CIDR blocks or addresses, and, for
// from=, wildcard patterns with * and ? matched against the address text.
type addrList []addrPattern

type addrPattern struct {
	neg    bool
	prefix netip.Prefix // valid for a CIDR or plain address
	glob   string       // otherwise a wildcard pattern
}

// parseAddrList parses a pattern list. strict (source-address) allows only
// addresses and CIDR blocks without negation, as OpenSSH does.
func parseAddrList(s string, strict bool) (addrList, error) {
	var l addrList
	for _, p := range strings.Split(s, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			if strict {
				return nil, fmt.Errorf("negation not allowed in %q", s)
			}
			p = p[1:]
		}
		if p == "" {
			return nil, errors.New("empty pattern in address list")
		}
		prefix, ok, err := parseCIDR(p)
		if err != nil {
			return nil, err
		}
		switch {
		case ok:
			l = append(l, addrPattern{neg: neg, prefix: prefix})
		case strict:
			return nil, fmt.Errorf("bad address %q", p)
		default:
			l = append(l, addrPattern{neg: neg, glob: strings.ToLower(p)})
		}
	}
	return l, nil
}

// parseCIDR reads "addr" or "addr/bits". ok is false for text that is no
// address (a wildcard pattern); a block with host bits set is an error, as
// in OpenSSH ("inconsistent mask length").
func parseCIDR(s string) (netip.Prefix, bool, error) {
	if strings.ContainsAny(s, "*?") {
		return netip.Prefix{}, false, nil
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false, nil
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s[:strings.IndexByte(s, '/')]); aerr == nil {
			return netip.Prefix{}, false, fmt.Errorf("bad network %q", s)
		}
		return netip.Prefix{}, false, nil
	}
	if p.Masked() != p {
		return netip.Prefix{}, false, fmt.Errorf("inconsistent mask length for network %q", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, true, nil
}

// allows applies OpenSSH's match_host_and_ip with the address as host name
// (the bridge does no DNS): a negated match denies, otherwise any match allows.
func (l addrList) allows(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	text := strings.ToLower(a.String())
	matched := false
	for _, p := range l {
		var ok bool
		if p.glob != "" {
			ok = wildcardMatch(p.glob, text)
		} else {
			ok = p.prefix.Contains(a)
		}
		if ok {
			if p.neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// wildcardMatch is OpenSSH's match_pattern: '*' any run, '?' one character.
func wildcardMatch(pattern, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == s[sx]):
			px++
			sx++
		case px < len(pattern) && pattern[px] == '*':
			starP, starS = px, sx
			px++
		case starP >= 0:
			starS++
			px, sx = starP+1, starS
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
