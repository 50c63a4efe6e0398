package auth

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// needKeygen fails a test that needs OpenSSH's ssh-keygen when it is not
// installed: a missing program is a failure, never a skip (.ci/run
// installs it).
func needKeygen(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is needed by this test and is not installed (.ci/run installs it)")
	}
}

func keygen(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keyPair makes a key with ssh-keygen and returns its private key path.
func keyPair(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	keygen(t, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p)
	return p
}

func readPub(t *testing.T, path string) gossh.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := gossh.ParseAuthorizedKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signWithKeygen makes a user certificate with ssh-keygen -s.
func signWithKeygen(t *testing.T, ca, key, id, principals, validity string, serial uint64, opts ...string) *gossh.Certificate {
	t.Helper()
	args := []string{"-q", "-s", ca, "-I", id, "-n", principals, "-V", validity, "-z", fmt.Sprint(serial)}
	for _, o := range opts {
		args = append(args, "-O", o)
	}
	keygen(t, append(args, key+".pub")...)
	c, ok := readPub(t, key+"-cert.pub").(*gossh.Certificate)
	if !ok {
		t.Fatal("not a certificate")
	}
	return c
}

func TestKRLFromKeygen(t *testing.T) {
	needKeygen(t)
	dir := t.TempDir()
	ca, otherCA := keyPair(t, dir, "ca"), keyPair(t, dir, "other_ca")
	users := map[string]string{}
	for _, n := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		users[n] = keyPair(t, dir, n)
	}
	fp := strings.Fields(keygen(t, "-l", "-E", "sha256", "-f", users["u6"]+".pub"))[1]
	var odd []string
	for s := 101; s < 400; s += 2 {
		odd = append(odd, fmt.Sprintf("serial: %d", s))
	}
	spec := writeFile(t, dir, "spec", strings.Join([]string{
		"serial: 5",
		"serial: 10-20",
		"serial: 100000-900000", // a long run: a range section
		strings.Join(odd, "\n"), // scattered serials: ssh-keygen writes a bitmap
		"id: revoked-id",
		"key: " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(readPub(t, users["u3"]+".pub")))),
		"sha256: " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(readPub(t, users["u4"]+".pub")))),
		"hash: " + fp,
	}, "\n")+"\n")
	krl := filepath.Join(dir, "krl")
	keygen(t, "-k", "-f", krl, "-s", ca+".pub", spec)
	// A second run without a spec: plain public keys, updating the KRL.
	keygen(t, "-k", "-u", "-f", krl, users["u5"]+".pub")

	raw, err := os.ReadFile(krl)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := parseRevocationList(krl, raw)
	if err != nil {
		t.Fatal(err)
	}

	cert := func(user, id string, serial uint64) *gossh.Certificate {
		return signWithKeygen(t, ca, users[user], id, "demo-app", "-1h:+1h", serial)
	}
	tests := []struct {
		name string
		key  gossh.PublicKey
		want bool
	}{
		{"serial in list", cert("u1", "x", 5), true},
		{"serial not listed", cert("u1", "x", 6), false},
		{"serial range low", cert("u1", "x", 10), true},
		{"serial range high", cert("u1", "x", 20), true},
		{"serial after range", cert("u1", "x", 21), false},
		{"serial in bitmap", cert("u1", "x", 255), true},
		{"serial in bitmap, last", cert("u1", "x", 399), true},
		{"serial in range section", cert("u1", "x", 500000), true},
		{"serial after range section", cert("u1", "x", 900001), false},
		{"serial beside bitmap bits", cert("u1", "x", 256), false},
		{"serial 0 never", cert("u1", "x", 0), false},
		{"key id", cert("u2", "revoked-id", 1000), true},
		{"other key id", cert("u2", "fine-id", 1000), false},
		{"other CA, revoked serial", signWithKeygen(t, otherCA, users["u1"], "x", "demo-app", "-1h:+1h", 5), false},
		{"plain key by key:", readPub(t, users["u3"]+".pub"), true},
		{"certificate of a revoked key", cert("u3", "x", 1000), true},
		{"plain key by sha256:", readPub(t, users["u4"]+".pub"), true},
		{"plain key by hash:", readPub(t, users["u6"]+".pub"), true},
		{"plain key from a .pub file", readPub(t, users["u5"]+".pub"), true},
		{"plain key not revoked", readPub(t, users["u1"]+".pub"), false},
		{"the CA itself is not revoked", readPub(t, ca+".pub"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rl.keyRevoked(tt.key); got != tt.want {
				t.Fatalf("revoked = %v, want %v", got, tt.want)
			}
			// ssh-keygen -Q agrees.
			f := writeFile(t, t.TempDir(), "k.pub", string(gossh.MarshalAuthorizedKey(tt.key)))
			err := exec.Command("ssh-keygen", "-Q", "-f", krl, f).Run()
			if (err != nil) != tt.want {
				t.Fatalf("ssh-keygen -Q says revoked=%v", err != nil)
			}
		})
	}

	// Revoking the CA key revokes every certificate it signed.
	caKRL := filepath.Join(dir, "ca.krl")
	keygen(t, "-k", "-f", caKRL, ca+".pub")
	raw, _ = os.ReadFile(caKRL)
	rl, err = parseRevocationList(caKRL, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !rl.keyRevoked(cert("u1", "x", 6)) {
		t.Fatal("certificate of a revoked CA accepted")
	}
}

func TestRevokedKeysThroughAuthority(t *testing.T) {
	needKeygen(t)
	dir := t.TempDir()
	ca, user, plain := keyPair(t, dir, "ca"), keyPair(t, dir, "user"), keyPair(t, dir, "plain")
	caFile := writeFile(t, dir, "trusted", authLine("", readPub(t, ca+".pub")))
	ak := writeFile(t, dir, "authorized_keys", authLine("", readPub(t, plain+".pub")))
	revoked := writeFile(t, dir, "revoked", "# nothing yet\n")
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: ak, TrustedUserCAKeysFile: caFile, RevokedKeysFile: revoked})

	good := signWithKeygen(t, ca, user, "alice", "demo-app", "-5m:+1h", 7)
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", good); got != allowed {
		t.Fatalf("certificate: %v", got)
	}
	if got, _ := attempt(t, a, "other-app", "127.0.0.1:1", good); got != denied {
		t.Fatalf("certificate for another app: %v", got)
	}
	expired := signWithKeygen(t, ca, user, "alice", "demo-app", "20200101:20200102", 8)
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", expired); got != refused {
		t.Fatalf("expired certificate: %v", got)
	}
	forced := signWithKeygen(t, ca, user, "alice", "demo-app", "-5m:+1h", 9, "force-command=id -u", "no-pty")
	if _, g := attempt(t, a, "demo-app", "127.0.0.1:1", forced); g == nil || g.ForceCommand != "id -u" || !g.NoPTY {
		t.Fatalf("force-command certificate: %+v", g)
	}
	sourced := signWithKeygen(t, ca, user, "alice", "demo-app", "-5m:+1h", 10, "source-address=10.0.0.0/8")
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", sourced); got != refused {
		t.Fatalf("source-address certificate: %v", got)
	}
	if got, _ := attempt(t, a, "demo-app", "10.2.3.4:1", sourced); got != allowed {
		t.Fatalf("source-address certificate from inside: %v", got)
	}

	// A KRL revoking serial 7, then a plain list revoking the plain key:
	// each takes effect at the next attempt.
	spec := writeFile(t, dir, "spec", "serial: 7\n")
	krl := filepath.Join(dir, "krl")
	keygen(t, "-k", "-f", krl, "-s", ca+".pub", spec)
	replaceFile(t, krl, revoked)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", good); got != refused {
		t.Fatalf("revoked certificate: %v", got)
	}
	if got, _ := attempt(t, a, "any", "127.0.0.1:1", readPub(t, plain+".pub")); got != allowed {
		t.Fatalf("plain key: %v", got)
	}
	writeFile(t, dir, "revoked", authLine("", readPub(t, plain+".pub")))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, _ := attempt(t, a, "any", "127.0.0.1:1", readPub(t, plain+".pub")); got != refused {
		t.Fatalf("revoked plain key: %v", got)
	}
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", good); got != allowed {
		t.Fatalf("certificate after the KRL was replaced: %v", got)
	}
}

// replaceFile renames src over dst, as tools that write atomically do.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}
}

func TestKRLMalformed(t *testing.T) {
	hdr := krlMagic + "\x00\x00\x00\x01" + strings.Repeat("\x00", 24) + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
	for _, tt := range []struct{ name, data string }{
		{"truncated header", krlMagic + "\x00\x00"},
		{"bad version", krlMagic + "\x00\x00\x00\x02" + hdr[len(krlMagic)+4:]},
		{"unknown section", hdr + "\x09\x00\x00\x00\x00"},
		{"truncated section", hdr + "\x02\x00\x00\x00\x09abc"},
		{"bad key", hdr + "\x02\x00\x00\x00\x07\x00\x00\x00\x03abc"},
		{"bad sha256 length", hdr + "\x05\x00\x00\x00\x07\x00\x00\x00\x03abc"},
		{"serials without CA", hdr + "\x01\x00\x00\x00\x15" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x20\x00\x00\x00\x08" + "\x00\x00\x00\x00\x00\x00\x00\x05"},
		{"range min > max", hdr + "\x01\x00\x00\x00\x1d" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x21\x00\x00\x00\x10" + "\x00\x00\x00\x00\x00\x00\x00\x05" + "\x00\x00\x00\x00\x00\x00\x00\x01"},
	} {
		if _, err := parseRevocationList("krl", []byte(tt.data)); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	// An empty KRL is fine.
	if _, err := parseRevocationList("krl", []byte(hdr)); err != nil {
		t.Fatal(err)
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]serialRange{{10, 20}, {1, 1}, {2, 3}, {15, 30}, {32, 32}, {31, 31}, {100, 100}})
	want := []serialRange{{1, 3}, {10, 32}, {100, 100}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	sec := certRevocations{serials: got}
	for s, want := range map[uint64]bool{0: false, 1: true, 3: true, 4: false, 9: false, 10: true, 32: true, 33: false, 99: false, 100: true, 101: false} {
		if sec.hasSerial(s) != want {
			t.Errorf("hasSerial(%d) != %v", s, want)
		}
	}
}
