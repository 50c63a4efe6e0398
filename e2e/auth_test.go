package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Access control with the real OpenSSH client against the built bridge:
// authorized_keys options, apps=, user certificates, revocation, reload.

// runAs runs command in app through ssh with the given private key (its
// certificate, key + "-cert.pub", is sent too when it exists).
func (b *Bridge) runAs(key, app string, extra []string, command ...string) Result {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(b.SSHArgs(key), "-p", b.Port)
	args = append(args, extra...)
	args = append(args, "-o", "LogLevel=ERROR", app+"@"+b.Host)
	args = append(args, command...)
	return runCmd(b.t, exec.CommandContext(ctx, need(b.t, "ssh"), args...), nil)
}

// keyLine is the authorized_keys line of the default client key with options.
func keyLine(t *testing.T, opts string) string {
	return strings.TrimSpace(opts+" "+publicKey(t, clientKey(t, "default"))) + "\n"
}

func keygenRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(need(t, "ssh-keygen"), args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
}

// waitReload waits until the bridge logged one more reload of its keys
// than before (it polls the files every second).
func waitReload(t *testing.T, b *Bridge, before int) {
	t.Helper()
	waitFor(t, 10*time.Second, "keys reloaded", func() bool {
		return strings.Count(b.Log(), "authorized keys reloaded") > before
	})
}

func TestAuthAppsPattern(t *testing.T) {
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, `apps="demo-*"`)})
	if r := b.Run("demo-app", nil, "echo in"); r.Code != 0 || r.Stdout != "in\n" {
		t.Fatalf("demo-app: %+v", r)
	}
	r := b.Run("other-app", nil, "echo in")
	if r.Code != 240 || !strings.Contains(r.Stderr, `may not use app "other-app"`) || r.Stdout != "" {
		t.Fatalf("other-app: %+v", r)
	}
	// The refusal does not tell which apps exist or are allowed.
	if strings.Contains(r.Stderr, "demo") {
		t.Fatalf("refusal leaks the allowed apps: %q", r.Stderr)
	}
	if !b.LogHas("decision=deny-app") {
		t.Fatalf("denial not in the audit log:\n%s", b.Log())
	}
}

func TestAuthFromAndExpiryRefused(t *testing.T) {
	for _, opts := range []string{`from="10.0.0.0/8"`, `expiry-time="20200101"`} {
		t.Run(opts, func(t *testing.T) {
			b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, opts)})
			if r := b.Run("demo-app", nil, "echo in"); r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
				t.Fatalf("got %+v", r)
			}
			if !b.LogHas("decision=refuse") {
				t.Fatalf("refusal not in the audit log:\n%s", b.Log())
			}
		})
	}
}

func TestAuthEnvironmentAndCommand(t *testing.T) {
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t,
		`environment="GREETING=hello, world",command="echo \"forced $GREETING: $SSH_ORIGINAL_COMMAND\""`)})
	if r := b.Run("demo-app", nil, "ls -l /"); r.Code != 0 || r.Stdout != "forced hello, world: ls -l /\n" {
		t.Fatalf("got %+v", r)
	}
}

func TestAuthNoPTY(t *testing.T) {
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, `no-pty`)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// OpenSSH 9 gives up when a forced terminal (-tt) is refused.
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt", "-o", "LogLevel=INFO"}, "tty"), nil)
	if !strings.Contains(r.Stderr, "PTY allocation request failed") || strings.Contains(r.Stdout, "/dev/") {
		t.Fatalf("got %+v", r)
	}
	if !b.LogHas("refused pty") {
		t.Fatalf("refusal not logged:\n%s", b.Log())
	}
}

func TestAuthCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, user := filepath.Join(dir, "ca"), filepath.Join(dir, "user")
	keygenRun(t, "-q", "-t", "ed25519", "-N", "", "-f", ca)
	keygenRun(t, "-q", "-t", "ed25519", "-N", "", "-f", user)
	keygenRun(t, "-q", "-s", ca, "-I", "alice", "-n", "demo-app", "-V", "-5m:+1h", "-z", "17", user+".pub")
	revoked := filepath.Join(dir, "revoked")
	if err := os.WriteFile(revoked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b := StartBridge(t, Options{Args: []string{"--trusted-user-ca-keys", ca + ".pub", "--revoked-keys", revoked}})

	if r := b.runAs(user, "demo-app", nil, "echo cert"); r.Code != 0 || r.Stdout != "cert\n" {
		t.Fatalf("demo-app: %+v", r)
	}
	if r := b.runAs(user, "other-app", nil, "echo cert"); r.Code != 240 || !strings.Contains(r.Stderr, `may not use app "other-app"`) {
		t.Fatalf("other-app: %+v", r)
	}
	if !b.LogHas(`cert="id=alice serial=17 ca=SHA256:`) {
		t.Fatalf("certificate identity not in the audit log:\n%s", b.Log())
	}

	// Revoked by serial in a KRL: refused without a restart.
	spec := filepath.Join(dir, "spec")
	if err := os.WriteFile(spec, []byte("serial: 17\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(b.Log(), "authorized keys reloaded")
	keygenRun(t, "-k", "-f", revoked+".new", "-s", ca+".pub", spec)
	if err := os.Rename(revoked+".new", revoked); err != nil {
		t.Fatal(err)
	}
	waitReload(t, b, reloads)
	if r := b.runAs(user, "demo-app", nil, "echo cert"); r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
		t.Fatalf("revoked certificate: %+v", r)
	}

	// An expired certificate is refused.
	keygenRun(t, "-q", "-s", ca, "-I", "alice", "-n", "demo-app", "-V", "20200101:20200102", "-z", "18", user+".pub")
	if r := b.runAs(user, "demo-app", nil, "echo cert"); r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
		t.Fatalf("expired certificate: %+v", r)
	}
}

func TestAuthEditTakesEffect(t *testing.T) {
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, `apps="demo-*"`)})
	if r := b.Run("other-app", nil, "true"); r.Code != 240 {
		t.Fatalf("before the edit: %+v", r)
	}
	reloads := strings.Count(b.Log(), "authorized keys reloaded")
	if err := os.WriteFile(b.AuthorizedKeys, []byte(keyLine(t, `apps="other-*"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitReload(t, b, reloads)
	if r := b.Run("other-app", nil, "echo edited"); r.Code != 0 || r.Stdout != "edited\n" {
		t.Fatalf("after the edit: %+v", r)
	}
	if r := b.Run("demo-app", nil, "true"); r.Code != 240 {
		t.Fatalf("after the edit, old app: %+v", r)
	}

	// A broken edit keeps the last good keys and logs the file and line.
	if err := os.WriteFile(b.AuthorizedKeys, []byte("# x\nbogus "+keyLine(t, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "failed reload logged", func() bool {
		return strings.Contains(b.Log(), b.AuthorizedKeys+":2")
	})
	if r := b.Run("other-app", nil, "echo still"); r.Code != 0 || r.Stdout != "still\n" {
		t.Fatalf("after a broken edit: %+v", r)
	}
}

// A certificate opens only the apps its principals name, on every path:
// the trusted CA keys file and each kind of cert-authority line. A line's
// principals= only narrows which certificates it accepts; apps= on the
// line alone names the apps, and a role CA that should open every app says
// apps="*". The certificates are ssh-keygen's, the client OpenSSH's.
func TestAuthCertificateLeastPrivilege(t *testing.T) {
	dir := t.TempDir()
	newCA := func(name string) string {
		ca := filepath.Join(dir, name)
		keygenRun(t, "-q", "-t", "ed25519", "-N", "", "-f", ca)
		return ca
	}
	caFile, caPlain, caNarrow, caRole, caEvery := newCA("ca-file"), newCA("ca-plain"), newCA("ca-narrow"), newCA("ca-role"), newCA("ca-every")
	pub := func(ca string) string { return publicKey(t, ca) }
	authorized := keyLine(t, "") +
		"cert-authority " + pub(caPlain) + "\n" +
		`cert-authority,principals="demo-app" ` + pub(caNarrow) + "\n" +
		`cert-authority,principals="ops",apps="billing-*" ` + pub(caRole) + "\n" +
		`cert-authority,principals="ops",apps="*" ` + pub(caEvery) + "\n"
	b := StartBridge(t, Options{AuthorizedKeys: authorized, Args: []string{"--trusted-user-ca-keys", caFile + ".pub"}})

	// userCert makes a user key with a certificate from ca for principals.
	userCert := func(n int, ca, principals string) string {
		user := filepath.Join(dir, fmt.Sprintf("user%d", n))
		keygenRun(t, "-q", "-t", "ed25519", "-N", "", "-f", user)
		keygenRun(t, "-q", "-s", ca, "-I", "user-of-"+filepath.Base(ca), "-n", principals, "-V", "-5m:+1h", user+".pub")
		return user
	}
	tests := []struct {
		name, ca, principals, app string
		code                      int
	}{
		{"trusted CA file: the principal's app", caFile, "demo-app", "demo-app", 0},
		{"trusted CA file: another app", caFile, "demo-app", "other-app", 240},
		{"cert-authority: the principal's app", caPlain, "demo-app", "demo-app", 0},
		{"cert-authority: another app", caPlain, "demo-app", "other-app", 240},
		{"principals=: the principal's app", caNarrow, "demo-app", "demo-app", 0},
		{"principals=: another app", caNarrow, "demo-app", "other-app", 240},
		{"principals=: yet another app", caNarrow, "demo-app", "billing-prod", 240},
		{"principals=: no listed principal", caNarrow, "other-app", "other-app", 255},
		{"principals= and apps=: an app of apps=", caRole, "ops", "billing-prod", 0},
		{"principals= and apps=: an app outside apps=", caRole, "ops,demo-app", "demo-app", 240},
		{`role CA with apps="*"`, caEvery, "ops", "other-app", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.runAs(userCert(i, tt.ca, tt.principals), tt.app, nil, "echo opened")
			if r.Code != tt.code {
				t.Fatalf("%s with a certificate for %q: exit %d, want %d: %+v", tt.app, tt.principals, r.Code, tt.code, r)
			}
			switch tt.code {
			case 0:
				if r.Stdout != "opened\n" {
					t.Fatalf("stdout %q", r.Stdout)
				}
			case 240:
				if r.Stdout != "" || !strings.Contains(r.Stderr, `may not use app "`+tt.app+`"`) {
					t.Fatalf("not refused plainly: %+v", r)
				}
			case 255:
				if !strings.Contains(r.Stderr, "Permission denied") {
					t.Fatalf("not refused at authentication: %+v", r)
				}
			}
		})
	}
}
