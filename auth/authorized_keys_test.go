package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func TestParseAuthorizedKeysFile(t *testing.T) {
	k1, k2, k3 := newKey(t).PublicKey(), newKey(t).PublicKey(), newKey(t).PublicKey()
	bare := func(k gossh.PublicKey) string { return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))) }
	text := "# Comments are allowed at start of line. Blank lines are allowed.\n" +
		"\n" +
		"   \t\n" +
		bare(k1) + "\n" +
		"  " + `command="echo two words",no-pty ` + bare(k2) + " comment with spaces\r\n" +
		`from="10.0.0.0/8"` + "\t" + bare(k3) + "\n" +
		bare(k1) // last line without newline
	lines, err := parseAuthorizedKeys("ak", strings.NewReader(text), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	want := []struct {
		key    gossh.PublicKey
		source string
	}{{k1, "ak:4"}, {k2, "ak:5"}, {k3, "ak:6"}, {k1, "ak:7"}}
	for i, w := range want {
		if string(lines[i].key.Marshal()) != string(w.key.Marshal()) || lines[i].source != w.source {
			t.Errorf("line %d: source %s", i, lines[i].source)
		}
	}
	if lines[1].opts.command != "echo two words" || !lines[1].opts.noPTY {
		t.Errorf("options of line 5: %+v", lines[1].opts)
	}
}

func TestParseAuthorizedKeysErrorsNameLine(t *testing.T) {
	k := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(newKey(t).PublicKey())))
	cert := &gossh.Certificate{Key: newKey(t).PublicKey(), CertType: gossh.UserCert, ValidPrincipals: []string{"a"}, ValidBefore: gossh.CertTimeInfinity}
	if err := cert.SignCert(nilReader{}, newKey(t)); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ line, want string }{
		{"frobnicate " + k, `unknown option "frobnicate"`},
		{"ssh-ed25519 AAAA!!!", "bad base64"},
		{"ssh-ed25519 aGVsbG8=", "bad ssh-ed25519 key"},
		{"ssh-rsa " + strings.Fields(k)[1], "does not match"},
		{"no-pty", "no key after the options"},
		{`command="x y`, "missing closing quote"},
		{`no-pty notakey AAAA`, "no key of a known type"},
		{"no-pty " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert))), "certificate is not an authorized key"},
		{"justoneword", "no key"},
		{"ssh-dss " + dsaKey, `bad ssh-dss key: ssh: unknown key algorithm`},
		{"no-pty ssh-dss " + dsaKey, `bad ssh-dss key: ssh: unknown key algorithm`},
	}
	for _, tt := range tests {
		_, err := parseAuthorizedKeys("/etc/keys", strings.NewReader("# ok\n"+k+"\n"+tt.line+"\n"), time.UTC)
		if err == nil || !strings.HasPrefix(err.Error(), "/etc/keys:3: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want /etc/keys:3: ...%s", tt.line, err, tt.want)
		}
	}
}

// dsaKey is a DSA public key (ssh-keygen -t dsa), a type x/crypto no
// longer parses and old authorized_keys files still hold.
const dsaKey = "AAAAB3NzaC1kc3MAAACBAIeeHNC7GzFrILx8fw/pCZHWTmtvRqM77n+c0SZUj7wOpAUo+yCtsNFP9QClNZ5rECqmRrazX/sCM5gw5O1pxCmsE7WHyENWZdBYldjgf5+XAFqpmW/Ed4rsb4eAJ8ji8JZKofosPg4dHwAAFpmjZthmn3GsXztsWadeI7ZWFiV1AAAAFQDvzDSo3FB9KA+0ujhXWVaKUiyJNQAAAIBxko6m46qKM/RVJhyTf1tSLJM34QPTgt0H3j4Deb/bKTUf8B76ER9gPfeDWnSVnNqJPo1fDl24u1nQRNWJF2TYad6XLb3DUYrjh/qo7EMkThRVfkkba7cPdKOrM8QL4z7hi1WT+a79AnLvTxG4lSSRcsAZq3RKNouzaHVv+aR8sQAAAIARX7G3MU0CNAp1uayYsRD7ELWyKQrb/r/FAusL9Wlvvj36pHgyp3WwZ/5lDys3lDZVJY6p5IltOh+vhprnnLgrZ+2tODg8HWXpeSsXVxbY1eFpUWj3KNe1Fw7T9UWkpCTZBixmIf3Mqrp6Ng/4UHpe6GJ1OHse5FXGnUOTMuuzZA=="

// nilReader makes certificate nonces deterministic in tests that do not
// care about them.
type nilReader struct{}

func (nilReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestNewRefusesBadLine(t *testing.T) {
	dir := t.TempDir()
	good := authLine("", newKey(t).PublicKey())
	file := writeFile(t, dir, "authorized_keys", good+"bogus-option "+good)
	_, err := New(Config{AuthorizedKeysFile: file})
	if err == nil || !strings.Contains(err.Error(), file+":2:") {
		t.Fatalf("error %v, want one naming %s:2", err, file)
	}
	if _, err := New(Config{AuthorizedKeysFile: filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("missing file accepted")
	}
	empty := writeFile(t, dir, "empty", "# nobody\n")
	if _, err := New(Config{AuthorizedKeysFile: empty}); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("empty file: %v, want ErrNoKeys", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("no files: %v, want ErrNoKeys", err)
	}
}

func TestDefaultAuthorizedKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := defaultAuthorizedKeysIn(dir); !errors.Is(err, ErrNoKeys) || !strings.Contains(err.Error(), "ssh-keygen") {
		t.Fatalf("no keys: %v", err)
	}
	k := authLine("", newKey(t).PublicKey())
	writeFile(t, dir, "id_ed25519.pub", k)
	writeFile(t, dir, "id_ed25519-cert.pub", "not read")
	writeFile(t, dir, "id_rsa.pub", authLine("", newKey(t).PublicKey()))
	writeFile(t, dir, "other.pub", k)
	if err := os.Mkdir(filepath.Join(dir, "id_dir.pub"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := defaultAuthorizedKeysIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "id_ed25519.pub"), filepath.Join(dir, "id_rsa.pub")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
	writeFile(t, dir, "authorized_keys", k)
	got, _ = defaultAuthorizedKeysIn(dir)
	if len(got) != 3 || got[0] != filepath.Join(dir, "authorized_keys") {
		t.Fatalf("got %v", got)
	}
	// The files load together, a key in two of them is fine.
	if _, err := New(Config{AuthorizedKeysFiles: got}); err != nil {
		t.Fatal(err)
	}
}
