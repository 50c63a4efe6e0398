package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHD is OpenSSH's sshd started on a free loopback port, the baseline the
// benchmarks compare the bridge with.
type SSHD struct {
	Host, Port string
	User       string // the user running the tests (root)
	KnownHosts string
	Key        string // client private key it accepts
	Pid        int    // the listening sshd, parent of the sessions' processes
	ssh        string // the OpenSSH client
}

// sshdPath finds sshd, which Debian installs outside a user's PATH.
func sshdPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("sshd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("OpenSSH's sshd is needed as the benchmarks' baseline and is not installed (.ci/run installs openssh-server)")
	return ""
}

// StartSSHD runs sshd in the foreground with its own host key and a
// configuration that accepts only key as the current user (with extra
// configuration lines, if any, after its own), and waits until it says it
// is listening.
func StartSSHD(t testing.TB, key string, extra ...string) *SSHD {
	t.Helper()
	sshd := sshdPath(t)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(need(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen host key: %v\n%s", err, out)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(publicKey(t, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd privilege separation directory: %v", err)
	}
	// A port picked by the kernel and released at once: sshd cannot take
	// port 0 and report what it got. Another process taking it in between
	// makes sshd fail to listen, which is reported below.
	port := freePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"Port " + port,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"StrictModes no",
		"UsePAM no",
		"PidFile none",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"Subsystem sftp internal-sftp",
		// Bash sources ~/.bashrc for a command run by sshd when SHLVL says
		// it is the first shell; a developer's rc (pyenv, nvm) then costs
		// seconds per command. The bridge's one-offs run /bin/sh -c
		// without rc files: compare with that.
		"SetEnv SHLVL=1",
	}, "\n") + "\n" + strings.Join(append(extra, ""), "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	log := &syncBuffer{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "Server listening on") {
				close(ready)
				signalled = true
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// The whole group: sshd's per-connection children too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("sshd exited before listening:\n%s", log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("sshd did not listen within 20 s:\n%s", log.String())
	}
	d := &SSHD{Host: "127.0.0.1", Port: port, User: me.Username, Key: key, Pid: cmd.Process.Pid, ssh: need(t, "ssh")}
	d.KnownHosts = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[%s]:%s %s\n", d.Host, d.Port, publicKey(t, hostKey))
	if err := os.WriteFile(d.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// SSH builds an ssh command running command on sshd with the same client
// options the bridge's clients get.
func (d *SSHD) SSH(ctx context.Context, extra []string, command ...string) *exec.Cmd {
	args := []string{
		"-F", "/dev/null",
		"-i", d.Key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + d.KnownHosts,
		"-o", "ConnectTimeout=20",
		"-p", d.Port,
	}
	args = append(args, extra...)
	args = append(args, "-o", "LogLevel=ERROR", d.User+"@"+d.Host)
	args = append(args, command...)
	return exec.CommandContext(ctx, d.ssh, args...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
