package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// binary is the bridge built once for the whole run.
var binary string

// keysDir holds the client keys, copied from the test kit with the modes
// ssh wants.
var keysDir string

// agentDir holds the connection-mode agent built for this machine.
var agentDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bridge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "bridge")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build bridge:", err)
		return 1
	}
	// The connection-mode agent as the release image carries it, for
	// this machine's architecture (connmode_test.go passes --agent-dir).
	agentDir = filepath.Join(dir, "agents")
	buildAgent := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(agentDir, "linux-"+runtime.GOARCH), "../cmd/bridge-agent")
	buildAgent.Env = append(os.Environ(), "CGO_ENABLED=0")
	buildAgent.Stdout, buildAgent.Stderr = os.Stderr, os.Stderr
	if err := buildAgent.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agent:", err)
		return 1
	}
	defer testkit.StopSharedWeed()
	keysDir = filepath.Join(dir, "keys")
	if err := os.Mkdir(keysDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// need returns the path of a program the test needs, failing the test when
// it is missing.
func need(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is needed by this test and is not installed (.ci/run installs it)", program)
	}
	return p
}

var keyMu sync.Mutex

// clientKey returns the path of the fixed private ed25519 key called name
// (internal/testkit/testdata/keys), copied into keysDir on first use; its
// public half is name + ".pub".
func clientKey(t testing.TB, name string) string {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	return testkit.KeyFile(t, keysDir, name)
}

func publicKey(t testing.TB, key string) string {
	t.Helper()
	raw, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// Bridge is one running bridge process.
type Bridge struct {
	t              testing.TB
	Addr, Host     string
	Port           string
	DataDir        string
	AuthorizedKeys string
	KnownHosts     string
	Key            string // default client private key
	cmd            *exec.Cmd
	addressFile    string // where the bridge writes the address it listens on
	log            *syncBuffer
	exited         chan struct{} // closed once the bridge exited and its log is read to the end
	args           []string
	env            []string
	// launch, when set, makes the command that starts the bridge in place
	// of the built binary with args (the README's own commands, which may
	// compile first); its process group is signalled on Stop.
	launch func() *exec.Cmd
}

// Options change how a bridge is started.
type Options struct {
	Args []string // more flags
	Env  []string // more environment, "NAME=value"
	// AuthorizedKeys is the file's content; empty means the default
	// client key with no options.
	AuthorizedKeys string
	DataDir        string // reuse a data directory (restart tests)
}

// StartBridge starts the built bridge on a free loopback port with the
// embedded platform and waits until it has written the address it listens
// on to its --listen-address-file (set through the environment).
func StartBridge(t testing.TB, opts Options) *Bridge {
	t.Helper()
	b := newBridge(t, opts)
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// newBridge is StartBridge's set-up without the start: the data dir, the
// authorized_keys file and the arguments.
func newBridge(t testing.TB, opts Options) *Bridge {
	t.Helper()
	b := &Bridge{t: t, Key: clientKey(t, "default")}
	dir := t.TempDir()
	b.DataDir = opts.DataDir
	if b.DataDir == "" {
		b.DataDir = filepath.Join(dir, "data")
	}
	b.AuthorizedKeys = filepath.Join(dir, "authorized_keys")
	content := opts.AuthorizedKeys
	if content == "" {
		content = publicKey(t, b.Key) + "\n"
	}
	if err := os.WriteFile(b.AuthorizedKeys, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	b.KnownHosts = filepath.Join(dir, "known_hosts")
	b.args = append([]string{
		"--listen", "127.0.0.1:0",
		"--data-dir", b.DataDir,
		"--authorized-keys", b.AuthorizedKeys,
		"--log-level", "debug",
	}, opts.Args...)
	b.env = opts.Env
	return b
}

func (b *Bridge) start() {
	t := b.t
	t.Helper()
	cmd := exec.Command(binary, b.args...)
	cmd.Env = append(os.Environ(), b.env...)
	within := 30 * time.Second
	if b.launch != nil {
		cmd, within = b.launch(), 5*time.Minute
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.run(cmd, within)
}

// run starts cmd, a bridge, with BRIDGE_LISTEN_ADDRESS_FILE added to its
// environment, and waits until the bridge wrote its address there (or
// exited, or within passed), failing the test if it did not. Its log
// collects in b.log.
func (b *Bridge) run(cmd *exec.Cmd, within time.Duration) {
	b.t.Helper()
	if err := b.tryRun(cmd, within); err != nil {
		b.t.Fatalf("bridge: %v:\n%s", err, b.log.String())
	}
}

// tryRun is run that returns why the bridge did not start instead of
// failing the test.
func (b *Bridge) tryRun(cmd *exec.Cmd, within time.Duration) error {
	t := b.t
	t.Helper()
	if b.addressFile == "" {
		b.addressFile = filepath.Join(t.TempDir(), "listen-address")
	}
	// A restart must not find the last run's address.
	if err := os.Remove(b.addressFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "BRIDGE_LISTEN_ADDRESS_FILE="+b.addressFile)
	b.log = &syncBuffer{}
	// A pipe of our own rather than StderrPipe, whose Wait closes it as soon
	// as the process exits: the log is read to its end before exited closes.
	stderr, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		stderr.Close()
		t.Fatal(err)
	}
	b.cmd = cmd
	b.exited = make(chan struct{})
	logRead := make(chan struct{})
	go func() {
		defer close(logRead)
		defer stderr.Close()
		io.Copy(b.log, stderr)
	}()
	go func() {
		cmd.Wait()
		// Bounded: a child that kept the bridge's stderr would hold it open.
		select {
		case <-logRead:
		case <-time.After(5 * time.Second):
		}
		close(b.exited)
	}()
	b.Addr, err = testkit.WaitAddressFile(b.addressFile, b.exited, within)
	if err != nil {
		return err
	}
	b.Host, b.Port, _ = strings.Cut(b.Addr, ":")
	b.writeKnownHosts()
	return nil
}

// writeKnownHosts pins the bridge's host key, so that the clients check it
// as they would in real use.
func (b *Bridge) writeKnownHosts() {
	t := b.t
	keyFile := filepath.Join(b.DataDir, "ssh_host_ed25519_key")
	for i, a := range b.args {
		if a == "--host-key" && i+1 < len(b.args) {
			keyFile = b.args[i+1]
		}
	}
	out, err := exec.Command(need(t, "ssh-keygen"), "-y", "-f", keyFile).Output()
	if err != nil {
		t.Fatalf("read host key: %v", err)
	}
	line := fmt.Sprintf("[%s]:%s %s\n", b.Host, b.Port, strings.TrimSpace(string(out)))
	if err := os.WriteFile(b.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the bridge with SIGTERM, and SIGKILL if it does not go.
func (b *Bridge) Stop() {
	if b.cmd == nil {
		return
	}
	if b.launch != nil {
		// `go run` and a shell do not pass SIGTERM on to the bridge.
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	} else {
		b.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-b.exited:
	case <-time.After(15 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		b.cmd.Process.Kill() // started without a process group of its own
		<-b.exited
	}
	b.cmd = nil
	if b.t.Failed() {
		b.t.Logf("bridge log:\n%s", b.log.String())
	}
}

// Restart stops the bridge and starts it again on the same data directory.
func (b *Bridge) Restart() {
	b.Stop()
	b.args = replaceListen(b.args, b.Addr)
	b.start()
}

func replaceListen(args []string, addr string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "--listen" && i+1 < len(out) {
			out[i+1] = addr
		}
	}
	return out
}

// Log returns what the bridge logged so far.
func (b *Bridge) Log() string { return b.log.String() }

// SSHArgs are the options every OpenSSH client invocation gets: no user
// config, the test key only, the pinned host key, no prompts.
// (ssh, scp and sftp all take them.)
func (b *Bridge) SSHArgs(key string) []string {
	if key == "" {
		key = b.Key
	}
	return []string{
		"-F", "/dev/null",
		"-i", key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + b.KnownHosts,
		"-o", "ConnectTimeout=20",
	}
}

// SSH builds an ssh command for app running command (none: a shell).
func (b *Bridge) SSH(ctx context.Context, app string, extra []string, command ...string) *exec.Cmd {
	args := append(b.SSHArgs(""), "-p", b.Port)
	// ssh takes the first value of an option: extra may set LogLevel.
	args = append(args, extra...)
	args = append(args, "-o", "LogLevel=ERROR", app+"@"+b.Host)
	args = append(args, command...)
	return exec.CommandContext(ctx, need(b.t, "ssh"), args...)
}

// Result is what a finished client command gave.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs command in app through ssh with stdin and returns its output
// and exit code.
func (b *Bridge) Run(app string, stdin io.Reader, command ...string) Result {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := b.SSH(ctx, app, nil, command...)
	return runCmd(b.t, cmd, stdin)
}

func runCmd(t testing.TB, cmd *exec.Cmd, stdin io.Reader) Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		// No t.Fatal here: Run is called from goroutines too.
		ee, ok := err.(*exec.ExitError)
		if !ok {
			stderr.WriteString(fmt.Sprintf("\n[test harness: %s: %v]", cmd.Path, err))
			code = -1
		} else {
			code = ee.ExitCode()
		}
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
}

// syncBuffer is the test kit's buffer, safe for concurrent writers and
// readers.
type syncBuffer = testkit.Buffer

// LogHas waits until the log contains s. The log reaches the test through a
// pipe, so a line the bridge wrote before answering the client may still be
// on its way when the client is done.
func (b *Bridge) LogHas(s string) bool {
	_, ok := b.LogWhen(func(log string) bool { return strings.Contains(log, s) })
	return ok
}

// LogWhen waits up to 5 s until ok holds for the log, and returns the log.
func (b *Bridge) LogWhen(ok func(log string) bool) (string, bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := b.Log()
		if ok(log) {
			return log, true
		}
		if time.Now().After(deadline) {
			return log, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
