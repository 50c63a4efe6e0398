package auth

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// HostCertificate is one OpenSSH host certificate the bridge presents:
// Signer offers the certificate's algorithms (ssh-ed25519-cert-v01@openssh.com
// and the like) in the key exchange beside the plain host key's, and signs
// with the host key it certifies (x/crypto's NewCertSigner).
type HostCertificate struct {
	File   string
	Cert   *gossh.Certificate
	Signer gossh.Signer
}

// Principals are the host names the certificate is valid for, comma
// separated; "(any)" when it names none, which OpenSSH's client accepts
// for any host.
func (h HostCertificate) Principals() string {
	if len(h.Cert.ValidPrincipals) == 0 {
		return "(any)"
	}
	return strings.Join(h.Cert.ValidPrincipals, ",")
}

// ValidUntil is the end of the certificate's validity in RFC 3339 (UTC),
// the first second it is no longer valid; "forever" for ssh-keygen's
// default.
func (h HostCertificate) ValidUntil() string { return validBefore(h.Cert) }

func validBefore(c *gossh.Certificate) string {
	if c.ValidBefore == gossh.CertTimeInfinity || c.ValidBefore > 1<<63-1 {
		return "forever"
	}
	return time.Unix(int64(c.ValidBefore), 0).UTC().Format(time.RFC3339)
}

// LoadHostCertificates reads OpenSSH host certificates, as OpenSSH's
// HostCertificate: each file is a *-cert.pub that `ssh-keygen -s CA -h`
// wrote, one certificate on its first line. hostKeys are the bridge's host
// keys; the certificates come back in the order of files.
//
// Unlike sshd, which logs a certificate it cannot use and starts without
// it, every problem is an error that names the file, so that a bridge
// never starts presenting an identity its clients would refuse: a file
// that holds no certificate, a user certificate, a certificate whose key
// is none of hostKeys, one that is not yet valid or has expired at now
// (valid from ValidAfter to before ValidBefore, as OpenSSH's
// sshkey_cert_check_authority), one whose CA signature does not verify or
// that has a critical option (OpenSSH defines none for host
// certificates), and two certificates of one host key (a client is
// offered one certificate per key type and would see only one of them).
func LoadHostCertificates(files []string, hostKeys []gossh.Signer, now time.Time) ([]HostCertificate, error) {
	var out []HostCertificate
	for _, file := range files {
		hc, err := loadHostCertificate(file, hostKeys, now)
		if err != nil {
			return nil, err
		}
		for _, prev := range out {
			if bytes.Equal(prev.Cert.Key.Marshal(), hc.Cert.Key.Marshal()) {
				return nil, fmt.Errorf("%s: certifies the same host key as %s: a client is offered one certificate per host key; give one of them", file, prev.File)
			}
		}
		out = append(out, hc)
	}
	return out, nil
}

func loadHostCertificate(file string, hostKeys []gossh.Signer, now time.Time) (HostCertificate, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return HostCertificate{}, err
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(raw)
	if err != nil {
		return HostCertificate{}, fmt.Errorf("%s: not an OpenSSH certificate (want the *-cert.pub that ssh-keygen -s CA -h wrote): %w", file, err)
	}
	cert, ok := pub.(*gossh.Certificate)
	if !ok {
		return HostCertificate{}, fmt.Errorf("%s: a plain %s public key, not a certificate (sign the host key with ssh-keygen -s CA -h)", file, pub.Type())
	}
	if cert.CertType != gossh.HostCert {
		return HostCertificate{}, fmt.Errorf("%s: a user certificate, not a host certificate (ssh-keygen -s needs -h to sign a host key)", file)
	}
	var key gossh.Signer
	for _, k := range hostKeys {
		if bytes.Equal(k.PublicKey().Marshal(), cert.Key.Marshal()) {
			key = k
			break
		}
	}
	if key == nil {
		fps := make([]string, len(hostKeys))
		for i, k := range hostKeys {
			fps[i] = gossh.FingerprintSHA256(k.PublicKey())
		}
		which := "is not the bridge's host key"
		if len(fps) > 1 {
			which = "is none of the bridge's host keys"
		}
		return HostCertificate{}, fmt.Errorf("%s: certifies the key %s, which %s (%s): sign the host key's .pub",
			file, gossh.FingerprintSHA256(cert.Key), which, strings.Join(fps, ", "))
	}
	unix := now.Unix()
	if after := cert.ValidAfter; after > 1<<63-1 || unix < int64(after) {
		return HostCertificate{}, fmt.Errorf("%s: not valid before %s (now %s)", file,
			time.Unix(int64(min(after, 1<<63-1)), 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if before := cert.ValidBefore; before != gossh.CertTimeInfinity && before <= 1<<63-1 && unix >= int64(before) {
		return HostCertificate{}, fmt.Errorf("%s: expired at %s (now %s)", file, validBefore(cert), now.UTC().Format(time.RFC3339))
	}
	if err := checkHostCertSignature(cert, now); err != nil {
		return HostCertificate{}, fmt.Errorf("%s: %w", file, err)
	}
	signer, err := gossh.NewCertSigner(cert, key)
	if err != nil {
		return HostCertificate{}, fmt.Errorf("%s: %w", file, err)
	}
	return HostCertificate{File: file, Cert: cert, Signer: signer}, nil
}

// checkHostCertSignature checks the CA's signature and the critical
// options with x/crypto's CertChecker. CheckCert also wants a principal
// among the certificate's; any of its own passes, since which name a
// client uses is the client's to check. It refuses a certificate with no
// principals, which OpenSSH's client accepts for any host name, so that
// one's signature is checked here as CheckCert does, over the certificate
// without its signature field.
func checkHostCertSignature(cert *gossh.Certificate, now time.Time) error {
	if len(cert.ValidPrincipals) > 0 {
		checker := gossh.CertChecker{Clock: func() time.Time { return now }}
		return checker.CheckCert(cert.ValidPrincipals[0], cert)
	}
	if len(cert.CriticalOptions) > 0 {
		return fmt.Errorf("ssh: unsupported critical options in certificate: %s", strings.Join(slices.Sorted(maps.Keys(cert.CriticalOptions)), ", "))
	}
	unsigned := *cert
	unsigned.Signature = nil
	data := unsigned.Marshal()
	data = data[:len(data)-4] // the empty signature's length
	if err := cert.SignatureKey.Verify(data, cert.Signature); err != nil {
		return errors.New("ssh: certificate signature does not verify")
	}
	return nil
}
