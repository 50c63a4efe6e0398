package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// nobody is the unprivileged user the bridge runs as in these tests, as
// the container image's user would.
const nobody = 65534

// visibleDir makes a directory outside /tmp: a one-off has a /tmp of its
// own, so the bridge's files must live elsewhere for a one-off to name
// them, as ~/.local/state or /data do in real use.
func visibleDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "bridge-e2e-isolation-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nobodyBinary copies the bridge where nobody may run it, in a directory
// nobody cannot write.
func nobodyBinary(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(bin, "bridge")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// nobodyHome makes a home directory owned by nobody in root, with a keys
// directory holding authorized_keys (the default client key) in it.
func nobodyHome(t *testing.T, root string) (home, authorizedKeys string) {
	t.Helper()
	home = filepath.Join(root, "home")
	keys := filepath.Join(home, "keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	authorizedKeys = filepath.Join(keys, "authorized_keys")
	if err := os.WriteFile(authorizedKeys, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, keys, authorizedKeys} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	return home, authorizedKeys
}

// asNobody is the command that runs the bridge at path as nobody with
// args; without user namespaces when noUserNS is set: the bridge is then
// started in a user namespace of its own whose limit of user namespaces
// is 0, which nobody in it can raise, as on a host or in a container that
// allows none.
func asNobody(path string, noUserNS bool, env []string, args ...string) *exec.Cmd {
	setpriv := append([]string{"setpriv", fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody), "--clear-groups", path}, args...)
	if !noUserNS {
		cmd := exec.Command(setpriv[0], setpriv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	// The limit is written only where the user namespace is this one's:
	// the host's own limit is never touched.
	script := `awk '$3 == 4294967295 { exit 1 }' /proc/self/uid_map && echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, setpriv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: nobody + 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: nobody + 1}},
		GidMappingsEnableSetgroups: true,
	}
	return cmd
}

// attackBridgeFiles runs, in a one-off of b, what a session that wants the
// bridge would try: read the host key and the staging area, add a key to
// authorized_keys, put a directory of its own in place of the one holding
// it, of the one above or of the data dir, undo the masks, reach the
// bridge's process. None of it may work.
func attackBridgeFiles(t *testing.T, b *Bridge, authorizedKeys string, bridgePID int) {
	t.Helper()
	hostKey, err := os.ReadFile(filepath.Join(b.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.Split(string(hostKey), "\n")[1] // first line of the key's body
	// A file pending for another app waits in the staging area.
	pending := filepath.Join(t.TempDir(), "pending.txt")
	if err := os.WriteFile(pending, []byte("staged-secret-3f1c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scp := exec.Command(need(t, "scp"), append(b.SSHArgs(""), "-P", b.Port, pending, "other-app@"+b.Host+":")...)
	if out, err := scp.CombinedOutput(); err != nil {
		t.Fatalf("scp: %v\n%s", err, out)
	}
	before, err := os.ReadFile(authorizedKeys)
	if err != nil {
		t.Fatal(err)
	}
	attacker := publicKey(t, clientKey(t, "attacker"))
	keys, data := filepath.Dir(authorizedKeys), b.DataDir
	script := strings.Join([]string{
		"cat " + data + "/ssh_host_ed25519_key",
		"grep -r staged-secret " + data,
		"echo '" + attacker + "' >> " + authorizedKeys,
		"mv " + keys + " " + keys + ".old && mkdir " + keys + " && echo '" + attacker + "' > " + authorizedKeys,
		"mv " + data + " " + data + ".old",
		"mv " + filepath.Dir(keys) + " " + filepath.Dir(keys) + ".old",
		"umount " + data + "; umount " + authorizedKeys,
		"unshare -U -r -m sh -c 'umount " + data + "; cat " + data + "/ssh_host_ed25519_key'",
		fmt.Sprintf("cat /proc/%d/environ && echo bridge-process-visible", bridgePID),
		"echo attack-over",
	}, "\n")
	r := b.Run("demo-app", nil, script)
	if r.Code != 0 || !strings.Contains(r.Stdout, "attack-over") {
		t.Fatalf("the one-off did not run: %+v", r)
	}
	for _, leak := range []string{secret, "staged-secret-3f1c", "bridge-process-visible"} {
		if strings.Contains(r.Stdout, leak) {
			t.Errorf("the one-off got %q:\n%s", leak, r.Stdout)
		}
	}
	after, err := os.ReadFile(authorizedKeys)
	if err != nil {
		t.Fatalf("authorized_keys: %v (the one-off moved it away)", err)
	}
	if string(after) != string(before) {
		t.Errorf("the one-off changed authorized_keys:\n%s", after)
	}
	for _, moved := range []string{keys + ".old", data + ".old", filepath.Dir(keys) + ".old"} {
		if _, err := os.Stat(moved); err == nil {
			t.Errorf("the one-off renamed %s", strings.TrimSuffix(moved, ".old"))
		}
	}
	if t.Failed() {
		t.Logf("one-off output:\n%s", r.Stdout)
	}
}

// As an unprivileged user with user namespaces, one-offs run as that same
// user: they can reach nothing of the bridge's all the same.
func TestOneOffsCannotReachTheBridgeAsNonRoot(t *testing.T) {
	need(t, "setpriv")
	root := visibleDir(t)
	path := nobodyBinary(t, root)
	home, authorizedKeys := nobodyHome(t, root)
	data := filepath.Join(home, "data")
	b := &Bridge{t: t, Key: clientKey(t, "default"), DataDir: data, AuthorizedKeys: authorizedKeys,
		KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), addressFile: filepath.Join(home, "listen-address")}
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", data, "--authorized-keys", authorizedKeys, "--log-level", "debug"}
	b.launch = func() *exec.Cmd { return asNobody(path, false, []string{"HOME=" + home}, args...) }
	b.start()
	t.Cleanup(b.Stop)
	attackBridgeFiles(t, b, authorizedKeys, b.cmd.Process.Pid)
	if listensIn(t, b) {
		t.Error("a one-off shares the host's network: it sees the bridge's socket")
	}
}

// As root, one-offs run as nobody: key files that nobody may read by their
// mode (an authorized_keys of mode 0644, as usual) are hidden too.
func TestOneOffsCannotReachTheBridgeAsRoot(t *testing.T) {
	root := visibleDir(t)
	home, authorizedKeys := nobodyHome(t, root)
	// Owned by root, in a directory that only root may write.
	for _, p := range []string{home, filepath.Dir(authorizedKeys), authorizedKeys} {
		if err := os.Chown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(home, "data")
	b := &Bridge{t: t, Key: clientKey(t, "default"), DataDir: data, AuthorizedKeys: authorizedKeys,
		KnownHosts: filepath.Join(t.TempDir(), "known_hosts"),
		args:       []string{"--listen", "127.0.0.1:0", "--data-dir", data, "--authorized-keys", authorizedKeys, "--log-level", "debug"}}
	b.start()
	t.Cleanup(b.Stop)
	r := b.Run("demo-app", nil, "cat "+authorizedKeys+"; echo read-over")
	if r.Code != 0 || !strings.Contains(r.Stdout, "read-over") {
		t.Fatalf("the one-off did not run: %+v", r)
	}
	if strings.Contains(r.Stdout, "ssh-ed25519") {
		t.Errorf("a one-off read authorized_keys:\n%s", r.Stdout)
	}
	attackBridgeFiles(t, b, authorizedKeys, b.cmd.Process.Pid)
}

// startCommand starts the bridge as cmd, which keeps its own process
// attributes (the harness's start sets its own), and waits until it
// listens; its address file is beside its data dir, where the user it
// runs as may write. The bridge is stopped at the end of the test.
func startCommand(t *testing.T, b *Bridge, cmd *exec.Cmd) {
	t.Helper()
	b.addressFile = filepath.Join(filepath.Dir(b.DataDir), "listen-address")
	t.Cleanup(b.Stop)
	b.run(cmd, 30*time.Second)
}

// startOrExit starts cmd, with its address file at addressFile, and
// returns once it listens (true) or exits (false), with what it wrote on
// stderr so far.
func startOrExit(t *testing.T, cmd *exec.Cmd, addressFile string) (bool, string) {
	t.Helper()
	var log syncBuffer
	cmd.Stderr = &log
	cmd.Env = append(cmd.Env, "BRIDGE_LISTEN_ADDRESS_FILE="+addressFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	_, err := testkit.WaitAddressFile(addressFile, exited, time.Minute)
	if err == nil {
		return true, log.String()
	}
	select {
	case <-exited:
	default:
		cmd.Process.Kill()
		<-exited
		t.Fatalf("bridge: %v", err)
	}
	return false, log.String()
}

// Where one-offs cannot be isolated (not root, no user namespaces) and
// key files are named, the bridge does not start, and says why in one
// line: what is at risk and the fixes. Nothing is left in the data dir.
func TestNoIsolationRefusesToStart(t *testing.T) {
	need(t, "setpriv")
	root := visibleDir(t)
	path := nobodyBinary(t, root)
	home, authorizedKeys := nobodyHome(t, root)
	data := filepath.Join(home, "data")
	cmd := asNobody(path, true, []string{"HOME=" + home},
		"--listen", "127.0.0.1:0", "--data-dir", data, "--authorized-keys", authorizedKeys)
	listening, log := startOrExit(t, cmd, filepath.Join(home, "listen-address"))
	if listening {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the bridge started with one-offs that can reach its files:\n%s", log)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.HasPrefix(l, "bridge: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one line saying why, got:\n%s", log)
	}
	for _, want := range []string{"one-offs cannot be isolated", "host key", "staging area", data, "key files",
		"run the bridge as root", "--api-url"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the refusal does not say %q:\n%s", want, lines[0])
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("a bridge that refused to start left its data dir behind")
	}
}

// The developer's own set-up, with no key file named: the only keys
// accepted are the user's own, who can reach the bridge's files anyway,
// so the bridge starts without isolation and says so.
func TestNoIsolationWithOwnKeysStarts(t *testing.T) {
	need(t, "setpriv")
	root := visibleDir(t)
	path := nobodyBinary(t, root)
	home, _ := nobodyHome(t, root)
	ssh := filepath.Join(home, ".ssh")
	if err := os.Mkdir(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(ssh, "id_ed25519.pub")
	if err := os.WriteFile(pub, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ssh, pub} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(home, "data")
	b := &Bridge{t: t, Key: clientKey(t, "default"), DataDir: data, KnownHosts: filepath.Join(t.TempDir(), "known_hosts")}
	cmd := asNobody(path, true, []string{"HOME=" + home, "XDG_STATE_HOME="}, "--listen", "127.0.0.1:0", "--data-dir", data)
	startCommand(t, b, cmd)
	if !b.LogHas(`msg="one-offs are not isolated: they run as this user`) || !b.LogHas("only this user's own keys are accepted") {
		t.Fatalf("no log line says that one-offs are not isolated, and why that is allowed:\n%s", b.Log())
	}
	if r := b.Run("demo-app", nil, "echo ran"); r.Code != 0 || r.Stdout != "ran\n" {
		t.Fatalf("session: %+v", r)
	}
}
