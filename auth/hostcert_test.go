package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func newSigner(t *testing.T) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certFile signs key's public half with ca as a certificate that edit
// may change first, and writes it in the *-cert.pub form into dir.
func certFile(t *testing.T, dir, name string, ca gossh.Signer, key gossh.PublicKey, edit func(*gossh.Certificate)) string {
	t.Helper()
	c := &gossh.Certificate{
		Key:             key,
		CertType:        gossh.HostCert,
		KeyId:           name,
		ValidPrincipals: []string{"bridge.example.net"},
		ValidAfter:      uint64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()),
		ValidBefore:     uint64(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Unix()),
	}
	if edit != nil {
		edit(c)
	}
	signHostCert(t, c, ca)
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, gossh.MarshalAuthorizedKey(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// signHostCert signs c with ca. x/crypto's SignCert refuses a certificate
// with no principals, which ssh-keygen makes without -n and OpenSSH's
// client accepts for any host; that one is signed here as SignCert does,
// over the certificate without its signature field.
func signHostCert(t *testing.T, c *gossh.Certificate, ca gossh.Signer) {
	t.Helper()
	if len(c.ValidPrincipals) > 0 {
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		return
	}
	c.Nonce = make([]byte, 32)
	rand.Read(c.Nonce)
	c.SignatureKey = ca.PublicKey()
	c.Signature = nil
	data := c.Marshal()
	sig, err := ca.Sign(rand.Reader, data[:len(data)-4])
	if err != nil {
		t.Fatal(err)
	}
	c.Signature = sig
}

func TestLoadHostCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, host, other, stranger := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	mid := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

	good := certFile(t, dir, "good", ca, host.PublicKey(), nil)
	anyHost := certFile(t, dir, "any-host", ca, host.PublicKey(), func(c *gossh.Certificate) { c.ValidPrincipals = nil })
	forever := certFile(t, dir, "forever", ca, host.PublicKey(), func(c *gossh.Certificate) { c.ValidBefore = gossh.CertTimeInfinity })
	user := certFile(t, dir, "user", ca, host.PublicKey(), func(c *gossh.Certificate) { c.CertType = gossh.UserCert })
	otherKey := certFile(t, dir, "other", ca, stranger.PublicKey(), nil)
	critical := certFile(t, dir, "critical", ca, host.PublicKey(), func(c *gossh.Certificate) {
		c.CriticalOptions = map[string]string{"force-command": "true"}
	})
	criticalAny := certFile(t, dir, "critical-any", ca, host.PublicKey(), func(c *gossh.Certificate) {
		c.ValidPrincipals = nil
		c.CriticalOptions = map[string]string{"source-address": "10.0.0.1"}
	})
	plain := filepath.Join(dir, "plain.pub")
	if err := os.WriteFile(plain, gossh.MarshalAuthorizedKey(host.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another CA's signature over a certificate that names ca as its
	// signer: the signature must not verify, with or without principals.
	forged := func(name string, principals []string) string {
		file := certFile(t, dir, name, ca, host.PublicKey(), func(c *gossh.Certificate) { c.ValidPrincipals = principals })
		pub, _, _, _, err := gossh.ParseAuthorizedKey(must(os.ReadFile(file)))
		if err != nil {
			t.Fatal(err)
		}
		c := pub.(*gossh.Certificate)
		signHostCert(t, c, other)
		c.SignatureKey = ca.PublicKey()
		if err := os.WriteFile(file, gossh.MarshalAuthorizedKey(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	forgedNamed, forgedAny := forged("forged", []string{"bridge.example.net"}), forged("forged-any", nil)

	for _, tc := range []struct {
		name  string
		files []string
		now   time.Time
		want  string // "" when it loads
	}{
		{"good", []string{good}, mid, ""},
		{"no principals: any host", []string{anyHost}, mid, ""},
		{"forever", []string{forever}, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"at its first valid second", []string{good}, start, ""},
		{"a second before", []string{good}, start.Add(-time.Second), good + ": not valid before 2026-01-01T00:00:00Z (now 2025-12-31T23:59:59Z)"},
		{"at its valid_before", []string{good}, end, good + ": expired at 2026-02-01T00:00:00Z (now 2026-02-01T00:00:00Z)"},
		{"user certificate", []string{user}, mid, user + ": a user certificate, not a host certificate"},
		{"another key", []string{otherKey}, mid, otherKey + ": certifies the key " + gossh.FingerprintSHA256(stranger.PublicKey()) + ", which is none of the bridge's host keys (" + gossh.FingerprintSHA256(other.PublicKey()) + ", " + gossh.FingerprintSHA256(host.PublicKey()) + ")"},
		{"a critical option", []string{critical}, mid, critical + `: ssh: unsupported critical option "force-command" in certificate`},
		{"a critical option, no principals", []string{criticalAny}, mid, criticalAny + ": ssh: unsupported critical options in certificate: source-address"},
		{"forged", []string{forgedNamed}, mid, forgedNamed + ": ssh: certificate signature does not verify"},
		{"forged, no principals", []string{forgedAny}, mid, forgedAny + ": ssh: certificate signature does not verify"},
		{"plain key", []string{plain}, mid, plain + ": a plain ssh-ed25519 public key, not a certificate"},
		{"garbage", []string{garbage}, mid, garbage + ": not an OpenSSH certificate"},
		{"two for one key", []string{good, anyHost}, mid, anyHost + ": certifies the same host key as " + good},
		{"none", nil, mid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := LoadHostCertificates(tc.files, []gossh.Signer{other, host}, tc.now)
			if tc.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("want an error %q, got %v", tc.want, err)
				}
				if certs != nil {
					t.Errorf("certificates with an error: %v", certs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != len(tc.files) {
				t.Fatalf("want %d certificates, got %d", len(tc.files), len(certs))
			}
			for i, c := range certs {
				if c.File != tc.files[i] {
					t.Errorf("certificate %d: file %s, want %s", i, c.File, tc.files[i])
				}
				// The signer presents the certificate and signs with
				// the host key it certifies.
				pub, ok := c.Signer.PublicKey().(*gossh.Certificate)
				if !ok || string(pub.Key.Marshal()) != string(host.PublicKey().Marshal()) {
					t.Fatalf("signer's public key is %T, not the host key's certificate", c.Signer.PublicKey())
				}
				sig, err := c.Signer.Sign(rand.Reader, []byte("data"))
				if err != nil {
					t.Fatal(err)
				}
				if err := host.PublicKey().Verify([]byte("data"), sig); err != nil {
					t.Errorf("the signer does not sign with the host key: %v", err)
				}
			}
		})
	}
}

func TestHostCertificateDescription(t *testing.T) {
	dir := t.TempDir()
	ca, host := newSigner(t), newSigner(t)
	file := certFile(t, dir, "desc", ca, host.PublicKey(), func(c *gossh.Certificate) { c.Serial = 7 })
	anyHost := certFile(t, dir, "any", ca, host.PublicKey(), func(c *gossh.Certificate) {
		c.ValidPrincipals, c.ValidBefore = nil, gossh.CertTimeInfinity
	})
	now := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	certs, err := LoadHostCertificates([]string{file}, []gossh.Signer{host}, now)
	if err != nil {
		t.Fatal(err)
	}
	if p, u := certs[0].Principals(), certs[0].ValidUntil(); p != "bridge.example.net" || u != "2026-02-01T00:00:00Z" {
		t.Errorf("got %q, %q; want the principal and 2026-02-01T00:00:00Z", p, u)
	}
	if c := certs[0].Cert; c.Serial != 7 || c.KeyId != "desc" || string(c.SignatureKey.Marshal()) != string(ca.PublicKey().Marshal()) {
		t.Errorf("the certificate read is not the one written: %+v", c)
	}
	certs, err = LoadHostCertificates([]string{anyHost}, []gossh.Signer{host}, now)
	if err != nil {
		t.Fatal(err)
	}
	if p, u := certs[0].Principals(), certs[0].ValidUntil(); p != "(any)" || u != "forever" {
		t.Errorf("no principals, no end: got %q, %q", p, u)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
