package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"sshbridge/agent"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// agentBinary is cmd/bridge-agent built once for the test run.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "agent-build-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "bridge-agent")
		cmd := exec.Command("go", "build", "-o", buildPath, "sshbridge/cmd/bridge-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/bridge-agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// hostKey is a fresh ed25519 host key: its OpenSSH PEM form, for
// BRIDGE_AGENT_HOST_KEY, and its public key, to pin.
func hostKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), signer.PublicKey()
}

// pipeConn is the SSH client's side of a child's stdin and stdout.
type pipeConn struct {
	io.Reader
	io.WriteCloser
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func (pipeConn) LocalAddr() net.Addr              { return pipeAddr{} }
func (pipeConn) RemoteAddr() net.Addr             { return pipeAddr{} }
func (pipeConn) SetDeadline(time.Time) error      { return nil }
func (pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (pipeConn) SetWriteDeadline(time.Time) error { return nil }

// clientOver runs the SSH client handshake over conn, pinning pub.
func clientOver(t *testing.T, conn net.Conn, pub ssh.PublicKey) *ssh.Client {
	t.Helper()
	c, chans, reqs, err := ssh.NewClientConn(conn, "agent", &ssh.ClientConfig{
		User:            "bridge",
		HostKeyCallback: ssh.FixedHostKey(pub),
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatalf("SSH handshake with the agent: %v", err)
	}
	return ssh.NewClient(c, chans, reqs)
}

// output runs command in a new session of c and returns its stdout.
func output(t *testing.T, c *ssh.Client, command string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	out, err := s.Output(command)
	if err != nil {
		t.Fatalf("%s: %v (stderr %q)", command, err, stderr.String())
	}
	return string(out)
}

// environ is the test's environment without any BRIDGE_AGENT_ variable,
// plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, agent.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestMainCheckPrintsOK(t *testing.T) {
	bin := agentBinary(t)
	for _, args := range [][]string{{"--check"}, {"agent", "--check"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || string(out) != "ok\n" {
			t.Errorf("bridge-agent %s: %q, %v; want \"ok\\n\", exit 0", strings.Join(args, " "), out, err)
		}
	}
}

func TestMainHelpSaysItRunsInsideOneOffs(t *testing.T) {
	out, err := exec.Command(agentBinary(t), "--help").Output()
	if err != nil || !strings.Contains(string(out), "inside\na one-off container") {
		t.Errorf("bridge-agent --help: %v\n%s", err, out)
	}
}

func TestMainRefusesAMissingOrBadHostKey(t *testing.T) {
	bin := agentBinary(t)
	for name, env := range map[string][]string{
		"missing": environ(),
		"bad":     environ(agent.HostKeyEnv + "=-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n"),
	} {
		cmd := exec.Command(bin, "agent")
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != agent.ExitError {
			t.Errorf("%s key: exit code %d (%v), want %d", name, code, err, agent.ExitError)
		}
		if stdout.Len() != 0 {
			t.Errorf("%s key: stdout %q, want nothing", name, stdout.String())
		}
		if lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "bridge-agent: ") || !strings.Contains(lines[0], agent.HostKeyEnv) {
			t.Errorf("%s key: stderr %q, want one line starting \"bridge-agent: \" naming %s", name, stderr.String(), agent.HostKeyEnv)
		}
		line, ok := agent.ParseLaunchFailure(stderr.Bytes())
		if !ok || line+"\n" != stderr.String() {
			t.Errorf("%s key: ParseLaunchFailure(%q) = %q, %v", name, stderr.String(), line, ok)
		}
	}
}

// TestMainServesOverPipes: the agent's commands get $SHELL and its
// environment without any BRIDGE_AGENT_ variable, its log goes to
// BRIDGE_AGENT_LOG and nothing to stderr, and it exits 0 when the client
// ends the connection.
func TestMainServesOverPipes(t *testing.T) {
	bin := agentBinary(t)
	key, pub := hostKey(t)
	logFile := filepath.Join(t.TempDir(), "agent.log")
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Fatal("dash: ", err)
	}
	dash, _ = filepath.EvalSymlinks(dash)
	cmd := exec.Command(bin, "agent")
	cmd.Env = environ(agent.HostKeyEnv+"="+key, agent.LogEnv+"="+logFile, agent.EnvPrefix+"OTHER=x", "SHELL="+dash, "AGENT_TEST=kept")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	c := clientOver(t, pipeConn{stdout, stdin}, pub)

	env := output(t, c, "env")
	if strings.Contains("\n"+env, "\n"+agent.EnvPrefix) {
		t.Errorf("a command's environment has a %s variable:\n%s", agent.EnvPrefix, env)
	}
	if !strings.Contains(env, "AGENT_TEST=kept\n") {
		t.Errorf("a command's environment lacks the agent's AGENT_TEST:\n%s", env)
	}
	if got := output(t, c, "readlink /proc/$$/exe"); got != dash+"\n" {
		t.Errorf("commands run in %q, want $SHELL %s", got, dash)
	}

	c.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("the agent's exit after the client closed: %v, want 0 (stderr %q)", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("the agent wrote to stderr: %q", stderr.String())
	}
	if log, err := os.ReadFile(logFile); err != nil || len(log) == 0 {
		t.Errorf("log file %s: %q, %v; want the agent's log", logFile, log, err)
	}
}

// TestMainOnATerminal: with a terminal for stdin, stdout and stderr, as a
// PaaS without pipe mode gives a one-off, the agent makes it raw before
// its banner, so the handshake and every byte value pass, and nothing
// echoes.
func TestMainOnATerminal(t *testing.T) {
	bin := agentBinary(t)
	key, pub := hostKey(t)
	blocking, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	// A non-blocking copy of the master, in Go's poller, so that closing
	// it ends a read in progress (the hangup the agent must see).
	fd, err := syscall.Dup(int(blocking.Fd()))
	blocking.Close()
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	ptmx := os.NewFile(uintptr(fd), "ptmx")
	defer ptmx.Close()
	cmd := exec.Command(bin, "agent")
	cmd.Env = environ(agent.HostKeyEnv + "=" + key)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	defer cmd.Process.Kill()
	// As the bridge does: nothing is sent before the agent's banner, since
	// until then the terminal may still echo.
	banner := bannerLine(t, ptmx)
	c := clientOver(t, pipeConn{io.MultiReader(bytes.NewReader(banner), ptmx), ptmx}, pub)

	var all []byte
	for range 64 {
		for b := range 256 {
			all = append(all, byte(b))
		}
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.Stdin = bytes.NewReader(all)
	out, err := s.Output("cat")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, all) {
		t.Errorf("cat through the agent on a terminal: %d bytes back, want the %d sent unchanged", len(out), len(all))
	}
	c.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("the agent's exit after the client closed: %v, want 0", err)
	}
}

// bannerLine reads r up to the end of the SSH banner's line (RFC 4253
// section 4.2) and returns what it read.
func bannerLine(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var got []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(got, []byte("\n")) || !bytes.Contains(got, []byte("SSH-")) {
		if _, err := r.Read(b); err != nil {
			t.Fatalf("waiting for the agent's banner: read %q, then %v", got, err)
		}
		got = append(got, b[0])
		if len(got) > 4096 {
			t.Fatalf("no SSH banner in the agent's first 4 KiB: %q", got)
		}
	}
	if !bytes.HasPrefix(got, []byte("SSH-2.0-")) || !bytes.HasSuffix(got, []byte("\r\n")) || bytes.HasSuffix(got, []byte("\r\r\n")) {
		t.Fatalf("the agent's first bytes on a terminal: %q, want its banner unchanged", got)
	}
	return got
}

func TestParseLaunchFailure(t *testing.T) {
	for in, want := range map[string]string{
		"bridge-agent: no agent uploaded\n":                          "bridge-agent: no agent uploaded",
		"motd\r\nbridge-agent: no agent for architecture x\r\n":      "bridge-agent: no agent for architecture x",
		"noise\nbridge-agent: no directory where the agent can be x": "bridge-agent: no directory where the agent can be x",
	} {
		if got, ok := agent.ParseLaunchFailure([]byte(in)); !ok || got != want {
			t.Errorf("ParseLaunchFailure(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "SSH-2.0-Go\r\n", "x bridge-agent: inside a line\n"} {
		if got, ok := agent.ParseLaunchFailure([]byte(in)); ok {
			t.Errorf("ParseLaunchFailure(%q) = %q, true; want none", in, got)
		}
	}
}
