package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Dropbear's dbclient offers neither AES-GCM nor an encrypt-then-MAC MAC;
// it connects through the one encrypt-and-MAC MAC the bridge adds for it,
// checks the pinned host key and gets the command's output and exit code.
func TestDropbearClient(t *testing.T) {
	b := StartBridge(t, Options{})
	dbclient := need(t, "dbclient")
	key := filepath.Join(t.TempDir(), "key.db")
	if out, err := exec.Command(need(t, "dropbearconvert"), "openssh", "dropbear", b.Key, key).CombinedOutput(); err != nil {
		t.Fatalf("dropbearconvert: %v\n%s", err, out)
	}
	// dbclient reads $HOME/.ssh/known_hosts, "host keytype base64" with no
	// port and no comment.
	home := t.TempDir()
	hostKey, err := exec.Command(need(t, "ssh-keygen"), "-y", "-f", filepath.Join(b.DataDir, "ssh_host_ed25519_key")).Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(hostKey))
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := b.Host + " " + fields[0] + " " + fields[1] + "\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(command string) Result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, dbclient, "-p", b.Port, "-i", key, "demo-app@"+b.Host, command)
		cmd.Env = append(os.Environ(), "HOME="+home)
		return runCmd(t, cmd, nil)
	}
	if r := run("true"); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("dbclient true: %+v", r)
	}
	if r := run("echo from-dropbear; exit 7"); r.Code != 7 || r.Stdout != "from-dropbear\n" {
		t.Fatalf("dbclient echo; exit 7: %+v", r)
	}
}

// OpenSSH's client, which lists AES-CTR before AES-GCM, gets aes128-gcm
// both ways: the bridge proposes AES-GCM alone to a client that offers it
// (bridge/kexinit.go). Asked for AES-CTR, it keeps hmac-sha2-256-etm: the
// MAC added for Dropbear comes after the ETM MACs in OpenSSH's own order.
func TestOpenSSHNegotiatesAESGCM(t *testing.T) {
	b := StartBridge(t, Options{})
	re := regexp.MustCompile(`kex: (client->server|server->client) cipher: (\S+) MAC: (\S+) compression`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-v"}, "aes128-gcm@openssh.com <implicit>"},
		{[]string{"-v", "-c", "aes128-ctr"}, "aes128-ctr hmac-sha2-256-etm@openssh.com"},
		{[]string{"-v", "-c", "aes256-ctr,aes256-gcm@openssh.com"}, "aes256-gcm@openssh.com <implicit>"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r := runCmd(t, b.SSH(ctx, "demo-app", tc.args, "true"), nil)
		cancel()
		if r.Code != 0 {
			t.Fatalf("ssh %v: %+v", tc.args, r)
		}
		got := map[string]string{}
		for _, m := range re.FindAllStringSubmatch(r.Stderr, -1) {
			got[m[1]] = m[2] + " " + m[3]
		}
		if got["client->server"] != tc.want || got["server->client"] != tc.want {
			t.Errorf("ssh %v negotiated %v, want %q both ways; ssh -v said:\n%s", tc.args, got, tc.want, r.Stderr)
		}
	}
}
