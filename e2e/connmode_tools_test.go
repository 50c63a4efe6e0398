package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	binenc "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tools that need one connection to be one machine (IDE remotes,
// Ansible, rsync, git, sshfs, ControlMaster users), each driven as a user
// runs it, against any SSH server given as an sshTarget. OpenSSH's sshd on
// loopback is the reference: every scenario passes against it.

// sshTarget is an SSH server as its clients see it.
type sshTarget struct {
	User string // the user name in the destination, user@host
	Host string
	Port int
	// SSHArgs are the options every OpenSSH client (ssh, sftp, and the ssh
	// that rsync, git and sshfs start) gets before the destination: -F,
	// -i, -o ...; not the port, which ssh and sftp spell differently.
	// They keep ssh quiet (LogLevel=ERROR): scenarios compare stderr.
	SSHArgs []string
	// Dir is an absolute directory on the target in which its user may
	// create files and directories (a writable /tmp on any host). Each
	// scenario works in names of its own there and removes them.
	Dir string
	// Home is the directory SFTP and exec sessions start in, writable by
	// the user: the home on a host, where an IDE uploads its backend.
	// Empty: not checked, the start directory is used whatever it is.
	Home string
}

// sshdTarget starts OpenSSH's sshd (StartSSHD) and describes it: the test
// user (root) with the default client key, the host key pinned, /tmp, the
// user's home.
func sshdTarget(t *testing.T) sshTarget {
	t.Helper()
	d := StartSSHD(t, clientKey(t, "default"))
	port, err := strconv.Atoi(d.Port)
	if err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return sshTarget{
		User: d.User,
		Host: d.Host,
		Port: port,
		SSHArgs: []string{
			"-F", "/dev/null",
			"-i", d.Key,
			"-o", "IdentitiesOnly=yes",
			"-o", "IdentityAgent=none",
			"-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile=" + d.KnownHosts,
			"-o", "ConnectTimeout=20",
			"-o", "LogLevel=ERROR",
		},
		Dir:  "/tmp",
		Home: me.HomeDir,
	}
}

// TestToolsAgainstSshd runs every tool scenario against OpenSSH's sshd,
// whose one connection is one machine as in the bridge's connection mode.
func TestToolsAgainstSshd(t *testing.T) {
	tg := sshdTarget(t)
	for _, sc := range toolScenarios {
		t.Run(sc.name, func(t *testing.T) { sc.check(t, tg) })
	}
}

// toolScenarios are the scenarios in the order they run.
var toolScenarios = []struct {
	name  string
	check func(*testing.T, sshTarget)
}{
	{"vscode-socks", checkVSCodeSocks},
	{"vscode-socket", checkVSCodeSocket},
	{"jetbrains", checkJetBrains},
	{"stdio-forward", checkStdioForward},
	{"ansible", checkAnsible},
	{"rsync", checkRsync},
	{"git", checkGit},
	{"sshfs", checkSSHFS},
	{"controlmaster-touch-ls", checkTouchThenLs},
	{"streams-and-exit-codes", checkStreamsAndExitCodes},
	{"exit-signal", checkExitSignal},
	{"pty", checkPty},
	{"bytes", checkBytes},
}

// scenarioTimeout bounds each client command of a scenario.
const scenarioTimeout = time.Minute

func (tg sshTarget) dest() string { return tg.User + "@" + tg.Host }

// sshArgv is the ssh command line: extra, SSHArgs, the port, the
// destination and command (none: a shell). ssh takes an option's first
// value: extra overrides SSHArgs.
func (tg sshTarget) sshArgv(t *testing.T, extra []string, command ...string) []string {
	args := []string{need(t, "ssh")}
	args = append(args, extra...)
	args = append(args, tg.SSHArgs...)
	args = append(args, "-p", strconv.Itoa(tg.Port))
	args = append(args, tg.dest())
	return append(args, command...)
}

func (tg sshTarget) ssh(ctx context.Context, t *testing.T, extra []string, command ...string) *exec.Cmd {
	argv := tg.sshArgv(t, extra, command...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// run runs command over ssh with extra options and stdin (nil: none).
func (tg sshTarget) run(t *testing.T, extra []string, stdin io.Reader, command ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	return runCmd(t, tg.ssh(ctx, t, extra, command...), stdin)
}

// mustRun is run that fails the test unless the command exits 0.
func (tg sshTarget) mustRun(t *testing.T, extra []string, stdin io.Reader, command ...string) Result {
	t.Helper()
	r := tg.run(t, extra, stdin, command...)
	if r.Code != 0 {
		t.Fatalf("ssh %s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(command, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// mux returns the ssh options of one ControlMaster connection private to
// the test (ControlMaster=auto, ControlPersist): the first client that
// uses them opens it, every later one is a session on it. The connection
// ends with the test (ssh -O exit).
func (tg sshTarget) mux(t *testing.T) []string {
	t.Helper()
	// A short directory: a control socket's path has at most 104 bytes.
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	opts := []string{
		"-o", "ControlMaster=auto",
		"-o", "ControlPath=" + filepath.Join(dir, "c"),
		"-o", "ControlPersist=120",
	}
	t.Cleanup(func() {
		tg.run(t, append([]string{"-O", "exit"}, opts...), nil)
		os.RemoveAll(dir)
	})
	return opts
}

// remoteName returns tg.Dir/cmtools-WHAT-RANDOM, a name nothing else uses.
func (tg sshTarget) remoteName(what string) string {
	return tg.Dir + "/cmtools-" + what + "-" + randomHex(4)
}

// remoteDir makes a fresh directory on the target through the connection
// of opts and returns its path; it is removed, through the same
// connection, when the test ends (before the connection itself ends).
func (tg sshTarget) remoteDir(t *testing.T, opts []string, what string) string {
	t.Helper()
	dir := tg.remoteName(what)
	tg.mustRun(t, opts, nil, "mkdir "+dir)
	t.Cleanup(func() { tg.run(t, opts, nil, "rm -rf "+dir) })
	return dir
}

// sshWrapper writes an executable that runs ssh with SSHArgs, the port and
// extra, then its own arguments: the "ssh" that rsync -e, GIT_SSH_COMMAND
// and sshfs -o ssh_command run.
func (tg sshTarget) sshWrapper(t *testing.T, extra []string) string {
	t.Helper()
	argv := []string{need(t, "ssh")}
	argv = append(argv, tg.SSHArgs...)
	argv = append(argv, "-p", strconv.Itoa(tg.Port))
	argv = append(argv, extra...)
	path := filepath.Join(t.TempDir(), "ssh")
	script := "#!/bin/sh\nexec " + shellJoin(argv) + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// backendScript is the IDE backend stand-in (testdata/connmode_backend.py).
func backendScript(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/connmode_backend.py")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// runningSession is a client command still running, its stdin open.
type runningSession struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
	done   chan error
	cancel context.CancelFunc
}

// startSession starts ssh with extra options running command (none: a
// shell), with pipes on its stdin and stdout. The test's end kills it if
// it still runs.
func (tg sshTarget) startSession(t *testing.T, extra []string, command ...string) *runningSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	s := &runningSession{t: t, cmd: tg.ssh(ctx, t, extra, command...), stderr: &syncBuffer{}, done: make(chan error, 1), cancel: cancel}
	s.cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdout = bufio.NewReader(out)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(cancel)
	return s
}

// readLine returns the next line the session prints, without its newline,
// failing the test if none comes within scenarioTimeout.
func (s *runningSession) readLine(what string) string {
	s.t.Helper()
	got := make(chan string, 1)
	go func() {
		line, _ := s.stdout.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if !strings.HasSuffix(line, "\n") {
			s.t.Fatalf("%s: the session's output ended after %q; stderr: %s", what, line, s.stderr.String())
		}
		return strings.TrimSuffix(line, "\n")
	case <-time.After(scenarioTimeout):
		s.t.Fatalf("%s: no line within %s; stderr: %s", what, scenarioTimeout, s.stderr.String())
		return ""
	}
}

// end closes the session's stdin and waits for ssh to exit 0.
func (s *runningSession) end(what string) {
	s.t.Helper()
	s.stdin.Close()
	rest, _ := io.ReadAll(s.stdout)
	if err := <-s.done; err != nil {
		s.t.Fatalf("%s: ssh ended with %v after its stdin closed; more output %q; stderr: %s", what, err, rest, s.stderr.String())
	}
}

// listeningPort parses the backend's "listening on port N".
func listeningPort(t *testing.T, line string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(line, "listening on port "))
	if err != nil || !strings.HasPrefix(line, "listening on port ") {
		t.Fatalf("the backend printed %q, want \"listening on port N\"", line)
	}
	return n
}

// askBackend sends a line over conn to the backend stand-in and checks its
// answer; a failure shows the ssh client's stderr so far.
func askBackend(t *testing.T, conn net.Conn, via string, stderr fmt.Stringer) {
	t.Helper()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(scenarioTimeout))
	question := "hello-" + randomHex(4)
	if _, err := conn.Write([]byte(question + "\n")); err != nil {
		t.Fatalf("write to the backend through %s: %v\nssh's stderr: %s", via, err, stderr)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if want := "served " + question + "\n"; answer != want {
		t.Fatalf("the backend answered %q (%v) through %s, want %q\nssh's stderr: %s", answer, err, via, want, stderr)
	}
}

// notCaptured stands for a stderr the test cannot see, saying why.
type notCaptured string

func (n notCaptured) String() string { return "(not captured: " + string(n) + ")" }

// dialSOCKS5 connects through the SOCKS5 proxy at proxy (RFC 1928, no
// authentication, CONNECT) to the IPv4 address target; a failure shows
// the ssh client's stderr so far.
func dialSOCKS5(t *testing.T, proxy string, target *net.TCPAddr, stderr fmt.Stringer) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", proxy, scenarioTimeout)
	if err != nil {
		t.Fatalf("connect to ssh's SOCKS port %s: %v\nssh's stderr: %s", proxy, err, stderr)
	}
	conn.SetDeadline(time.Now().Add(scenarioTimeout))
	fail := func(format string, args ...any) {
		conn.Close()
		t.Helper()
		t.Fatalf("SOCKS5 through ssh -D to %s: "+format+"\nssh's stderr: %s", append(append([]any{target}, args...), stderr)...)
	}
	if _, err := conn.Write([]byte{5, 1, 0}); err != nil {
		fail("greeting: %v", err)
	}
	method := make([]byte, 2)
	if _, err := io.ReadFull(conn, method); err != nil || method[0] != 5 || method[1] != 0 {
		fail("method reply %v, %v; want [5 0]", method, err)
	}
	req := []byte{5, 1, 0, 1}
	req = append(req, target.IP.To4()...)
	req = binenc.BigEndian.AppendUint16(req, uint16(target.Port))
	if _, err := conn.Write(req); err != nil {
		fail("CONNECT: %v", err)
	}
	// ssh answers with an IPv4 bound address: 10 bytes.
	reply := make([]byte, 10)
	if _, err := io.ReadFull(conn, reply); err != nil || reply[0] != 5 || reply[1] != 0 {
		fail("CONNECT reply %v, %v; want status 0 (succeeded)", reply, err)
	}
	conn.SetDeadline(time.Time{})
	return conn
}

// startBackendOverStdin starts, as VS Code Remote-SSH does, `bash` over
// `ssh -T` with extra options and its install script on stdin: the script
// writes the backend into a directory of its own and runs it with args;
// it returns the session and the line the backend printed.
func (tg sshTarget) startBackendOverStdin(t *testing.T, extra []string, args string) (*runningSession, string) {
	t.Helper()
	dir := tg.remoteName("vscode")
	// LogLevel INFO: a refused forward is said on ssh's stderr.
	s := tg.startSession(t, append([]string{"-T", "-o", "LogLevel=INFO"}, extra...), "bash")
	script := fmt.Sprintf("set -e\nmkdir %s\ncd %s\ncat > backend.py <<'CMTOOLS_BACKEND_END'\n%sCMTOOLS_BACKEND_END\npython3 backend.py %s; cd /; rm -rf %s\n",
		dir, dir, backendScript(t), args, dir)
	if _, err := io.WriteString(s.stdin, script); err != nil {
		t.Fatalf("write the install script to ssh: %v; stderr: %s", err, s.stderr.String())
	}
	return s, s.readLine("the backend started by the install script")
}

// checkVSCodeSocks is VS Code Remote-SSH: `ssh -T -D PORT target bash`
// with the install script on stdin, a server started inside on
// 127.0.0.1:0, and a connection to it through the SOCKS port.
func checkVSCodeSocks(t *testing.T, tg sshTarget) {
	socks := "127.0.0.1:" + freePort(t)
	// ssh binds -D before it opens the session: once the backend speaks,
	// the SOCKS port listens.
	s, line := tg.startBackendOverStdin(t, []string{"-D", socks, "-o", "ExitOnForwardFailure=yes"}, "tcp")
	port := listeningPort(t, line)
	askBackend(t, dialSOCKS5(t, socks, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, s.stderr), "ssh -D (direct-tcpip)", s.stderr)
	s.end("the VS Code stand-in session")
}

// checkVSCodeSocket is VS Code Remote-SSH's socket mode: the server
// listens on a Unix socket inside, reached with `ssh -L port:/path`
// (direct-streamlocal@openssh.com).
func checkVSCodeSocket(t *testing.T, tg sshTarget) {
	local := "127.0.0.1:" + freePort(t)
	sock := tg.remoteName("vscode") + ".sock"
	s, line := tg.startBackendOverStdin(t, []string{"-L", local + ":" + sock, "-o", "ExitOnForwardFailure=yes"}, "unix "+sock)
	if want := "listening on socket " + sock; line != want {
		t.Fatalf("the backend printed %q, want %q", line, want)
	}
	conn, err := net.DialTimeout("tcp", local, scenarioTimeout)
	if err != nil {
		t.Fatalf("connect to ssh -L %s: %v", local, err)
	}
	askBackend(t, conn, "ssh -L to a Unix socket (direct-streamlocal@openssh.com)", s.stderr)
	s.end("the VS Code socket-mode session")
}

// checkJetBrains is a JetBrains-Gateway-like flow over one connection:
// SFTP upload of the backend into the directory SFTP starts in (the home
// on a host, tg.Home if set), exec of it there (relative paths: an exec
// starts in the same directory), and `-L` to the port it prints.
func checkJetBrains(t *testing.T, tg sshTarget) {
	mux := tg.mux(t)
	local := filepath.Join(t.TempDir(), "backend")
	if err := os.WriteFile(local, backendScript(t), 0o755); err != nil {
		t.Fatal(err)
	}
	name := "cmtools-jetbrains-" + randomHex(4)
	batch := filepath.Join(t.TempDir(), "batch")
	cmds := fmt.Sprintf("pwd\nmkdir %s\nput %s %s/backend\nchmod 755 %s/backend\n", name, local, name, name)
	if err := os.WriteFile(batch, []byte(cmds), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string(nil), tg.SSHArgs...), "-P", strconv.Itoa(tg.Port))
	args = append(append(args, mux...), "-b", batch, tg.dest())
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	r := runCmd(t, exec.CommandContext(ctx, need(t, "sftp"), args...), nil)
	if r.Code != 0 {
		t.Fatalf("sftp upload of the backend into the start directory: exit code %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	t.Cleanup(func() { tg.run(t, mux, nil, "rm -rf "+name) })
	_, after, _ := strings.Cut(r.Stdout, "Remote working directory: ")
	sftpStart, _, _ := strings.Cut(after, "\n")
	if sftpStart == "" || (tg.Home != "" && sftpStart != tg.Home) {
		t.Fatalf("sftp's pwd says %q, want the home %q\nstdout: %s", sftpStart, tg.Home, r.Stdout)
	}
	if execStart := strings.TrimSpace(tg.mustRun(t, mux, nil, "pwd").Stdout); execStart != sftpStart {
		t.Fatalf("an exec starts in %q and SFTP in %q: an IDE's uploaded backend is not where it runs", execStart, sftpStart)
	}

	s := tg.startSession(t, mux, "cd "+name+" && exec ./backend tcp")
	port := listeningPort(t, s.readLine("the uploaded backend"))
	// The master binds the forward before it answers -O forward.
	lport := freePort(t)
	fwd := fmt.Sprintf("127.0.0.1:%s:127.0.0.1:%d", lport, port)
	if r := tg.run(t, append([]string{"-O", "forward", "-L", fwd}, mux...), nil); r.Code != 0 {
		t.Fatalf("ssh -O forward -L %s: exit code %d\nstderr: %s", fwd, r.Code, r.Stderr)
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+lport, scenarioTimeout)
	if err != nil {
		t.Fatalf("connect to ssh -L 127.0.0.1:%s: %v", lport, err)
	}
	askBackend(t, conn, "ssh -O forward -L (direct-tcpip)", notCaptured("the forward is the master's, whose stderr is /dev/null"))
	s.end("the session running the uploaded backend")
}

// checkStdioForward is `ssh -W` (a ProxyJump hop, direct-tcpip on ssh's
// own stdin and stdout) to a server another session of the same
// connection started on the target's loopback.
func checkStdioForward(t *testing.T, tg sshTarget) {
	mux := tg.mux(t)
	s, line := tg.startBackendOverStdin(t, mux, "tcp")
	port := listeningPort(t, line)
	question := "hello-" + randomHex(4)
	r := tg.run(t, append([]string{"-W", fmt.Sprintf("127.0.0.1:%d", port)}, mux...), strings.NewReader(question+"\n"))
	if want := "served " + question + "\n"; r.Code != 0 || r.Stdout != want {
		t.Fatalf("ssh -W 127.0.0.1:%d: exit code %d, stdout %q; want 0 and %q\nstderr: %s", port, r.Code, r.Stdout, want, r.Stderr)
	}
	s.end("the session running the backend")
}

// checkAnsible runs Debian's ansible-core ad hoc: ping, copy, then command
// reading the copied file, with its defaults (sftp transfers, no
// pipelining, ControlPersist=60s: the three commands share one connection).
func checkAnsible(t *testing.T, tg sshTarget) {
	ansible := need(t, "ansible")
	work := t.TempDir()
	controlDir, err := os.MkdirTemp("", "ans")
	if err != nil {
		t.Fatal(err)
	}
	remoteTmp := tg.remoteName("ansible") + ".tmp"
	dest := tg.remoteName("ansible") + ".txt"
	// A YAML inventory (JSON is YAML): an INI one evaluates quoted values
	// as Python literals, which joins adjacent quoted words.
	inventory := filepath.Join(work, "inventory.yml")
	inv, err := json.Marshal(map[string]any{"all": map[string]any{"hosts": map[string]any{"target": map[string]any{
		"ansible_host":               tg.Host,
		"ansible_port":               tg.Port,
		"ansible_user":               tg.User,
		"ansible_python_interpreter": "/usr/bin/python3",
		// Split shell-like by ansible, given to ssh, sftp and scp.
		"ansible_ssh_common_args": ansibleArgs(t, tg.SSHArgs),
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inventory, inv, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "ansible.cfg")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	content := "copied by ansible " + randomHex(8) + "\n"
	src := filepath.Join(work, "src.txt")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"HOME="+work,
		"ANSIBLE_CONFIG="+cfg,
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(work, "local-tmp"),
		"ANSIBLE_REMOTE_TEMP="+remoteTmp,
		"ANSIBLE_SSH_CONTROL_PATH_DIR="+controlDir,
		"ANSIBLE_NOCOLOR=1",
	)
	t.Cleanup(func() {
		// End ansible's persistent masters, then what it left on the target.
		socks, _ := filepath.Glob(filepath.Join(controlDir, "*"))
		for _, sock := range socks {
			tg.run(t, []string{"-O", "exit", "-o", "ControlPath=" + sock}, nil)
		}
		os.RemoveAll(controlDir)
		tg.run(t, nil, nil, "rm -rf "+remoteTmp+" "+dest)
	})
	run := func(module, moduleArgs, want string) {
		t.Helper()
		args := []string{"all", "-i", inventory, "-m", module}
		if moduleArgs != "" {
			args = append(args, "-a", moduleArgs)
		}
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, ansible, args...)
		cmd.Env, cmd.Dir = env, work
		start := time.Now()
		r := runCmd(t, cmd, nil)
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("ansible %s: exit code %d after %s, want 0 and %q in the output\nstdout: %s\nstderr: %s",
				shellJoin(args), r.Code, time.Since(start).Round(time.Millisecond), want, r.Stdout, r.Stderr)
		}
		t.Logf("ansible -m %s: %s", module, time.Since(start).Round(time.Millisecond))
	}
	// The persistent connection's master, asked through its control
	// socket: the same one after each command means one connection.
	master := func(after string) string {
		t.Helper()
		socks, _ := filepath.Glob(filepath.Join(controlDir, "*"))
		if len(socks) != 1 {
			t.Fatalf("after ansible -m %s, %d control sockets in ANSIBLE_SSH_CONTROL_PATH_DIR (%v), want 1 (ControlPersist)", after, len(socks), socks)
		}
		r := tg.run(t, []string{"-O", "check", "-o", "ControlPath=" + socks[0]}, nil)
		if r.Code != 0 || !strings.HasPrefix(r.Stderr, "Master running (pid=") {
			t.Fatalf("after ansible -m %s, ssh -O check: exit code %d, stderr %q; want its master running", after, r.Code, r.Stderr)
		}
		return strings.TrimSpace(r.Stderr)
	}
	run("ping", "", `"ping": "pong"`)
	first := master("ping")
	run("copy", "src="+src+" dest="+dest, `"changed": true`)
	run("command", "cat "+dest, strings.TrimSuffix(content, "\n"))
	if last := master("command"); last != first {
		t.Fatalf("ansible's ControlPersist connection changed between ping (%s) and command (%s): the commands did not share one connection", first, last)
	}
}

// ansibleArgs joins args for an ansible_*_args variable. Ansible strips
// quotes around a whole value, so words are joined bare: a word that would
// need quoting fails the test.
func ansibleArgs(t *testing.T, args []string) string {
	t.Helper()
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>*?#~") {
			t.Fatalf("SSH option %q would need quoting in ansible_ssh_common_args", a)
		}
	}
	return strings.Join(args, " ")
}

// checkRsync sends a tree to the target with rsync and back, over one
// connection, and compares.
func checkRsync(t *testing.T, tg sshTarget) {
	rsync := need(t, "rsync")
	mux := tg.mux(t)
	shell := tg.sshWrapper(t, mux)
	remote := tg.remoteDir(t, mux, "rsync")
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src)
	back := filepath.Join(t.TempDir(), "back")
	for _, args := range [][]string{
		{"-a", "-e", shell, src + "/", tg.dest() + ":" + remote + "/tree/"},
		{"-a", "-e", shell, tg.dest() + ":" + remote + "/tree/", back + "/"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		r := runCmd(t, exec.CommandContext(ctx, rsync, args...), nil)
		cancel()
		if r.Code != 0 {
			t.Fatalf("rsync %s: exit code %d\nstdout: %s\nstderr: %s", shellJoin(args), r.Code, r.Stdout, r.Stderr)
		}
	}
	if want, got := describeTree(t, src), describeTree(t, back); got != want {
		t.Fatalf("the tree came back from the target different:\nsent:\n%s\ngot back:\n%s", want, got)
	}
}

// writeTree makes a small tree with what rsync -a keeps: nested
// directories, an empty file, binary content, an executable, a symlink,
// modification times.
func writeTree(t *testing.T, root string) {
	t.Helper()
	random := make([]byte, 300<<10)
	rand.Read(random)
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"README", []byte("a tree for rsync\n"), 0o644},
		{"empty", nil, 0o600},
		{"bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o755},
		{"data/nested/deeper/random.bin", random, 0o644},
		{"data/all-bytes", allByteValues(), 0o640},
	}
	for i, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		when := time.Date(2020, 1, 2, 3, 4, 5+i, 0, time.UTC)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../README", filepath.Join(root, "bin", "readme-link")); err != nil {
		t.Fatal(err)
	}
}

// describeTree lists a tree, one line per entry: path, type and mode,
// size, modification time (files) and content digest or link target.
func describeTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		case info.Mode().IsRegular():
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %d bytes %s %x", len(raw), info.ModTime().UTC().Format(time.RFC3339), sha256.Sum256(raw))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkGit makes a bare repository on the target, pushes to it and clones
// it back, all over one ControlMaster connection (GIT_SSH_COMMAND).
func checkGit(t *testing.T, tg sshTarget) {
	git := need(t, "git")
	mux := tg.mux(t)
	shell := tg.sshWrapper(t, mux)
	remote := tg.remoteDir(t, mux, "git")
	repo := remote + "/repo.git"
	tg.mustRun(t, mux, nil, "git init -q --bare "+repo)
	work := t.TempDir()
	env := append(os.Environ(),
		"GIT_SSH_COMMAND="+shell,
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Tools Test", "GIT_AUTHOR_EMAIL=tools@example.com",
		"GIT_COMMITTER_NAME=Tools Test", "GIT_COMMITTER_EMAIL=tools@example.com",
	)
	gitIn := func(dir string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, git, args...)
		cmd.Env, cmd.Dir = env, dir
		r := runCmd(t, cmd, nil)
		if r.Code != 0 {
			t.Fatalf("git %s: exit code %d\nstdout: %s\nstderr: %s", shellJoin(args), r.Code, r.Stdout, r.Stderr)
		}
		return strings.TrimSpace(r.Stdout)
	}
	local := filepath.Join(work, "local")
	gitIn(work, "init", "-q", "-b", "main", local)
	content := "pushed over ssh " + randomHex(8) + "\n"
	if err := os.WriteFile(filepath.Join(local, "file.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(local, "add", "file.txt")
	gitIn(local, "commit", "-q", "-m", "first")
	head := gitIn(local, "rev-parse", "HEAD")
	url := tg.dest() + ":" + repo
	gitIn(local, "push", "-q", url, "main")
	gitIn(work, "clone", "-q", "-b", "main", url, "clone")
	if got := gitIn(filepath.Join(work, "clone"), "rev-parse", "HEAD"); got != head {
		t.Fatalf("the clone's HEAD is %s, want the pushed %s", got, head)
	}
	got, err := os.ReadFile(filepath.Join(work, "clone", "file.txt"))
	if err != nil || string(got) != content {
		t.Fatalf("the clone's file.txt is %q (%v), want %q", got, err, content)
	}
}

// checkSSHFS mounts the target's / with sshfs over one ControlMaster
// connection, reads a file made by an ssh session, writes one that an ssh
// session then reads, and unmounts with fusermount -u.
func checkSSHFS(t *testing.T, tg sshTarget) {
	sshfs := need(t, "sshfs")
	fusermount := need(t, "fusermount")
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		t.Fatalf("sshfs needs FUSE and /dev/fuse cannot be opened on this machine: %v", err)
	} else {
		f.Close()
	}
	mux := tg.mux(t)
	remote := tg.remoteDir(t, mux, "sshfs")
	fromSSH := "made by an ssh session " + randomHex(8) + "\n"
	tg.mustRun(t, mux, strings.NewReader(fromSSH), "cat > "+remote+"/from-ssh")

	mnt := t.TempDir()
	args := []string{
		"-o", "ssh_command=" + tg.sshWrapper(t, mux),
		// Every read goes to the target, none is answered from a cache.
		"-o", "cache=no",
		tg.dest() + ":/", mnt,
	}
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	// sshfs returns once the mount is up and its daemon serves it.
	mounted := false
	t.Cleanup(func() {
		if !mounted {
			return
		}
		if out, err := exec.Command(fusermount, "-u", "-z", mnt).CombinedOutput(); err != nil {
			t.Errorf("fusermount -u -z %s: %v: %s", mnt, err, out)
		}
	})
	r := runCmd(t, exec.CommandContext(ctx, sshfs, args...), nil)
	if r.Code != 0 {
		t.Fatalf("sshfs %s: exit code %d\nstdout: %s\nstderr: %s", shellJoin(args), r.Code, r.Stdout, r.Stderr)
	}
	mounted = true
	// Another connection while mounted: on the bridge, another one-off,
	// whose namespaces are made while the mount exists.
	tg.mustRun(t, nil, nil, "true")
	got, err := os.ReadFile(filepath.Join(mnt, remote, "from-ssh"))
	if err != nil || string(got) != fromSSH {
		t.Fatalf("read %s through the sshfs mount of /: %q, %v; want %q", remote+"/from-ssh", got, err, fromSSH)
	}
	fromSSHFS := "written through sshfs " + randomHex(8) + "\n"
	if err := os.WriteFile(filepath.Join(mnt, remote, "from-sshfs"), []byte(fromSSHFS), 0o644); err != nil {
		t.Fatalf("write through the sshfs mount: %v", err)
	}
	if r := tg.mustRun(t, mux, nil, "cat "+remote+"/from-sshfs"); r.Stdout != fromSSHFS {
		t.Fatalf("the file written through sshfs reads %q in an ssh session, want %q", r.Stdout, fromSSHFS)
	}
	if out, err := exec.Command(fusermount, "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount -u %s: %v: %s", mnt, err, out)
	}
	mounted = false
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Fatalf("after fusermount -u the mount point lists %d entries (%v), want an empty directory", len(entries), err)
	}
	// As with sshd, the unmount ends sshfs's daemon (and its ssh): a copy
	// of the mount held elsewhere (a one-off's mount namespace) would
	// keep it running.
	deadline := time.Now().Add(5 * time.Second)
	for pids := processesNaming(t, mnt); len(pids) > 0; pids = processesNaming(t, mnt) {
		if time.Now().After(deadline) {
			t.Fatalf("sshfs still runs 5 s after its unmount: pids %v", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesNaming lists the processes whose command line has arg.
func processesNaming(t *testing.T, arg string) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == arg {
				pids = append(pids, d.Name())
				break
			}
		}
	}
	return pids
}

// checkTouchThenLs runs `touch` then `ls` of the same file in two sessions
// of one ControlMaster connection.
func checkTouchThenLs(t *testing.T, tg sshTarget) {
	mux := tg.mux(t)
	name := tg.remoteName("touch")
	tg.mustRun(t, mux, nil, "touch "+name)
	t.Cleanup(func() { tg.run(t, mux, nil, "rm -f "+name) })
	if r := tg.run(t, mux, nil, "ls "+name); r.Code != 0 || r.Stdout != name+"\n" {
		t.Fatalf("ls %s in the second session of the connection that touched it: exit code %d, stdout %q, want 0 and %q\nstderr: %s",
			name, r.Code, r.Stdout, name+"\n", r.Stderr)
	}
}

// checkStreamsAndExitCodes checks that a command's stderr reaches ssh's
// stderr apart from its stdout, and that exit codes come through.
func checkStreamsAndExitCodes(t *testing.T, tg sshTarget) {
	r := tg.run(t, nil, nil, "echo out; echo err >&2")
	if r.Code != 0 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Fatalf("ssh 'echo out; echo err >&2': exit code %d, stdout %q, stderr %q; want 0, %q, %q", r.Code, r.Stdout, r.Stderr, "out\n", "err\n")
	}
	for _, code := range []int{0, 1, 7, 254} {
		if r := tg.run(t, nil, nil, fmt.Sprintf("exit %d", code)); r.Code != code {
			t.Fatalf("ssh 'exit %d': exit code %d, want %d\nstderr: %s", code, r.Code, code, r.Stderr)
		}
	}
}

// checkExitSignal: a command killed by a signal reaches the client as
// exit-signal (RFC 4254 section 6.10). OpenSSH's ssh (9.2) then exits 255,
// says nothing at LogLevel ERROR, and logs the request at -v.
func checkExitSignal(t *testing.T, tg sshTarget) {
	r := tg.run(t, []string{"-v"}, nil, "echo before; kill -TERM $$; echo after")
	if r.Code != 255 || r.Stdout != "before\n" {
		t.Fatalf("ssh 'kill -TERM $$': exit code %d, stdout %q; want 255 and %q\nstderr: %s", r.Code, r.Stdout, "before\n", r.Stderr)
	}
	for _, want := range []string{"rtype exit-signal", "Exit status -1"} {
		if !strings.Contains(r.Stderr, want) {
			t.Fatalf("ssh -v 'kill -TERM $$' does not log %q: the session did not end with exit-signal\nstderr: %s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, "rtype exit-status") {
		t.Fatalf("ssh -v 'kill -TERM $$' got exit-status as well as exit-signal\nstderr: %s", r.Stderr)
	}
}

// checkPty runs an interactive shell in a terminal (tmux): TERM, the size
// at start and after a resize, Ctrl-C interrupting a foreground command with
// the shell alive after it, and the shell's exit code.
func checkPty(t *testing.T, tg sshTarget) {
	exitFile := filepath.Join(t.TempDir(), "exit")
	command := fmt.Sprintf("%s; echo $? > %s; sleep 600", shellJoin(tg.sshArgv(t, []string{"-t"})), exitFile)
	ts := newTmux(t, 80, 24, command)
	// Arithmetic the shell must do proves a live shell, not an echo.
	ts.send("echo READY-$((6*7))", "Enter")
	ts.waitScreen("READY-42", 30*time.Second)

	// The terminal type is the client's.
	term := strings.TrimSpace(ts.run("show-options", "-gv", "default-terminal"))
	ts.send("echo TERM-$TERM-END", "Enter")
	ts.waitScreen("TERM-"+term+"-END", 10*time.Second)

	ts.send("clear; stty size", "Enter")
	ts.waitScreen("24 80", 10*time.Second)
	ts.run("resize-window", "-t", ts.name, "-x", "100", "-y", "30")
	ts.send("clear; stty size", "Enter")
	ts.waitScreen("30 100", 10*time.Second)

	// The line is printed by the process that then becomes sleep: once it
	// shows, Ctrl-C can only reach that foreground command.
	ts.send("sh -c 'echo SLEEPING-$((6*7)); exec sleep 4242'", "Enter")
	ts.waitScreen("SLEEPING-42", 10*time.Second)
	ts.send("C-c")
	ts.send("echo AFTER-$((1+1))", "Enter")
	ts.waitScreen("AFTER-2", 10*time.Second)

	ts.send("exit 5", "Enter")
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := os.ReadFile(exitFile)
		if got := strings.TrimSpace(string(raw)); err == nil && got != "" {
			if got != "5" {
				t.Fatalf("ssh -t exited with %s after 'exit 5', want 5; screen:\n%s", got, ts.screen())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh -t did not exit after 'exit 5'; screen:\n%s", ts.screen())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func allByteValues() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// checkBytes sends all 256 byte values, then 5 MiB of random bytes,
// through `cat` without a pty and gets them back unchanged; then uploads
// the random bytes to a file and downloads it, over one connection.
func checkBytes(t *testing.T, tg sshTarget) {
	random := make([]byte, 5<<20)
	rand.Read(random)
	for _, c := range []struct {
		what string
		data []byte
	}{
		{"all 256 byte values", allByteValues()},
		{"all 256 byte values 4 times", bytes.Repeat(allByteValues(), 4)},
		{"5 MiB of random bytes", random},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		cmd := tg.ssh(ctx, t, nil, "cat")
		var stdout, stderr bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(c.data), &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil || !bytes.Equal(stdout.Bytes(), c.data) {
			t.Fatalf("%s through ssh cat: %v; %d bytes back, equal: %v\nstderr: %s", c.what, err, stdout.Len(), bytes.Equal(stdout.Bytes(), c.data), stderr.String())
		}
	}
	mux := tg.mux(t)
	name := tg.remoteName("bytes")
	t.Cleanup(func() { tg.run(t, mux, nil, "rm -f "+name) })
	tg.mustRun(t, mux, bytes.NewReader(random), "cat > "+name)
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	cmd := tg.ssh(ctx, t, mux, "cat "+name)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !bytes.Equal(stdout.Bytes(), random) {
		t.Fatalf("5 MiB of random bytes uploaded to %s then downloaded: %v; %d bytes back, equal: %v\nstderr: %s", name, err, stdout.Len(), bytes.Equal(stdout.Bytes(), random), stderr.String())
	}
}
