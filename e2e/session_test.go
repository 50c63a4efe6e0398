package e2e

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// goClient dials the bridge with x/crypto's client, for request orders the
// OpenSSH client never sends.
func goClient(t *testing.T, b *Bridge, app string) *gossh.Client {
	t.Helper()
	raw, err := os.ReadFile(b.Key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(b.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, hostKey, _, _, err := gossh.ParseKnownHosts(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gossh.Dial("tcp", b.Addr, &gossh.ClientConfig{
		User:            app,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(hostKey),
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ptySession opens a session with an 80x24 terminal, closed when the test ends.
func ptySession(t *testing.T, c *gossh.Client) *gossh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// A window change that comes before exec must neither hang the session nor
// be lost: the one-off starts with the latest size.
func TestResizeBeforeExec(t *testing.T) {
	b := StartBridge(t, Options{})
	s := ptySession(t, goClient(t, b, "demo-app"))
	for _, size := range [][2]int{{30, 100}, {31, 101}, {33, 120}} {
		if err := s.WindowChange(size[0], size[1]); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		defer close(done)
		out, err = s.Output("stty size")
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("session hung after window changes before exec")
	}
	if err != nil {
		t.Fatalf("stty size: %v (%q)", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "33 120" {
		t.Fatalf("stty size = %q, want the latest size 33 120", got)
	}
}

// Two sessions over one ControlMaster connection get two one-offs.
func TestControlMasterTwoSessions(t *testing.T) {
	b := StartBridge(t, Options{})
	sock := filepath.Join(t.TempDir(), "cm")
	master := append(b.SSHArgs(""), "-p", b.Port, "-o", "ControlMaster=yes", "-o", "ControlPath="+sock, "-N", "demo-app@"+b.Host)
	ctx, cancel := context.WithCancel(context.Background())
	m := exec.CommandContext(ctx, need(t, "ssh"), master...)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); m.Wait() })
	run := func(command string) Result {
		args := append(b.SSHArgs(""), "-p", b.Port, "-o", "ControlMaster=no", "-o", "ControlPath="+sock, "demo-app@"+b.Host, command)
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		return runCmd(t, exec.CommandContext(cctx, need(t, "ssh"), args...), nil)
	}
	// Wait for the master: "ssh -O check" answers once it is up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		check := exec.Command(need(t, "ssh"), "-o", "ControlPath="+sock, "-O", "check", "demo-app@"+b.Host)
		if check.Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control master did not come up:\n%s", b.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Each one-off has its own /tmp: a file made in the first is not in the second.
	r1 := run("touch /tmp/first-session && ls /tmp")
	r2 := run("ls /tmp; test ! -e /tmp/first-session")
	if r1.Code != 0 || !strings.Contains(r1.Stdout, "first-session") {
		t.Fatalf("first session: %+v", r1)
	}
	if r2.Code != 0 {
		t.Fatalf("second session saw the first one-off's /tmp: %+v", r2)
	}
	startedRE := regexp.MustCompile(`msg="one-off started".* container=(\S+)`)
	log, _ := b.LogWhen(func(log string) bool { return len(startedRE.FindAllString(log, -1)) >= 2 })
	started := startedRE.FindAllStringSubmatch(log, -1)
	if len(started) != 2 || started[0][1] == started[1][1] {
		t.Fatalf("want two distinct one-offs, log has %v", started)
	}
}

// findProcesses lists the pids whose command line is exactly marker
// (arguments joined by spaces).
func findProcesses(marker string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.TrimSuffix(strings.ReplaceAll(string(raw), "\x00", " "), " ") == marker {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClientKilledLeavesNothing(t *testing.T) {
	b := StartBridge(t, Options{})
	marker := "31337.5"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := b.SSH(ctx, "demo-app", nil, "sleep "+marker+" & sleep "+marker+"; wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "one-off processes running", func() bool { return len(findProcesses("sleep "+marker)) == 2 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitFor(t, 2*time.Second, "one-off processes gone after the client was killed", func() bool { return len(findProcesses("sleep "+marker)) == 0 })
}

// A signal request on a terminal session becomes the control byte, so the
// remote foreground command gets the signal as from a keyboard.
func TestSignalRequestInterrupts(t *testing.T) {
	b := StartBridge(t, Options{})
	s := ptySession(t, goClient(t, b, "demo-app"))
	if err := s.Start("sleep 5151.5"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "sleep running", func() bool { return len(findProcesses("sleep 5151.5")) > 0 })
	if err := s.Signal(gossh.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := s.Wait()
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130", err)
	}
}

// The end of a session goes out as OpenSSH sends it: output, exit-status,
// EOF, close.
func TestTeardownOrder(t *testing.T) {
	b := StartBridge(t, Options{})
	c := goClient(t, b, "demo-app")
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := ch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{"printf last-output; exit 4"}))
	if err != nil || !ok {
		t.Fatalf("exec: %v %v", ok, err)
	}
	out, err := io.ReadAll(ch) // returns at EOF
	if err != nil || string(out) != "last-output" {
		t.Fatalf("output %q, %v", out, err)
	}
	// x/crypto handles a channel's messages in order: at EOF the
	// exit-status must already be queued, and the close not yet seen.
	select {
	case req, open := <-reqs:
		if !open || req.Type != "exit-status" {
			t.Fatalf("at EOF: got %v (open %v), want exit-status first", req, open)
		}
		var st struct{ Status uint32 }
		gossh.Unmarshal(req.Payload, &st)
		if st.Status != 4 {
			t.Fatalf("exit-status %d, want 4", st.Status)
		}
	default:
		t.Fatal("EOF came before exit-status")
	}
	// Then the close: the request channel ends.
	for req := range reqs {
		t.Fatalf("unexpected request after exit-status: %s", req.Type)
	}
	ch.Close()
}
