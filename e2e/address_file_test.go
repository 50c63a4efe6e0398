package e2e

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// startWithAddressFile starts the built binary with args, which name file
// as --listen-address-file, and returns the address it wrote there. The
// process is stopped at the end of the test.
func startWithAddressFile(t *testing.T, file string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	addr, err := testkit.WaitAddressFile(file, exited, 30*time.Second)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, log.String())
	}
	return addr
}

// The address file holds the bound address, port 0 resolved, as one line,
// and nothing else is left beside it: the bridge's answers with its SSH
// banner, bridge platform's with its API.
func TestListenAddressFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bridge-address")
	keys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(keys, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startWithAddressFile(t, file, nil, "--listen", "127.0.0.1:0", "--listen-address-file", file,
		"--data-dir", filepath.Join(dir, "data"), "--authorized-keys", keys)
	if host, port, _ := net.SplitHostPort(addr); host != "127.0.0.1" || port == "0" {
		t.Errorf("bridge address file holds %q, want 127.0.0.1 and the port bound", addr)
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial the address from the file: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("at the address from the file: %q, %v; want an SSH banner", banner, err)
	}

	pfile := filepath.Join(dir, "platform-address")
	paddr := startWithAddressFile(t, pfile, []string{"ONEOFF_API_TOKEN=" + canaryToken, "PLATFORM_STATE_DIR=" + filepath.Join(dir, "state")},
		"platform", "--listen", "127.0.0.1:0", "--listen-address-file", pfile)
	req, _ := http.NewRequest("POST", "http://"+paddr+"/v1/tokens/exchange", strings.NewReader("{}"))
	req.SetBasicAuth("", canaryToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the platform at the address from the file: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("token exchange at the address from the file: %d", res.StatusCode)
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "authorized_keys bridge-address data platform-address state" {
		t.Errorf("the directory holds %s; want the address files and no temporary file", got)
	}
}

// An address file that cannot be written stops the process, with a line
// naming the setting.
func TestListenAddressFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "no-such-dir", "address")
	keys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(keys, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env, args []string
		want      string
	}{
		{[]string{"BRIDGE_LISTEN_ADDRESS_FILE=" + file}, []string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--authorized-keys", keys}, "BRIDGE_LISTEN_ADDRESS_FILE"},
		{[]string{"ONEOFF_API_TOKEN=" + canaryToken, "PLATFORM_STATE_DIR=" + filepath.Join(dir, "state")}, []string{"platform", "--listen", "127.0.0.1:0", "--listen-address-file", file}, "--listen-address-file " + file},
	} {
		// Bounded: a binary that ignored the setting would serve on.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, binary, tc.args...)
		cmd.Env = append(os.Environ(), tc.env...)
		r := runCmd(t, cmd, nil)
		cancel()
		if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%v %v: exit %d, want 1 and a line naming %q:\n%s", tc.env, tc.args, r.Code, tc.want, r.Stderr)
		}
	}
}
