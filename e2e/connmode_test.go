package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Connection mode (README: Connection mode) against the built bridge, its
// embedded platform and the agent built as the release image builds it,
// driven by the real tools.

// startConnBridge starts a bridge serving connection mode with the built
// agent.
func startConnBridge(t *testing.T, opts Options) *Bridge {
	t.Helper()
	opts.Args = append([]string{"--agent-dir", agentDir}, opts.Args...)
	return StartBridge(t, opts)
}

// bridgeTarget is the bridge as a tool scenario's target, for user.
func bridgeTarget(t *testing.T, b *Bridge, user string) sshTarget {
	t.Helper()
	port, err := strconv.Atoi(b.Port)
	if err != nil {
		t.Fatal(err)
	}
	return sshTarget{User: user, Host: b.Host, Port: port,
		SSHArgs: append(b.SSHArgs(""), "-o", "LogLevel=ERROR"), Dir: "/tmp"}
}

// TestConnectionModeTools runs every tool scenario (connmode_tools_test.go:
// VS Code's SOCKS and socket modes, a JetBrains-like flow, ssh -W, Ansible,
// rsync, git, sshfs, ControlMaster sessions, separate stderr, exit codes
// and signals, a pty, bytes) through the bridge in connection mode.
func TestConnectionModeTools(t *testing.T) {
	b := startConnBridge(t, Options{})
	tg := bridgeTarget(t, b, "demo-app+conn")
	for _, sc := range toolScenarios {
		t.Run(sc.name, func(t *testing.T) { sc.check(t, tg) })
	}
}

// TestConnectionModeWithoutPipeMode runs every tool scenario with the
// platform's pipe mode withheld (a terminal-only PaaS): the agent makes its
// terminal raw, and every byte value passes (the bytes scenario: all 256
// values and 5 MiB of random bytes each way).
func TestConnectionModeWithoutPipeMode(t *testing.T) {
	b := startConnBridge(t, Options{Args: []string{"--no-pipe-mode"}})
	tg := bridgeTarget(t, b, "demo-app+conn")
	for _, sc := range toolScenarios {
		t.Run(sc.name, func(t *testing.T) { sc.check(t, tg) })
	}
	if !b.LogHas("pipe_mode=false") {
		t.Fatalf("the one-off was not on a terminal:\n%s", b.Log())
	}
}

// TestConnectionModePolicy: forwarding beyond the container's loopback
// needs permitopen, -R needs permitlisten when the key has it, restrict
// refuses everything; each refusal is logged with its target.
func TestConnectionModePolicy(t *testing.T) {
	key := clientKey(t, "default")
	pub := publicKey(t, key)
	other := clientKey(t, "other-user")
	keys := pub + "\n" + `restrict ` + publicKey(t, other) + "\n"
	b := startConnBridge(t, Options{AuthorizedKeys: keys})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// -W to a host outside the container.
	// ssh reports the server's refusal at LogLevel INFO.
	r := runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "LogLevel=INFO", "-W", "192.0.2.1:80"}), nil)
	if r.Code == 0 || !strings.Contains(r.Stderr, "administratively prohibited") || !strings.Contains(r.Stderr, "permitopen") {
		t.Fatalf("-W 192.0.2.1:80: code %d, stderr %q; want a refusal naming permitopen", r.Code, r.Stderr)
	}
	if !b.LogHas(`refused forwarding`) || !b.LogHas("target=192.0.2.1:80") {
		t.Fatalf("refusal not logged with its target:\n%s", b.Log())
	}

	// restrict: even the container's loopback is refused.
	args := append(b.SSHArgs(other), "-p", b.Port, "-o", "LogLevel=INFO", "-W", "127.0.0.1:22", "demo-app+conn@"+b.Host)
	r = runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
	if r.Code == 0 || !strings.Contains(r.Stderr, "administratively prohibited") {
		t.Fatalf("restrict, -W 127.0.0.1:22: code %d, stderr %q; want a refusal", r.Code, r.Stderr)
	}
	// -R with restrict: refused (ExitOnForwardFailure makes ssh say so).
	args = append(b.SSHArgs(other), "-p", b.Port, "-o", "LogLevel=ERROR", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9", "demo-app+conn@"+b.Host, "true")
	r = runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote port forwarding failed") {
		t.Fatalf("restrict, -R: code %d, stderr %q; want the forward refused", r.Code, r.Stderr)
	}
}

// TestConnectionModePermitOpen: a permitopen option lets a forward go
// beyond the container's loopback (here to a documentation address the
// one-off cannot reach: the one-off's connect fails, the policy let it
// through).
func TestConnectionModePermitOpen(t *testing.T) {
	key := clientKey(t, "default")
	b := startConnBridge(t, Options{AuthorizedKeys: `permitopen="192.0.2.1:80" ` + publicKey(t, key) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "LogLevel=INFO", "-W", "192.0.2.1:80"}), nil)
	if r.Code == 0 || strings.Contains(r.Stderr, "administratively prohibited") || !strings.Contains(r.Stderr, "open failed") {
		t.Fatalf("-W 192.0.2.1:80 with permitopen: code %d, stderr %q; want the one-off's connect to fail, not a refusal", r.Code, r.Stderr)
	}
	if !b.LogHas("forward opened") && !b.LogHas("forward failed in the one-off") {
		t.Fatalf("the forward never reached the one-off:\n%s", b.Log())
	}
	r = runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "LogLevel=INFO", "-W", "192.0.2.1:81"}), nil)
	if !strings.Contains(r.Stderr, "administratively prohibited") {
		t.Fatalf("-W 192.0.2.1:81, not in permitopen: code %d, stderr %q; want a refusal", r.Code, r.Stderr)
	}
}

// TestConnectionModeRemoteForwardPermitListen: with permitlisten, only
// the listed port may be listened on.
func TestConnectionModeRemoteForwardPermitListen(t *testing.T) {
	key := clientKey(t, "default")
	b := startConnBridge(t, Options{AuthorizedKeys: `permitlisten="localhost:8022" ` + publicKey(t, key) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "ExitOnForwardFailure=yes", "-R", "localhost:8023:127.0.0.1:9"}, "true"), nil)
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote port forwarding failed") {
		t.Fatalf("-R 8023 outside permitlisten: code %d, stderr %q; want the forward refused", r.Code, r.Stderr)
	}
	r = runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "ExitOnForwardFailure=yes", "-R", "localhost:8022:127.0.0.1:9"}, "true"), nil)
	if r.Code != 0 {
		t.Fatalf("-R 8022 in permitlisten: code %d, stderr %q", r.Code, r.Stderr)
	}
}

var oneOffCreatedRE = regexp.MustCompile(`msg="one-off created"`)

// TestConnectionModeOneOneOffPerConnection: one one-off serves every
// session of a connection, and it is gone within 2 s of the connection's
// end; with a linger the next connection takes it back.
func TestConnectionModeOneOneOffPerConnection(t *testing.T) {
	b := startConnBridge(t, Options{})
	tg := bridgeTarget(t, b, "demo-app+conn")
	mux := tg.mux(t)
	for i := range 3 {
		tg.mustRun(t, mux, nil, fmt.Sprintf("echo %d > /tmp/session-%d", i, i))
	}
	if r := tg.run(t, mux, nil, "cat /tmp/session-0 /tmp/session-1 /tmp/session-2"); r.Stdout != "0\n1\n2\n" {
		t.Fatalf("three sessions of one connection: %q", r.Stdout)
	}
	if n := len(oneOffCreatedRE.FindAllString(b.Log(), -1)); n != 1 {
		t.Fatalf("%d one-offs for one connection, want 1:\n%s", n, b.Log())
	}
	tg.run(t, append([]string{"-O", "exit"}, mux...), nil)
	ended := time.Now()
	if _, ok := b.LogWhen(func(log string) bool { return strings.Contains(log, "connection one-off ended") }); !ok {
		t.Fatalf("the one-off did not end with its connection:\n%s", b.Log())
	}
	if d := time.Since(ended); d > 2*time.Second {
		t.Fatalf("the one-off ended %v after its connection, want within 2 s", d)
	}
}

func TestConnectionModeLinger(t *testing.T) {
	b := startConnBridge(t, Options{Args: []string{"--connection-linger", "1m"}})
	r := b.Run("demo-app+conn", nil, "echo kept > /tmp/linger")
	if r.Code != 0 {
		t.Fatalf("first connection: %+v", r)
	}
	if _, ok := b.LogWhen(func(log string) bool { return strings.Contains(log, "the one-off lingers") }); !ok {
		t.Fatalf("no linger:\n%s", b.Log())
	}
	// A file staged meanwhile (the plain app name: the staging area)
	// reaches the lingering one-off too.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := t.TempDir() + "/late.txt"
	if err := os.WriteFile(src, []byte("staged while lingering\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(b.SSHArgs(""), "-P", b.Port, "-o", "LogLevel=ERROR", src, "demo-app@"+b.Host+":")
	if r := runCmd(t, exec.CommandContext(ctx, need(t, "scp"), args...), nil); r.Code != 0 {
		t.Fatalf("scp: %+v", r)
	}
	// Each one-off has a /tmp of its own: the file proves it is the same.
	r = b.Run("demo-app+conn", nil, "cat /tmp/linger /tmp/uploads/late.txt")
	if r.Code != 0 || r.Stdout != "kept\nstaged while lingering\n" {
		t.Fatalf("second connection: %+v; want the lingering one-off's file and the file staged meanwhile", r)
	}
	if n := len(oneOffCreatedRE.FindAllString(b.Log(), -1)); n != 1 {
		t.Fatalf("%d one-offs for two connections within the linger, want 1", n)
	}
}

// TestConnectionModeStagedFiles: files staged with scp before are in
// /tmp/uploads of the connection's one-off, and an scp first on a
// connection whose key asks for connection mode still stages.
func TestConnectionModeStagedFiles(t *testing.T) {
	key := clientKey(t, "default")
	b := startConnBridge(t, Options{AuthorizedKeys: `session-mode="connection" ` + publicKey(t, key) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := t.TempDir() + "/staged.txt"
	if err := os.WriteFile(src, []byte("staged before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(b.SSHArgs(""), "-P", b.Port, "-o", "LogLevel=ERROR", src, "demo-app@"+b.Host+":")
	if r := runCmd(t, exec.CommandContext(ctx, need(t, "scp"), args...), nil); r.Code != 0 {
		t.Fatalf("scp: %+v", r)
	}
	r := b.Run("demo-app", nil, "cat /tmp/uploads/staged.txt; ls -A /tmp/uploads")
	if r.Code != 0 || r.Stdout != "staged before\nstaged.txt\n" {
		t.Fatalf("in connection mode: %+v; want the staged file alone in /tmp/uploads", r)
	}
	if !b.LogHas("chosen_by=\"key option\"") {
		t.Fatalf("the key's session-mode was not used:\n%s", b.Log())
	}
}

// TestConnectionModeShellRunsDefaultCommand: a shell runs
// --default-command as in per-session mode, with SSH_CONNECTION, SSH_CLIENT
// and SSH_TTY set as sshd sets them.
func TestConnectionModeShellRunsDefaultCommand(t *testing.T) {
	b := startConnBridge(t, Options{Args: []string{"--default-command", `echo "default $SSH_CLIENT tty=${SSH_TTY:+yes}"`}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-tt"}), strings.NewReader(""))
	want := "default 127.0.0.1 "
	if r.Code != 0 || !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, " "+b.Port+" tty=yes") {
		t.Fatalf("ssh -tt: code %d, stdout %q; want the default command's line with SSH_CLIENT (port %s) and SSH_TTY", r.Code, r.Stdout, b.Port)
	}
}
