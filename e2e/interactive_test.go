package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxSession drives an interactive ssh in a real terminal emulator.
type tmuxSession struct {
	t      *testing.T
	socket string
	name   string
}

func newTmux(t *testing.T, cols, rows int, command string) *tmuxSession {
	t.Helper()
	need(t, "tmux")
	ts := &tmuxSession{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock"), name: "bridge"}
	ts.run("new-session", "-d", "-s", ts.name, "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows), command)
	t.Cleanup(func() { exec.Command("tmux", "-S", ts.socket, "kill-server").Run() })
	return ts
}

func (ts *tmuxSession) run(args ...string) string {
	ts.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", ts.socket}, args...)...).CombinedOutput()
	if err != nil {
		ts.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (ts *tmuxSession) screen() string {
	out, _ := exec.Command("tmux", "-S", ts.socket, "capture-pane", "-p", "-t", ts.name).CombinedOutput()
	return string(out)
}

func (ts *tmuxSession) send(keys ...string) {
	ts.t.Helper()
	ts.run(append([]string{"send-keys", "-t", ts.name}, keys...)...)
}

// waitScreen waits until the screen shows want.
func (ts *tmuxSession) waitScreen(want string, within time.Duration) {
	ts.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(ts.screen(), want) {
		if time.Now().After(deadline) {
			ts.t.Fatalf("screen never showed %q; it shows:\n%s", want, ts.screen())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestInteractiveShell(t *testing.T) {
	b := StartBridge(t, Options{})
	exitFile := filepath.Join(t.TempDir(), "exit")
	sshCmd := append([]string{need(t, "ssh")}, b.SSHArgs("")...)
	sshCmd = append(sshCmd, "-t", "-p", b.Port, "demo-app@"+b.Host)
	command := fmt.Sprintf("%s; echo $? > %s; sleep 600", shellJoin(sshCmd), exitFile)
	ts := newTmux(t, 80, 24, command)

	ts.waitScreen("Starting one-off container for demo-app... done in", 30*time.Second)
	// Arithmetic the shell must do proves a live shell, not an echo.
	ts.send("echo READY-$((6*7))", "Enter")
	ts.waitScreen("READY-42", 30*time.Second)

	ts.send("stty size", "Enter")
	ts.waitScreen("24 80", 10*time.Second)
	ts.run("resize-window", "-t", ts.name, "-x", "100", "-y", "30")
	ts.send("clear; stty size", "Enter")
	ts.waitScreen("30 100", 10*time.Second)

	ts.send("sleep 4242.5", "Enter")
	waitFor(t, 10*time.Second, "sleep started", func() bool { return len(findProcesses("sleep 4242.5")) > 0 })
	ts.send("C-c")
	waitFor(t, 5*time.Second, "sleep interrupted by Ctrl-C", func() bool { return len(findProcesses("sleep 4242.5")) == 0 })
	ts.send("echo AFTER-$((1+1))", "Enter")
	ts.waitScreen("AFTER-2", 10*time.Second)

	ts.send("exit 5", "Enter")
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := os.ReadFile(exitFile)
		if err == nil && strings.TrimSpace(string(raw)) != "" {
			if got := strings.TrimSpace(string(raw)); got != "5" {
				t.Fatalf("ssh exit code %s, want 5", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh did not exit after 'exit 5'; screen:\n%s", ts.screen())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// shellJoin quotes args for /bin/sh.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
