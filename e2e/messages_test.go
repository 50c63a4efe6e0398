package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// What a user reads on stderr: progress, refusals and the bridge's own ends.

// A shell session on a terminal shows the one-off's start time in tenths
// of a second, as the README shows it ("done in 0.4 s").
func TestProgressInTenthsOfASecond(t *testing.T) {
	b := StartBridge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt"}), strings.NewReader("exit\n"))
	progress := regexp.MustCompile(`^Starting one-off container for demo-app\.\.\. done in [0-9]+\.[0-9] s\r\n$`)
	if r.Code != 0 || !progress.MatchString(r.Stderr) {
		t.Fatalf("got %+v, want stderr matching %s", r, progress)
	}
}

// A user name that is no app name gets a sentence saying what app names
// are and exit code 250, before any call to the platform, and the same
// answer whatever the key may use: it tells nothing about the apps.
func TestInvalidAppName(t *testing.T) {
	other := clientKey(t, "apps-nothing")
	b := StartBridge(t, Options{AuthorizedKeys: keyLine(t, "") + `apps="nothing" ` + publicKey(t, other) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"Demo-App", "demo_app", "demo.app", ""} {
		// OpenSSH takes an empty user name from -l, not from "@host".
		dest := []string{name + "@" + b.Host}
		if name == "" {
			dest = []string{"-l", "", b.Host}
		}
		want := fmt.Sprintf("%q is not a valid app name: app names are "+
			"1 to 64 lowercase letters, digits and dashes, starting with a letter or a digit.\n", name)
		for _, key := range []string{b.Key, other} {
			args := append(b.SSHArgs(key), "-p", b.Port, "-o", "LogLevel=ERROR")
			args = append(append(args, dest...), "echo in")
			r := runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
			if r.Code != 250 || r.Stderr != want || r.Stdout != "" {
				t.Errorf("user %q, key %s: %+v, want 250 and %q", name, key, r, want)
			}
		}
	}
	ended := regexp.MustCompile(`msg="session end" .* exit_code=250\n`)
	log, _ := b.LogWhen(func(log string) bool { return len(ended.FindAllString(log, -1)) == 8 })
	if n := len(ended.FindAllString(log, -1)); n != 8 {
		t.Errorf("%d sessions logged their end with exit code 250, want 8:\n%s", n, log)
	}
	if strings.Count(log, `reason="not a valid app name"`) != 4 {
		t.Errorf("the key that may use every app is not logged as refused for the name:\n%s", log)
	}
	if strings.Contains(log, "component=oneoff") || strings.Contains(log, "one-off created") {
		t.Errorf("the platform was called:\n%s", log)
	}
}

// background is a client command left running, its output kept.
type background struct {
	stdin          io.WriteCloser
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
	ended          time.Time
}

func startBackground(t *testing.T, cmd *exec.Cmd) *background {
	t.Helper()
	bg := &background{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = bg.stdout, bg.stderr
	var err error
	if bg.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(bg.done)
		err := cmd.Wait()
		bg.ended = time.Now()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			bg.code = exit.ExitCode()
		} else if err != nil {
			bg.code = -1
		}
	}()
	return bg
}

// wait waits for the command's end and returns its exit code.
func (bg *background) wait(t *testing.T, within time.Duration, what string) int {
	t.Helper()
	select {
	case <-bg.done:
		return bg.code
	case <-time.After(within):
		t.Fatalf("%s still running after %s; stderr: %q", what, within, bg.stderr.String())
		return 0
	}
}

// SIGTERM with sessions open: each is told at once when it will be ended,
// new connections and sessions are refused, a session that ends by itself
// during the grace ends as usual, and at the end of the grace the others get
// a last line and exit code 251 (exit-status, EOF, close). The bridge's log
// ends with "bridge stopped".
func TestShutdownTellsSessions(t *testing.T) {
	const grace = 6 * time.Second
	b := StartBridge(t, Options{Args: []string{"--shutdown-grace", grace.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A shell on a terminal.
	shell := startBackground(t, b.SSH(ctx, "demo-app", []string{"-tt"}))
	io.WriteString(shell.stdin, "echo READY-$((6*7))\n")
	waitFor(t, 30*time.Second, "the shell", func() bool { return strings.Contains(shell.stdout.String(), "READY-42") })
	// A running command.
	sleeper := startBackground(t, b.SSH(ctx, "demo-app", nil, "echo started; exec sleep 60"))
	waitFor(t, 30*time.Second, "the command", func() bool { return sleeper.stdout.String() == "started\n" })
	// A command that ends by itself during the grace.
	reader := startBackground(t, b.SSH(ctx, "demo-app", nil, "echo waiting; read line; echo got-$line"))
	waitFor(t, 30*time.Second, "the reader", func() bool { return reader.stdout.String() == "waiting\n" })
	// x/crypto's client, to see the wire order, with an idle connection
	// beside it.
	c := goClient(t, b, "demo-app")
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{"echo started; exec sleep 60"})); !ok || err != nil {
		t.Fatalf("exec: %v %v", ok, err)
	}
	if started := make([]byte, 8); !readFull(ch, started) || string(started) != "started\n" {
		t.Fatalf("exec output: %q", started)
	}
	chStderr := &syncBuffer{}
	stderrDone := make(chan struct{})
	go func() { io.Copy(chStderr, ch.Stderr()); close(stderrDone) }()
	idle := goClient(t, b, "demo-app")
	// Answered only once the bridge has the connection as authenticated: a
	// connection still authenticating is left open, to have its session
	// refused with a reason.
	if _, _, err := idle.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	idleClosed := make(chan struct{})
	go func() { idle.Wait(); close(idleClosed) }()

	stopped := time.Now()
	b.cmd.Process.Signal(syscall.SIGTERM)
	notice := "The bridge is stopping: this session ends in 6 s."
	waitFor(t, grace/2, "the notice on every session", func() bool {
		return strings.HasSuffix(shell.stderr.String(), "\r\n"+notice+"\r\n") &&
			sleeper.stderr.String() == notice+"\n" && reader.stderr.String() == notice+"\n" &&
			chStderr.String() == notice+"\n"
	})
	select {
	case <-idleClosed:
	case <-time.After(grace / 2):
		t.Fatal("the idle connection is still open")
	}
	if r := b.Run("demo-app", nil, "true"); r.Code != 255 || !strings.Contains(r.Stderr, "Connection refused") {
		t.Errorf("a new connection: %+v, want it refused", r)
	}
	if _, err := c.NewSession(); err == nil || !strings.Contains(err.Error(), "the bridge is stopping") {
		t.Errorf("a new session: %v, want it refused", err)
	}
	io.WriteString(reader.stdin, "x\n")
	if code := reader.wait(t, grace/2, "the reader"); code != 0 || reader.stdout.String() != "waiting\ngot-x\n" {
		t.Errorf("the reader: code %d, stdout %q, want 0 and its output", code, reader.stdout.String())
	}
	if reader.ended.Sub(stopped) >= grace {
		t.Errorf("the reader ended %s after SIGTERM, not by itself", reader.ended.Sub(stopped))
	}

	last := "The bridge stopped: this session was ended."
	if code := sleeper.wait(t, grace+20*time.Second, "the command"); code != 251 || sleeper.stderr.String() != notice+"\n"+last+"\n" {
		t.Errorf("the command: code %d, stderr %q, want 251 and two lines", code, sleeper.stderr.String())
	}
	if sleeper.ended.Sub(stopped) < grace {
		t.Errorf("the command was ended %s after SIGTERM, before the grace of %s", sleeper.ended.Sub(stopped), grace)
	}
	progress := regexp.MustCompile(`^Starting one-off container for demo-app\.\.\. done in [0-9]+\.[0-9] s\r\n`)
	code := shell.wait(t, 20*time.Second, "the shell")
	if rest := progress.ReplaceAllString(shell.stderr.String(), ""); code != 251 || rest != "\r\n"+notice+"\r\n\r\n"+last+"\r\n" {
		t.Errorf("the shell: code %d, stderr %q, want 251 and two lines", code, shell.stderr.String())
	}
	// The end in the order of RFC 4254 section 6.10: at EOF the exit-status
	// is already queued, and the close comes after it.
	eof := make(chan struct{})
	go func() { io.ReadAll(ch); close(eof) }()
	select {
	case <-eof:
	case <-time.After(20 * time.Second):
		t.Fatal("no EOF on the x/crypto session")
	}
	select {
	case req, open := <-reqs:
		var st struct{ Status uint32 }
		if !open || req.Type != "exit-status" || gossh.Unmarshal(req.Payload, &st) != nil || st.Status != 251 {
			t.Errorf("at EOF: %v (open %v), want exit-status 251", req, open)
		}
	default:
		t.Error("EOF came before exit-status")
	}
	for req := range reqs {
		t.Errorf("request after exit-status: %s", req.Type)
	}
	<-stderrDone // at EOF, as stdout
	if chStderr.String() != notice+"\n"+last+"\n" {
		t.Errorf("x/crypto session's stderr: %q", chStderr.String())
	}

	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not exit")
	}
	lines := strings.Split(strings.TrimSuffix(b.Log(), "\n"), "\n")
	if !strings.Contains(lines[len(lines)-1], `msg="bridge stopped"`) {
		t.Errorf("the log ends with %q, want the stopped line", lines[len(lines)-1])
	}
}
