package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
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

// Restarts: a handover to a new process on SIGHUP, and a listening socket
// passed by systemd's socket activation.

// SIGHUP while a command runs: a new process of the binary takes the
// listening socket and serves the next connections, with the staging area
// the old one had; the running command goes on in the old process to its
// end, with its output and exit code 0, and the old process exits after
// it.
func TestHandoverKeepsSessions(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--drain-timeout", "1m"}})
	oldPID := b.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Staged by the old process, for a later one-off of another app.
	dir := localTree(t, map[string][]byte{"before": []byte("staged before\n"), "after": []byte("staged after\n")})
	mustOK(t, "scp before", b.client(t, dir, "", "scp", "before", "other-app@"+b.Host+":"))

	// A command that writes into its one-off's /tmp (its dir in the
	// platform's state dir, which the new process's platform must leave
	// alone) and waits for a line.
	cmd := startBackground(t, b.SSH(ctx, "demo-app", nil,
		"echo kept > /tmp/kept; echo started; read line; cat /tmp/kept; echo done-$line"))
	waitFor(t, 30*time.Second, "the command", func() bool { return cmd.stdout.String() == "started\n" })

	// A connection with a session open, which may open more after the
	// handover, as OpenSSH's ControlMaster does.
	mux := goClient(t, b, "demo-app")
	held, err := mux.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	heldIn, _ := held.StdinPipe()
	if err := held.Start("read x"); err != nil {
		t.Fatal(err)
	}

	syscall.Kill(oldPID, syscall.SIGHUP)
	served := regexp.MustCompile(`msg="handover: the new process serves" new_pid=([0-9]+)`)
	waitFor(t, time.Minute, "the handover in the log", func() bool {
		log := b.Log()
		return served.MatchString(log) && strings.Contains(log, `msg="handover: draining: open sessions run on"`)
	})
	log := b.Log()
	newPID, _ := strconv.Atoi(served.FindStringSubmatch(log)[1])
	t.Cleanup(func() { stopPID(t, newPID) })
	if !regexp.MustCompile(`msg="bridge listening" .*pid=` + strconv.Itoa(newPID) + `\n`).MatchString(log) {
		t.Errorf("the new process %d logged no listening line with its pid:\n%s", newPID, log)
	}
	notice := "The bridge is restarting: this session goes on for at most 1m0s; new connections are served by the new process.\n"
	waitFor(t, 10*time.Second, "the notice", func() bool { return cmd.stderr.String() == notice })

	// The old process still serves the sessions of its connections.
	if second, err := mux.NewSession(); err != nil {
		t.Errorf("a second session on a connection of the old process: %v", err)
	} else if out, err := second.Output("echo second"); err != nil || string(out) != "second\n" {
		t.Errorf("a second session on a connection of the old process: %q, %v", out, err)
	}
	io.WriteString(heldIn, "y\n")
	heldIn.Close()
	if err := held.Wait(); err != nil {
		t.Errorf("the session held across the handover: %v", err)
	}
	mux.Close()

	// A new connection: the new process holds its socket.
	c := goClient(t, b, "other-app")
	if owner := socketOwner(t, c.LocalAddr(), b.Port, oldPID, newPID); owner != newPID {
		t.Errorf("the connection after the handover is served by pid %d, want the new process %d", owner, newPID)
	}
	// The old process's staged file, delivered by the new process, and one
	// staged by the new process while the old one still runs its command.
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("cat /tmp/uploads/before")
	if err != nil || string(out) != "staged before\n" {
		t.Errorf("the file staged before the handover: %q, %v", out, err)
	}
	c.Close()
	mustOK(t, "scp after", b.client(t, dir, "", "scp", "after", "other-app@"+b.Host+":"))
	if r := b.Run("other-app", nil, "cat /tmp/uploads/after"); r.Code != 0 || r.Stdout != "staged after\n" {
		t.Errorf("the file staged after the handover: %+v", r)
	}

	select {
	case <-b.exited:
		t.Fatal("the old process exited while its command runs")
	default:
	}
	io.WriteString(cmd.stdin, "go\n")
	if code := cmd.wait(t, 30*time.Second, "the command"); code != 0 || cmd.stdout.String() != "started\nkept\ndone-go\n" {
		t.Errorf("the command: code %d, stdout %q, stderr %q; want 0 and its whole output", code, cmd.stdout.String(), cmd.stderr.String())
	}
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit after its last session")
	}
	if !b.LogHas(`msg="bridge stopped: handed over to the new process"`) {
		t.Errorf("no end of the old process in the log:\n%s", b.Log())
	}
	// The new process alone serves now.
	if r := b.Run("demo-app", nil, "echo still-served"); r.Code != 0 || r.Stdout != "still-served\n" {
		t.Errorf("after the old process's exit: %+v", r)
	}
}

// A SIGHUP whose new process cannot start leaves the old one serving, and
// its log says why.
func TestHandoverFailureKeepsServing(t *testing.T) {
	// The new process gets the same arguments: a host key that is gone by
	// then makes it fail.
	key := filepath.Join(t.TempDir(), "host_key")
	out, err := exec.Command(need(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	b := StartBridge(t, Options{Args: []string{"--host-key", key}})
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	log, ok := b.LogWhen(func(log string) bool {
		return strings.Contains(log, `msg="handover failed: this process keeps serving"`)
	})
	if !ok || !strings.Contains(log, "exited before it was ready") {
		t.Fatalf("no failed handover in the log:\n%s", log)
	}
	if r := b.Run("demo-app", nil, "echo served"); r.Code != 0 || r.Stdout != "served\n" {
		t.Errorf("after the failed handover: %+v", r)
	}
}

// With systemd's socket activation (LISTEN_FDS=1, LISTEN_PID, fd 3 a
// listening socket) the bridge serves that socket, not --listen.
func TestSocketActivation(t *testing.T) {
	sock, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	f, err := sock.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// --listen names an address in use: binding it would fail.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	b := newBridge(t, Options{})
	b.args = replaceListen(b.args, busy.Addr().String())
	b.launch = func() *exec.Cmd {
		// As systemd does, LISTEN_PID is the bridge's own PID: set by the
		// shell that then becomes the bridge.
		cmd := exec.Command(need(t, "sh"), append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary}, b.args...)...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=ssh")
		cmd.ExtraFiles = []*os.File{f}
		return cmd
	}
	b.start()
	t.Cleanup(b.Stop)
	if b.Addr != sock.Addr().String() {
		t.Errorf("the bridge listens on %s, want the passed socket %s", b.Addr, sock.Addr())
	}
	if r := b.Run("demo-app", nil, "echo activated"); r.Code != 0 || r.Stdout != "activated\n" {
		t.Errorf("through the passed socket: %+v", r)
	}
	if !b.LogHas(`msg="serving the listening socket passed by LISTEN_FDS: --listen is not used"`) {
		t.Errorf("the log does not say which socket is served:\n%s", b.Log())
	}
}

// socketOwner returns which of pids holds the server side of the TCP
// connection whose client end is client, to the bridge's port: the
// socket's inode from /proc/net/tcp, then the pid whose fds name it.
func socketOwner(t *testing.T, client net.Addr, serverPort string, pids ...int) int {
	t.Helper()
	_, clientPort, _ := net.SplitHostPort(client.String())
	cp, _ := strconv.Atoi(clientPort)
	sp, _ := strconv.Atoi(serverPort)
	var inode string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", sp)) || !strings.HasSuffix(fields[2], fmt.Sprintf(":%04X", cp)) {
				continue
			}
			inode = fields[9]
		}
		f.Close()
	}
	if inode == "" {
		t.Fatalf("no socket from port %d to port %d in /proc/net/tcp", cp, sp)
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == want {
				return pid
			}
		}
	}
	t.Fatalf("no process of %v holds %s", pids, want)
	return 0
}

// stopPID ends a bridge process that is not the test's child with SIGTERM
// and waits until it is gone.
func stopPID(t *testing.T, pid int) {
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("process %d did not stop on SIGTERM", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive says whether pid runs: a zombie, left for whoever reaps it, does
// not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// SIGTERM to the old process while it drains: its sessions are told and
// end at --shutdown-grace with the bridge's stop code, 251, as on a plain
// stop; the new process serves on.
func TestStopDuringDrain(t *testing.T) {
	const grace = 3 * time.Second
	b := StartBridge(t, Options{Args: []string{"--drain-timeout", "1m", "--shutdown-grace", grace.String()}})
	oldPID := b.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := startBackground(t, b.SSH(ctx, "demo-app", nil, "echo started; exec sleep 60"))
	waitFor(t, 30*time.Second, "the command", func() bool { return cmd.stdout.String() == "started\n" })

	syscall.Kill(oldPID, syscall.SIGHUP)
	served := regexp.MustCompile(`msg="handover: the new process serves" new_pid=([0-9]+)`)
	waitFor(t, time.Minute, "the handover in the log", func() bool {
		return served.MatchString(b.Log()) && strings.Contains(b.Log(), `msg="handover: draining: open sessions run on"`)
	})
	newPID, _ := strconv.Atoi(served.FindStringSubmatch(b.Log())[1])
	t.Cleanup(func() { stopPID(t, newPID) })
	handover := "The bridge is restarting: this session goes on for at most 1m0s; new connections are served by the new process.\n"
	waitFor(t, 10*time.Second, "the handover notice", func() bool { return cmd.stderr.String() == handover })

	stopped := time.Now()
	syscall.Kill(oldPID, syscall.SIGTERM)
	notice := "The bridge is stopping: this session ends in 3 s.\n"
	waitFor(t, grace/2, "the stop notice", func() bool { return cmd.stderr.String() == handover+notice })
	last := "The bridge stopped: this session was ended.\n"
	if code := cmd.wait(t, grace+20*time.Second, "the command"); code != 251 || cmd.stderr.String() != handover+notice+last {
		t.Errorf("the command: code %d, stderr %q; want 251 and three lines", code, cmd.stderr.String())
	}
	if took := cmd.ended.Sub(stopped); took < grace-500*time.Millisecond || took > grace+10*time.Second {
		t.Errorf("the command ended %s after SIGTERM, want about the grace of %s", took, grace)
	}
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit")
	}
	if r := b.Run("demo-app", nil, "echo served"); r.Code != 0 || r.Stdout != "served\n" {
		t.Errorf("the new process after the old one's stop: %+v", r)
	}
}
