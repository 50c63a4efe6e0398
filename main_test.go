package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With no CA certificates on the system (SSL_CERT_FILE and SSL_CERT_DIR
// name nothing, as on a slim or scratch image), the binary still trusts the
// public CAs a PaaS's HTTPS certificate chains to, from the embedded
// fallback roots. The check runs in a child process, since Go reads the
// system roots once per process.
func TestPublicCAsWithoutSystemCertificates(t *testing.T) {
	if os.Getenv("BRIDGE_TEST_NO_SYSTEM_CAS") == "1" {
		verifyPublicRoot(t)
		return
	}
	empty := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPublicCAsWithoutSystemCertificates$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BRIDGE_TEST_NO_SYSTEM_CAS=1",
		"SSL_CERT_FILE="+filepath.Join(empty, "none.pem"), "SSL_CERT_DIR="+empty)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("without system CA certificates: %v\n%s", err, out)
	}
}

func verifyPublicRoot(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "isrg-root-x1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// No Roots: the system pool, which is empty here but for the fallback.
	if _, err := cert.Verify(x509.VerifyOptions{CurrentTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatalf("ISRG Root X1 (Let's Encrypt) is not trusted: %v", err)
	}
}

func TestLoopbackFor(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:2222":   "127.0.0.1:2222",
		":2222":          "127.0.0.1:2222",
		"[::]:2222":      "[::1]:2222",
		"10.1.2.3:22":    "10.1.2.3:22",
		"localhost:2222": "localhost:2222",
	} {
		if got := loopbackFor(in); got != want {
			t.Errorf("loopbackFor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionTextFromLinker(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v1.2.3"
	if got := versionText(); !strings.HasPrefix(got, "bridge v1.2.3 ") || !strings.Contains(got, "go1.") {
		t.Fatalf("versionText() = %q", got)
	}
}
