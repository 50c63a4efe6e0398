package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// One host identity for several bridges behind a load balancer: a shared
// host key, and OpenSSH host certificates (--host-certificate) signed by
// ssh-keygen as a host CA. OpenSSH's ssh connects under one name (the
// balancer's, given as HostKeyAlias) to two bridge processes, with
// StrictHostKeyChecking=yes and a known_hosts file that has no line for
// either bridge's address.

// lbName is the name clients use for the balancer, and the principal the
// host certificates are signed for.
const lbName = "bridge.example.net"

// newKey makes an ed25519 key pair with ssh-keygen in dir: the private
// key (mode 0600) at the returned path, its public half at path + ".pub".
func newKey(t *testing.T, dir, name string) string {
	t.Helper()
	return newKeyOfType(t, dir, name, "ed25519")
}

// newKeyOfType is newKey for a key of ssh-keygen's type typ (-t).
func newKeyOfType(t *testing.T, dir, name, typ string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	out, err := exec.Command(need(t, "ssh-keygen"), "-q", "-t", typ, "-N", "", "-C", name, "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return file
}

// signHost signs key's public half with the CA key ca as ssh-keygen -s
// does, with args (-h for a host certificate, -n, -V), and returns the
// certificate, key + "-cert.pub".
func signHost(t *testing.T, ca, key string, args ...string) string {
	t.Helper()
	args = append(append([]string{"-s", ca, "-I", filepath.Base(key)}, args...), key+".pub")
	out, err := exec.Command(need(t, "ssh-keygen"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
	return key + "-cert.pub"
}

// knownHosts writes a known_hosts file of lines into dir.
func knownHosts(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// sshAsBalancer runs `echo` in an app on b with ssh that knows the host
// only as lbName, from the known_hosts file kh alone (no global file, no
// updates to it).
func sshAsBalancer(t *testing.T, b *Bridge, kh string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{
		"-F", "/dev/null",
		"-i", b.Key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "UpdateHostKeys=no",
		"-o", "HostKeyAlias=" + lbName,
		"-o", "ConnectTimeout=20",
		"-p", b.Port,
		"demo-app@" + b.Host, "echo", "through-" + lbName,
	}
	return runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
}

// connects fails the test unless the client with known_hosts kh reached
// b's app and ran its command.
func connects(t *testing.T, what string, b *Bridge, kh string) {
	t.Helper()
	r := sshAsBalancer(t, b, kh)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "through-"+lbName {
		t.Errorf("%s: want the command's output and exit 0, got %+v", what, r)
	}
}

// refused fails the test unless the client with known_hosts kh was
// refused at the host key check: the control that shows the check is
// made.
func refused(t *testing.T, what string, b *Bridge, kh string) {
	t.Helper()
	r := sshAsBalancer(t, b, kh)
	if r.Code != 255 || !strings.Contains(r.Stderr, "Host key verification failed") {
		t.Errorf("%s: want ssh to refuse the host key (exit 255, \"Host key verification failed\"), got %+v", what, r)
	}
}

// pubLine is the public key file's "TYPE BASE64" without its comment.
func pubLine(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		t.Fatalf("%s: not a public key: %q", file, raw)
	}
	return f[0] + " " + f[1]
}

// Two bridges with different host keys (ed25519 and RSA), each certified
// by one host CA: a client that trusts the CA for the balancer's name
// (@cert-authority) connects to both, with no line for either key. A
// client that trusts another CA is refused by both, and a bridge that
// presents its key without the certificate, or with one for another name,
// is refused by the first client: the certificate, for that name, is what
// it accepted.
func TestHostCertificateTwoBridgesOneCA(t *testing.T) {
	dir := t.TempDir()
	ca, otherCA := newKey(t, dir, "host_ca"), newKey(t, dir, "other_ca")
	// B's key is RSA: its certificate is offered with the rsa-sha2-*
	// certificate algorithms, which OpenSSH's client asks for.
	keyA, keyB := newKey(t, dir, "host_a"), newKeyOfType(t, dir, "host_b", "rsa")
	certA := signHost(t, ca, keyA, "-h", "-n", lbName, "-V", "-5m:+1h")
	certB := signHost(t, ca, keyB, "-h", "-n", lbName, "-V", "-5m:+1h")

	a := StartBridge(t, Options{Args: []string{"--host-key", keyA, "--host-certificate", certA}})
	b := StartBridge(t, Options{Args: []string{"--host-key", keyB}, Env: []string{"BRIDGE_HOST_CERTIFICATE=" + certB}})
	plain := StartBridge(t, Options{Args: []string{"--host-key", keyA}})
	// Key A's public half under another name, so that its certificate
	// for another host name is a file of its own.
	elsewhereKey := filepath.Join(dir, "host_a_elsewhere")
	if err := os.WriteFile(elsewhereKey+".pub", []byte(pubLine(t, keyA+".pub")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := StartBridge(t, Options{Args: []string{"--host-key", keyA, "--host-certificate",
		signHost(t, ca, elsewhereKey, "-h", "-n", "elsewhere.example.net", "-V", "-5m:+1h")}})

	trustCA := knownHosts(t, dir, "known_hosts_ca", "@cert-authority "+lbName+" "+pubLine(t, ca+".pub"))
	trustOther := knownHosts(t, dir, "known_hosts_other", "@cert-authority "+lbName+" "+pubLine(t, otherCA+".pub"))
	before, err := os.ReadFile(trustCA)
	if err != nil {
		t.Fatal(err)
	}

	connects(t, "bridge A, its certificate signed by the trusted CA", a, trustCA)
	connects(t, "bridge B, another host key signed by the same CA", b, trustCA)
	refused(t, "bridge A, a client trusting another CA", a, trustOther)
	refused(t, "bridge B, a client trusting another CA", b, trustOther)
	refused(t, "a bridge with host key A and no certificate", plain, trustCA)
	refused(t, "a bridge whose certificate is for another name", elsewhere, trustCA)

	after, err := os.ReadFile(trustCA)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("ssh changed the known_hosts file:\n%s", after)
	}
	for _, c := range []struct {
		b    *Bridge
		cert string
	}{{a, certA}, {b, certB}} {
		if !c.b.LogHas(`msg="presenting a host certificate" file=` + c.cert + ` key_id=` + filepath.Base(strings.TrimSuffix(c.cert, "-cert.pub")) + " serial=0 principals=" + lbName) {
			t.Errorf("the log does not say which certificate is presented (%s):\n%s", c.cert, c.b.Log())
		}
	}
}

// Two bridges sharing one host key file (and its certificate): a client
// that pinned the plain key under the balancer's name connects to both,
// and so does one that trusts the CA. A bridge with another key is
// refused by the first: the pinned key is checked.
func TestSharedHostKeyTwoBridges(t *testing.T) {
	dir := t.TempDir()
	ca, key, other := newKey(t, dir, "host_ca"), newKey(t, dir, "shared_host_key"), newKey(t, dir, "other_host_key")
	cert := signHost(t, ca, key, "-h", "-n", lbName)

	a := StartBridge(t, Options{Args: []string{"--host-key", key, "--host-certificate", cert}})
	b := StartBridge(t, Options{Args: []string{"--host-key", key, "--host-certificate", cert}})
	elsewhere := StartBridge(t, Options{Args: []string{"--host-key", other}})

	pinned := knownHosts(t, dir, "known_hosts_key", lbName+" "+pubLine(t, key+".pub"))
	trustCA := knownHosts(t, dir, "known_hosts_ca", "@cert-authority "+lbName+" "+pubLine(t, ca+".pub"))
	connects(t, "bridge A, the pinned shared key", a, pinned)
	connects(t, "bridge B, the pinned shared key", b, pinned)
	connects(t, "bridge A, the shared key's certificate", a, trustCA)
	connects(t, "bridge B, the shared key's certificate", b, trustCA)
	refused(t, "a bridge with another host key", elsewhere, pinned)
}

// A certificate the bridge could not present keeps it from starting,
// with a line that names the setting, the file and what is wrong; bridge
// check says the same line and exits 1.
func TestHostCertificateRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca := newKey(t, dir, "host_ca")
	key, other := newKey(t, dir, "host_key"), newKey(t, dir, "other_key")
	copyTo := func(src, name string) string {
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.WriteFile(dst, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	// Each signing of a key writes KEY-cert.pub: each certificate is
	// copied to a name of its own.
	good := copyTo(signHost(t, ca, key, "-h", "-n", lbName), "good-cert.pub")
	goodCopy := copyTo(good, "again-cert.pub")
	user := copyTo(signHost(t, ca, key, "-n", "someone"), "user-cert.pub")
	expired := copyTo(signHost(t, ca, key, "-h", "-V", "20200101Z:20200201Z"), "expired-cert.pub")
	notYet := copyTo(signHost(t, ca, key, "-h", "-V", "+1d:+2d"), "not-yet-cert.pub")
	otherKey := copyTo(signHost(t, ca, other, "-h"), "other-cert.pub")
	// One byte of the signature changed (the certificate's last bytes,
	// base64 before the comment): the CA's signature no longer verifies.
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(raw))
	blob := []byte(f[1])
	i := len(blob) - 8
	blob[i] = map[bool]byte{true: 'B', false: 'A'}[blob[i] == 'A']
	forged := filepath.Join(dir, "forged-cert.pub")
	if err := os.WriteFile(forged, []byte(f[0]+" "+string(blob)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		certs string
		want  string
	}{
		{"a plain public key", key + ".pub", "--host-certificate: " + key + ".pub: a plain ssh-ed25519 public key, not a certificate"},
		{"a user certificate", user, "--host-certificate: " + user + ": a user certificate, not a host certificate"},
		{"another key's certificate", otherKey, "--host-certificate: " + otherKey + ": certifies the key " + fingerprint(t, other) + ", which is not the bridge's host key (" + fingerprint(t, key) + ")"},
		{"expired", expired, "--host-certificate: " + expired + ": expired at 2020-02-01T00:00:00Z"},
		{"not yet valid", notYet, "--host-certificate: " + notYet + ": not valid before "},
		{"a forged signature", forged, "--host-certificate: " + forged + ": ssh: certificate signature does not verify"},
		{"two for one key", good + "," + goodCopy, "--host-certificate: " + goodCopy + ": certifies the same host key as " + good},
		{"missing", filepath.Join(dir, "nowhere-cert.pub"), "--host-certificate: open " + filepath.Join(dir, "nowhere-cert.pub") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ak, data := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
			args := []string{"--listen", "127.0.0.1:0", "--authorized-keys", ak, "--data-dir", data,
				"--host-key", key, "--host-certificate", tc.certs}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r := runCmd(t, exec.CommandContext(ctx, binary, args...), nil)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("bridge: want exit 1 and %q on stderr, got %+v", tc.want, r)
			}
			r = runBinary(t, nil, append([]string{"check"}, args...)...)
			if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("bridge check: want exit 1 and the line %q, got %+v", tc.want, r)
			}
		})
	}
}

// bridge check passes a good certificate in silence, and warns of one
// that expires within a week and of one valid for any host name.
func TestCheckHostCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, key := newKey(t, dir, "host_ca"), newKey(t, dir, "host_key")
	_, ak, data := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
	args := []string{"check", "--authorized-keys", ak, "--data-dir", data, "--host-key", key}

	cert := signHost(t, ca, key, "-h", "-n", lbName, "-V", "-1m:+30d")
	if r := runBinary(t, nil, append(args, "--host-certificate", cert)...); r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
		t.Errorf("a good certificate: want exit 0 and no output, got %+v", r)
	}
	cert = signHost(t, ca, key, "-h", "-n", lbName, "-V", "-1m:+2d")
	r := runBinary(t, nil, append(args, "--host-certificate", cert)...)
	if want := cert + ": warning: expires at "; r.Code != 0 || !strings.HasPrefix(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("a certificate for two days: want exit 0 and one line %q..., got %+v", want, r)
	}
	cert = signHost(t, ca, key, "-h")
	r = runBinary(t, nil, append(args, "--host-certificate", cert)...)
	if want := cert + ": warning: names no host (no principals)"; r.Code != 0 || !strings.HasPrefix(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("a certificate without -n: want exit 0 and one line %q..., got %+v", want, r)
	}
	// No host key yet: the one the bridge would make cannot be certified.
	r = runBinary(t, nil, "check", "--authorized-keys", ak, "--data-dir", data, "--host-certificate", cert)
	if want := "--host-certificate: no host key yet in " + data; r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Errorf("no host key: want exit 1 and %q, got %+v", want, r)
	}
}

// fingerprint is the SHA256 fingerprint of key's public half, as
// ssh-keygen -l prints it.
func fingerprint(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command(need(t, "ssh-keygen"), "-l", "-E", "sha256", "-f", key+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen -l: %q", out)
	}
	return f[1]
}

// A certificate renewed in place is presented after a reload (SIGHUP): the
// new process reads it. Before, the bridge presents a certificate for
// another name, which the client refuses; after, the one for the
// balancer's name, which it accepts.
func TestHostCertificateRenewedOnReload(t *testing.T) {
	dir := t.TempDir()
	ca, key := newKey(t, dir, "host_ca"), newKey(t, dir, "host_key")
	cert := signHost(t, ca, key, "-h", "-n", "old.example.net", "-V", "-5m:+1h")
	b := StartBridge(t, Options{Args: []string{"--host-key", key, "--host-certificate", cert}})
	trustCA := knownHosts(t, dir, "known_hosts_ca", "@cert-authority "+lbName+" "+pubLine(t, ca+".pub"))
	refused(t, "before the renewal, a certificate for another name", b, trustCA)

	if renewed := signHost(t, ca, key, "-h", "-n", lbName, "-V", "-5m:+1h", "-z", "2"); renewed != cert {
		t.Fatalf("ssh-keygen wrote %s, not %s", renewed, cert)
	}
	syscall.Kill(b.cmd.Process.Pid, syscall.SIGHUP)
	served := regexp.MustCompile(`msg="handover: the new process serves" new_pid=([0-9]+)`)
	waitFor(t, time.Minute, "the handover in the log", func() bool { return served.MatchString(b.Log()) })
	newPID, _ := strconv.Atoi(served.FindStringSubmatch(b.Log())[1])
	t.Cleanup(func() { stopPID(t, newPID) })
	if !b.LogHas(`msg="presenting a host certificate" file=` + cert + " key_id=host_key serial=2 principals=" + lbName) {
		t.Errorf("the new process does not say it presents the renewed certificate:\n%s", b.Log())
	}
	connects(t, "after the renewal and a reload", b, trustCA)
}
