package auth

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

var allPermits = map[string]string{extPTY: "", extPortFwd: "", extAgentFwd: "", extX11Fwd: "", "permit-user-rc": ""}

// signCert makes a user certificate for key valid around now; edit changes
// it before signing.
func signCert(t *testing.T, ca gossh.Signer, key gossh.PublicKey, now time.Time, edit func(c *gossh.Certificate)) *gossh.Certificate {
	t.Helper()
	c := &gossh.Certificate{
		Key:             key,
		Serial:          42,
		CertType:        gossh.UserCert,
		KeyId:           "alice@example",
		ValidPrincipals: []string{"demo-app"},
		ValidAfter:      uint64(now.Add(-time.Hour).Unix()),
		ValidBefore:     uint64(now.Add(time.Hour).Unix()),
		Permissions:     gossh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{}},
	}
	for k, v := range allPermits {
		c.Extensions[k] = v
	}
	if edit != nil {
		edit(c)
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertificatesTrustedCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	ca, otherCA, user := newKey(t), newKey(t), newKey(t)
	caFile := writeFile(t, dir, "ca.pub", authLine("", ca.PublicKey()))
	akFile := writeFile(t, dir, "authorized_keys", authLine("", newKey(t).PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: akFile, TrustedUserCAKeysFile: caFile, Now: func() time.Time { return now }})

	tests := []struct {
		name   string
		signer gossh.Signer
		edit   func(c *gossh.Certificate)
		app    string
		remote string
		want   outcome
		check  func(g *Grant) bool
	}{
		{name: "principal is the app", app: "demo-app", want: allowed, check: func(g *Grant) bool {
			return !g.NoPTY && g.ForceCommand == "" && g.Identity == "id=alice@example serial=42 ca="+gossh.FingerprintSHA256(ca.PublicKey()) &&
				g.Fingerprint == gossh.FingerprintSHA256(user.PublicKey()) && g.Source == caFile
		}},
		{name: "other app", app: "other-app", want: denied},
		{name: "several principals", edit: func(c *gossh.Certificate) { c.ValidPrincipals = []string{"a", "other-app"} }, app: "other-app", want: allowed},
		{name: "principals are not globs", edit: func(c *gossh.Certificate) { c.ValidPrincipals = []string{"demo-*"} }, app: "demo-app", want: denied},
		{name: "expired", edit: func(c *gossh.Certificate) { c.ValidBefore = uint64(now.Unix()) }, app: "demo-app", want: refused},
		{name: "not yet valid", edit: func(c *gossh.Certificate) { c.ValidAfter = uint64(now.Add(time.Second).Unix()) }, app: "demo-app", want: refused},
		{name: "forever", edit: func(c *gossh.Certificate) { c.ValidAfter, c.ValidBefore = 0, gossh.CertTimeInfinity }, app: "demo-app", want: allowed},
		{name: "unknown CA", signer: otherCA, app: "demo-app", want: refused},
		{name: "host certificate", edit: func(c *gossh.Certificate) { c.CertType = gossh.HostCert }, app: "demo-app", want: refused},
		{name: "force-command", edit: func(c *gossh.Certificate) { c.CriticalOptions[optForceCommand] = "uptime" }, app: "demo-app", want: allowed,
			check: func(g *Grant) bool { return g.ForceCommand == "uptime" }},
		{name: "source-address matches", edit: func(c *gossh.Certificate) { c.CriticalOptions[optSourceAddress] = "10.0.0.0/8,127.0.0.1" }, app: "demo-app", want: allowed},
		{name: "source-address mismatch", edit: func(c *gossh.Certificate) { c.CriticalOptions[optSourceAddress] = "10.0.0.0/8" }, app: "demo-app", want: refused},
		{name: "source-address malformed", edit: func(c *gossh.Certificate) { c.CriticalOptions[optSourceAddress] = "*" }, app: "demo-app", want: refused},
		{name: "unknown critical option", edit: func(c *gossh.Certificate) { c.CriticalOptions["verify-required"] = "" }, app: "demo-app", want: refused},
		{name: "no extensions: no pty, no forwarding", edit: func(c *gossh.Certificate) { c.Extensions = nil }, app: "demo-app", want: allowed,
			check: func(g *Grant) bool { return g.NoPTY && g.NoPortForwarding && g.NoAgentForwarding && g.NoX11Forwarding }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := ca
			if tt.signer != nil {
				signer = tt.signer
			}
			cert := signCert(t, signer, user.PublicKey(), now, tt.edit)
			remote := tt.remote
			if remote == "" {
				remote = "127.0.0.1:1"
			}
			got, g := attempt(t, a, tt.app, remote, cert)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if tt.check != nil && !tt.check(g) {
				t.Fatalf("grant %+v", g)
			}
		})
	}

	t.Run("tampered", func(t *testing.T) {
		cert := signCert(t, ca, user.PublicKey(), now, nil)
		cert.ValidPrincipals = []string{"other-app"}
		if got, _ := attempt(t, a, "other-app", "127.0.0.1:1", cert); got != refused {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("CA key as a plain key", func(t *testing.T) {
		if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", ca.PublicKey()); got != refused {
			t.Fatalf("got %v", got)
		}
	})
}

func TestCertificatesCertAuthorityLines(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	caApps, caRoles, caCmd, user := newKey(t), newKey(t), newKey(t), newKey(t)
	caPlain, caNarrow, caEvery := newKey(t), newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`cert-authority,apps="demo-*",environment="FROM_CA=1"`, caApps.PublicKey())+
			authLine(`cert-authority,principals="ops,admin",apps="prod-*",from="127.0.0.0/8"`, caRoles.PublicKey())+
			authLine(`cert-authority,command="safe"`, caCmd.PublicKey())+
			authLine(`cert-authority`, caPlain.PublicKey())+
			authLine(`cert-authority,principals="demo-app,ops"`, caNarrow.PublicKey())+
			authLine(`cert-authority,principals="ops",apps="*"`, caEvery.PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file, Now: func() time.Time { return now }})

	principals := func(p ...string) func(c *gossh.Certificate) {
		return func(c *gossh.Certificate) { c.ValidPrincipals = p }
	}
	tests := []struct {
		name   string
		ca     gossh.Signer
		edit   func(c *gossh.Certificate)
		app    string
		remote string
		want   outcome
	}{
		{"principal is the app, apps= allows", caApps, principals("demo-app"), "demo-app", "127.0.0.1:1", allowed},
		{"principal is the app, apps= refuses", caApps, principals("other-app"), "other-app", "127.0.0.1:1", denied},
		{"apps= alone names the apps", caApps, principals("demo-one"), "demo-two", "127.0.0.1:1", allowed},
		{"apps= alone: a principal outside it opens nothing", caApps, principals("other-app", "demo-one"), "other-app", "127.0.0.1:1", denied},
		{"principals= role, apps= allows", caRoles, principals("ops"), "prod-api", "127.0.0.1:1", allowed},
		{"principals= role, apps= refuses a principal", caRoles, principals("ops", "staging"), "staging", "127.0.0.1:1", denied},
		{"principals= role, other app", caRoles, principals("admin"), "staging", "127.0.0.1:1", denied},
		{"principals= no role", caRoles, principals("dev", "prod-api"), "prod-api", "127.0.0.1:1", refused},
		{"principals= from= mismatch", caRoles, principals("ops"), "prod-api", "192.0.2.1:1", refused},
		{"no options: the principal is the app", caPlain, principals("demo-app"), "demo-app", "127.0.0.1:1", allowed},
		{"no options: another app", caPlain, principals("demo-app"), "other-app", "127.0.0.1:1", denied},
		{"principals= without apps=: the principal is the app", caNarrow, principals("demo-app"), "demo-app", "127.0.0.1:1", allowed},
		{"principals= without apps=: another app", caNarrow, principals("demo-app"), "other-app", "127.0.0.1:1", denied},
		{"principals= without apps=: a role opens no app", caNarrow, principals("ops"), "ops-tools", "127.0.0.1:1", denied},
		{"principals= without apps=: a role and an app", caNarrow, principals("ops", "billing-prod"), "billing-prod", "127.0.0.1:1", allowed},
		{"principals= without apps=: no listed principal", caNarrow, principals("billing-prod"), "billing-prod", "127.0.0.1:1", refused},
		{`role CA with apps="*"`, caEvery, principals("ops"), "billing-prod", "127.0.0.1:1", allowed},
		{`role CA with apps="*", no role`, caEvery, principals("billing-prod"), "billing-prod", "127.0.0.1:1", refused},
		{"command= same as force-command", caCmd, func(c *gossh.Certificate) {
			c.ValidPrincipals = []string{"app"}
			c.CriticalOptions[optForceCommand] = "safe"
		}, "app", "127.0.0.1:1", allowed},
		{"command= differs from force-command", caCmd, func(c *gossh.Certificate) {
			c.ValidPrincipals = []string{"app"}
			c.CriticalOptions[optForceCommand] = "other"
		}, "app", "127.0.0.1:1", refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := signCert(t, tt.ca, user.PublicKey(), now, tt.edit)
			got, g := attempt(t, a, tt.app, tt.remote, cert)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if got == allowed && !strings.HasPrefix(g.Source, file+":") {
				t.Fatalf("source %q", g.Source)
			}
			if got == allowed && tt.ca == caApps && g.Env["FROM_CA"] != "1" {
				t.Fatalf("line options not applied: %+v", g)
			}
			if got == allowed && tt.ca == caCmd && g.ForceCommand != "safe" {
				t.Fatalf("command %q", g.ForceCommand)
			}
		})
	}
	// A user key signed by a cert-authority CA is not itself authorized.
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", user.PublicKey()); got != refused {
		t.Fatalf("plain user key: %v", got)
	}
}
