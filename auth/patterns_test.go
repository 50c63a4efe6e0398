package auth

import (
	"net/netip"
	"testing"
)

// Address patterns as ssh_config(5)/sshd_config(5) PATTERNS and sshd(8)
// from= describe them, matched against the client's address (the bridge
// does no DNS, like sshd with UseDNS no).
func TestAddrList(t *testing.T) {
	tests := []struct {
		list string
		addr string
		want bool
	}{
		{"192.168.0.?", "192.168.0.5", true},
		{"192.168.0.?", "192.168.0.10", false},
		{"*", "203.0.113.9", true},
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "127.0.0.1", false},
		{"10.0.0.0/8", "::ffff:10.9.9.9", true},
		{"192.0.2.0/24,3ffe:ffff::/32", "3ffe:ffff::1", true},
		{"192.0.2.0/24,3ffe:ffff::/32", "3ffe:fffe::1", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "::1", true},
		{"!10.0.0.1,10.0.0.0/8", "10.0.0.1", false},
		{"!10.0.0.1,10.0.0.0/8", "10.0.0.2", true},
		{"10.0.0.0/8,!10.0.0.1", "10.0.0.1", false},
		// "a negated match will never produce a positive result by itself"
		{"!10.0.0.1", "10.0.0.2", false},
		// Host name patterns never match an address.
		{"*.example.com", "192.0.2.1", false},
		{"!*.dialup.example.com,*.example.com", "192.0.2.1", false},
		{"!*.dialup.example.com,*", "192.0.2.1", true},
		{"10.*", "10.20.30.40", true},
		{"10.*,!10.20.*", "10.20.30.40", false},
		{"FE80::*", "fe80::1", true},
		{"0.0.0.0/0", "198.51.100.7", true},
		{"::/0", "2001:db8::1", true},
	}
	for _, tt := range tests {
		l, err := parseAddrList(tt.list, false)
		if err != nil {
			t.Fatalf("%q: %v", tt.list, err)
		}
		if got := l.allows(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%q allows %s = %v, want %v", tt.list, tt.addr, got, tt.want)
		}
	}
	if (addrList{}).allows(netip.Addr{}) {
		t.Error("an unknown address must not match")
	}
}

func TestAddrListErrors(t *testing.T) {
	for _, tt := range []struct {
		list   string
		strict bool
	}{
		{"10.0.0.1/8", false},
		{"10.0.0.0/33", false},
		{",", false},
		{"!", false},
		{"!10.0.0.0/8", true},
		{"*.example.com", true},
		{"10.0.0.*", true},
	} {
		if _, err := parseAddrList(tt.list, tt.strict); err == nil {
			t.Errorf("parseAddrList(%q, strict=%v): no error", tt.list, tt.strict)
		}
	}
}

func TestAppList(t *testing.T) {
	tests := []struct {
		list, app string
		want      bool
	}{
		{"demo-*", "demo-app", true},
		{"demo-*", "other-app", false},
		{"demo-*", "demo-", true},
		{"demo-*,!demo-secret", "demo-secret", false},
		{"!demo-secret,demo-*", "demo-secret", false},
		{"demo-*,!demo-secret", "demo-public", true},
		{"!prod-*", "staging", false}, // negation alone allows nothing
		{"app?", "app1", true},
		{"app?", "app12", false},
		{"[ab]-app", "b-app", true},
		{"[ab]-app", "c-app", false},
		{"*", "anything", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"a,b,c", "b", true},
	}
	for _, tt := range tests {
		l, err := parseAppList(tt.list)
		if err != nil {
			t.Fatalf("%q: %v", tt.list, err)
		}
		if got := l.allows(tt.app); got != tt.want {
			t.Errorf("apps=%q allows %q = %v, want %v", tt.list, tt.app, got, tt.want)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*b", "ab", true},
		{"a*b", "axxb", true},
		{"a*b", "axxbc", false},
		{"a*b*c", "abxbc", true},
		{"?", "", false},
		{"*?", "a", true},
		{"**a", "ba", true},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}
