package auth

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

const fuzzKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host"

func FuzzParseAuthorizedKeys(f *testing.F) {
	for _, seed := range []string{
		fuzzKey,
		`restrict,command="dump /home" ` + fuzzKey,
		`permitopen="192.0.2.1:80",permitopen="192.0.2.2:25" ` + fuzzKey,
		`restrict,pty,command="nethack" ` + fuzzKey,
		`cert-authority,no-touch-required,principals="user_a" ` + fuzzKey,
		`from="!*.dialup.example.com,*.example.com" ` + fuzzKey,
		`apps="demo-*,!demo-secret",environment="A=b c",expiry-time="20300101Z" ` + fuzzKey,
		`command="echo \"x, y\"" ` + fuzzKey,
		"# comment\n\n  " + fuzzKey + "\r\n",
		`from="10.0.0.1/8" ` + fuzzKey,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines, err := parseAuthorizedKeys("f", strings.NewReader(text), time.UTC)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for _, kl := range lines {
			if _, err := gossh.ParsePublicKey(kl.key.Marshal()); err != nil {
				t.Fatalf("parsed key does not round-trip: %v", err)
			}
			kl.opts.apps.allows("demo-app")
			kl.opts.from.allows(netip.MustParseAddr("10.1.2.3"))
			kl.opts.grant("app", "id", "fp", kl.source)
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	for _, seed := range []string{
		`no-pty`, `command="a \"b\" c"`, `from="10.0.0.0/8,!10.0.0.1,*.example.com,192.168.0.?"`,
		`apps="[a-z]*"`, `environment="A=1",environment="A=2"`, `restrict,pty`, `tunnel="0"`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOptions(s, time.UTC)
		if err != nil {
			return
		}
		for _, e := range o.env {
			if !validEnvName(e.name) {
				t.Fatalf("bad env name %q accepted", e.name)
			}
		}
		o.apps.allows(s)
		o.from.allows(netip.MustParseAddr("::1"))
	})
}

func FuzzParseRevocationList(f *testing.F) {
	hdr := krlMagic + "\x00\x00\x00\x01" + strings.Repeat("\x00", 24) + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
	f.Add([]byte(hdr))
	f.Add([]byte(hdr + "\x01\x00\x00\x00\x15" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x23\x00\x00\x00\x05" + "\x00\x00\x00\x01x"))
	f.Add([]byte(hdr + "\x05\x00\x00\x00\x24\x00\x00\x00\x20" + strings.Repeat("a", 32)))
	f.Add([]byte(fuzzKey + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rl, err := parseRevocationList("krl", data)
		if err != nil {
			return
		}
		k, _, _, _, _ := gossh.ParseAuthorizedKey([]byte(fuzzKey))
		rl.keyRevoked(k)
		rl.keyRevoked(&gossh.Certificate{Key: k, SignatureKey: k, Serial: 5, KeyId: "x"})
		if bytes.HasPrefix(data, []byte(krlMagic)) && len(rl.keys) > len(data) {
			t.Fatal("more keys than bytes")
		}
	})
}

func FuzzAddrList(f *testing.F) {
	f.Add("10.0.0.0/8,!10.0.0.1", "10.0.0.2")
	f.Add("*", "::1")
	f.Add("192.168.0.?", "192.168.0.1")
	f.Fuzz(func(t *testing.T, list, addr string) {
		l, err := parseAddrList(list, false)
		if err != nil {
			return
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		got := l.allows(a)
		// A list without a positive pattern never allows.
		pos := false
		for _, p := range l {
			pos = pos || !p.neg
		}
		if got && !pos {
			t.Fatalf("%q allows %s with only negations", list, addr)
		}
	})
}

// FuzzParsePenalties: whatever is accepted is valid and reads back the
// same from its String.
func FuzzParsePenalties(f *testing.F) {
	for _, seed := range []string{"yes", "no", DefaultPenalties.String(), "authfail:2 min:4 max:6",
		"noauth:0s,grace-exceeded:1h30m", "max-sources4:10 overflow:deny-all overflow6:permissive", "crash:90", "min:1w max:2w"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePenalties(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%q accepted as %+v, which is invalid: %v", s, p, err)
		}
		back, err := ParsePenalties(p.String())
		if err != nil || back != p {
			t.Fatalf("%q: String %q reads back as %+v, %v", s, p.String(), back, err)
		}
	})
}

// FuzzParseMaxStartups: whatever is accepted is valid and reads back the
// same from its String.
func FuzzParseMaxStartups(f *testing.F) {
	for _, seed := range []string{"10:30:100", "50", "1:1:1", "0", "10:30", "100:30:10", "9999999999999999999:1:1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMaxStartups(s)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("%q accepted as %v, which is invalid: %v", s, m, err)
		}
		if back, err := ParseMaxStartups(m.String()); err != nil || back != m {
			t.Fatalf("%q: String %q reads back as %v, %v", s, m.String(), back, err)
		}
		for _, pending := range []int{0, m.Start - 1, m.Start, (m.Start + m.Full) / 2, m.Full - 1, m.Full, m.Full + 1} {
			if pending < m.Start && m.drop(pending, func() int { return 0 }) {
				t.Fatalf("%v drops below start", m)
			}
			if pending >= m.Full && !m.drop(pending, func() int { return 99 }) {
				t.Fatalf("%v lets a connection through at full", m)
			}
		}
	})
}

// FuzzParseExemptList: whatever is accepted reads back the same.
func FuzzParseExemptList(f *testing.F) {
	for _, seed := range []string{"10.0.0.0/8,192.0.2.7", "2001:db8::/32", "::ffff:10.0.0.1", "10.0.0.1/8", "!10.0.0.0/8", "*"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseExemptList(s)
		if err != nil {
			return
		}
		back, err := ParseExemptList(l.String())
		if err != nil || back.String() != l.String() {
			t.Fatalf("%q: String %q reads back as %q, %v", s, l.String(), back.String(), err)
		}
	})
}
