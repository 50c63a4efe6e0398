package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// castEvent is one event line of an asciicast v2 file.
type castEvent struct {
	Time float64
	Kind string
	Data string
}

// readCast parses an asciicast v2 file line by line: a header object with
// version 2, then [time, kind, data] events with times that never go back.
func readCast(t *testing.T, file string) (map[string]any, []castEvent) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		t.Fatalf("%s does not end with a whole line:\n%s", file, raw)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	sc.Scan()
	var header map[string]any
	if err := json.Unmarshal(sc.Bytes(), &header); err != nil || header["version"] != 2.0 {
		t.Fatalf("%s: header %q: %v", file, sc.Bytes(), err)
	}
	var events []castEvent
	last := 0.0
	for sc.Scan() {
		var e [3]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: event %q: %v", file, sc.Bytes(), err)
		}
		tm, ok1 := e[0].(float64)
		kind, ok2 := e[1].(string)
		data, ok3 := e[2].(string)
		if !ok1 || !ok2 || !ok3 || tm < last {
			t.Fatalf("%s: event %q: want [time, kind, data] with times in order", file, sc.Bytes())
		}
		last = tm
		events = append(events, castEvent{tm, kind, data})
	}
	return header, events
}

func castData(events []castEvent, kind string) string {
	var b strings.Builder
	for _, e := range events {
		if e.Kind == kind {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// recordings lists the files in the recording directory.
func recordings(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(dir, e.Name()))
	}
	return files
}

// asciinemaCat is what `asciinema cat file` prints: the recording's output
// as a player replays it. asciinema wants a terminal, which script(1)
// gives it.
func asciinemaCat(t *testing.T, file string) string {
	t.Helper()
	asciinema := need(t, "asciinema")
	out, err := exec.Command(need(t, "script"), "-qec", asciinema+" cat "+file, "/dev/null").Output()
	if err != nil {
		t.Fatalf("asciinema cat %s: %v", file, err)
	}
	return string(out)
}

// TestRecordingPlaysBackOutput: a terminal session of a matching app is
// recorded, and the recording's output, read back by asciinema, is exactly
// what the client received, multi-byte characters cut across reads
// included; no input is recorded unless asked; sessions of apps the
// patterns exclude or do not name, and sessions without a pty, are not
// recorded.
func TestRecordingPlaysBackOutput(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--record-apps", "demo-*,!demo-secret"}})
	dir := filepath.Join(b.DataDir, "recordings")

	// A shell on a terminal (-tt: stdin is a pipe here): what is typed
	// is echoed by the one-off's terminal, so it is output too.
	shell := runCmd(t, b.SSH(t.Context(), "demo-app", []string{"-tt"}), strings.NewReader("echo typed-$((6*7))\nexit 3\n"))
	if shell.Code != 3 || !strings.Contains(shell.Stdout, "typed-42") {
		t.Fatalf("shell: exit %d, stdout %q, stderr %q", shell.Code, shell.Stdout, shell.Stderr)
	}
	files := recordings(t, dir)
	if len(files) != 1 {
		t.Fatalf("recordings after one session: %v", files)
	}
	log, _ := b.LogWhen(func(log string) bool { return strings.Contains(log, "recording to file") })
	conn := regexp.MustCompile(`msg="recording to file" conn=([0-9a-f]+) .* file=(\S+)`).FindStringSubmatch(log)
	if conn == nil || conn[2] != files[0] {
		t.Fatalf("no log line naming %s:\n%s", files[0], log)
	}
	if want := regexp.MustCompile(`^demo-app-\d{8}T\d{6}Z-` + conn[1] + `-1\.cast$`); !want.MatchString(filepath.Base(files[0])) {
		t.Fatalf("file name %s, want app, time, connection %s and session number", filepath.Base(files[0]), conn[1])
	}
	header, events := readCast(t, files[0])
	if got := castData(events, "o"); got != shell.Stdout {
		t.Fatalf("recorded output\n%q\nclient received\n%q", got, shell.Stdout)
	}
	if got := castData(events, "i"); got != "" {
		t.Fatalf("input recorded without --record-input: %q", got)
	}
	if header["width"] != 80.0 || header["height"] != 24.0 || header["title"] != "demo-app" {
		t.Fatalf("header %v", header)
	}
	if env, _ := header["env"].(map[string]any); env["TERM"] == nil || env["SHELL"] != "bash" {
		t.Fatalf("header env %v", header["env"])
	}
	for p, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, files[0]: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v, %v; want mode %v", p, fi.Mode(), err, want)
		}
	}

	// An exec on a terminal writing ~900 KB of multi-byte characters:
	// the copy's reads cut characters in two.
	cmd := `yes 'héllo wörld ✓ 😀 ё' | head -n 30000; echo END`
	big := runCmd(t, b.SSH(t.Context(), "demo-tools", []string{"-tt"}, cmd), strings.NewReader(""))
	if big.Code != 0 || !strings.HasSuffix(big.Stdout, "END\r\n") {
		t.Fatalf("exec: exit %d, %d bytes, stderr %q", big.Code, len(big.Stdout), big.Stderr)
	}
	var bigFile string
	for _, f := range recordings(t, dir) {
		if strings.HasPrefix(filepath.Base(f), "demo-tools-") {
			bigFile = f
		}
	}
	if bigFile == "" {
		t.Fatalf("no recording of demo-tools: %v", recordings(t, dir))
	}
	header, events = readCast(t, bigFile)
	if header["command"] != cmd {
		t.Fatalf("header command %v, want %q", header["command"], cmd)
	}
	if got := castData(events, "o"); got != big.Stdout {
		t.Fatalf("recorded output (%d bytes) differs from what the client received (%d bytes)", len(got), len(big.Stdout))
	}
	if len(events) < 3 {
		t.Fatalf("%d events for %d bytes: the copy was not cut", len(events), len(big.Stdout))
	}
	// asciinema itself plays both back.
	if got := asciinemaCat(t, files[0]); got != shell.Stdout {
		t.Fatalf("asciinema cat printed\n%q\nclient received\n%q", got, shell.Stdout)
	}
	if got := asciinemaCat(t, bigFile); got != big.Stdout {
		t.Fatalf("asciinema cat printed %d bytes, the client received %d", len(got), len(big.Stdout))
	}

	// Not recorded: an excluded app, an app no pattern names, a session
	// without a pty.
	before := len(recordings(t, dir))
	for _, c := range []struct {
		app   string
		extra []string
	}{{"demo-secret", []string{"-tt"}}, {"other-app", []string{"-tt"}}, {"demo-app", nil}} {
		r := runCmd(t, b.SSH(t.Context(), c.app, c.extra, "echo not-recorded"), strings.NewReader(""))
		if r.Code != 0 || !strings.Contains(r.Stdout, "not-recorded") {
			t.Fatalf("%s %v: exit %d, stdout %q, stderr %q", c.app, c.extra, r.Code, r.Stdout, r.Stderr)
		}
	}
	if !b.LogHas(`app=demo-app kind=exec`) {
		t.Fatalf("the sessions did not run:\n%s", b.Log())
	}
	if after := recordings(t, dir); len(after) != before {
		t.Fatalf("sessions that must not be recorded were: %v", after)
	}
	if n := strings.Count(b.Log(), "recording to file"); n != 2 {
		t.Fatalf("%d sessions logged as recorded, want 2:\n%s", n, b.Log())
	}
}

// TestRecordingInput: with --record-input, what the client sent is
// recorded as input events, exactly.
func TestRecordingInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "casts")
	b := StartBridge(t, Options{Args: []string{"--record-apps", "*"}, Env: []string{"BRIDGE_RECORD_DIR=" + dir, "BRIDGE_RECORD_INPUT=true"}})
	typed := "echo héllo-$((6*7))\nexit 4\n"
	r := runCmd(t, b.SSH(t.Context(), "demo-app", []string{"-tt"}), strings.NewReader(typed))
	if r.Code != 4 || !strings.Contains(r.Stdout, "héllo-42") {
		t.Fatalf("shell: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	files := recordings(t, dir)
	if len(files) != 1 {
		t.Fatalf("recordings in --record-dir: %v", files)
	}
	_, events := readCast(t, files[0])
	if got := castData(events, "i"); got != typed {
		t.Fatalf("recorded input %q, client sent %q", got, typed)
	}
	if got := castData(events, "o"); got != r.Stdout {
		t.Fatalf("recorded output\n%q\nclient received\n%q", got, r.Stdout)
	}
}

// TestRecordingSurvivesKill: a bridge killed with SIGKILL in the middle of
// an interactive session leaves a recording that parses, with the output
// and the window change recorded until then.
func TestRecordingSurvivesKill(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--record-apps", "demo-app"}})
	sshCmd := append([]string{need(t, "ssh")}, b.SSHArgs("")...)
	sshCmd = append(sshCmd, "-t", "-p", b.Port, "demo-app@"+b.Host)
	ts := newTmux(t, 80, 24, shellJoin(sshCmd)+"; sleep 600")
	ts.waitScreen("Starting one-off container for demo-app... done in", 30*time.Second)
	ts.send("echo MARK-$((6*7))", "Enter")
	ts.waitScreen("MARK-42", 30*time.Second)
	ts.run("resize-window", "-t", ts.name, "-x", "100", "-y", "30")
	ts.send("clear; stty size", "Enter")
	ts.waitScreen("30 100", 10*time.Second)

	files := recordings(t, filepath.Join(b.DataDir, "recordings"))
	if len(files) != 1 {
		t.Fatalf("recordings: %v", files)
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	header, events := readCast(t, files[0])
	out := castData(events, "o")
	if !strings.Contains(out, "MARK-42") || !strings.Contains(out, "30 100") {
		t.Fatalf("recording after SIGKILL lacks the session's output:\n%q", out)
	}
	if header["width"] != 80.0 || header["height"] != 24.0 {
		t.Fatalf("header size %vx%v, want 80x24", header["width"], header["height"])
	}
	var sizes []string
	for _, e := range events {
		if e.Kind == "r" {
			sizes = append(sizes, e.Data)
		}
	}
	if fmt.Sprint(sizes) != "[100x30]" {
		t.Fatalf("resize events %v, want [100x30]", sizes)
	}
	if got := asciinemaCat(t, files[0]); got != out {
		t.Fatalf("asciinema cat printed\n%q\nwant\n%q", got, out)
	}
}

// TestCheckRecordDir: bridge check finds a recording directory that cannot
// be made, naming the setting, and makes none when it can be.
func TestCheckRecordDir(t *testing.T) {
	dir, ak, data := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
	hostKey := clientKey(t, "other-user")
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, []string{"BRIDGE_RECORD_DIR=" + filepath.Join(notDir, "casts")}, "check", "--authorized-keys", ak,
		"--data-dir", data, "--host-key", hostKey, "--record-apps", "demo-*")
	if r.Code != 1 || !strings.Contains(r.Stderr, "BRIDGE_RECORD_DIR: ") || !strings.Contains(r.Stderr, "not a directory") {
		t.Fatalf("bridge check with a recording directory under a file: %+v", r)
	}
	r = runBinary(t, nil, "check", "--authorized-keys", ak, "--data-dir", data, "--host-key", hostKey, "--record-apps", "demo-*")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("bridge check with the default recording directory: %+v", r)
	}
	emptyDir(t, data)
}

// TestRecordingConnectionMode: a shell in connection mode is recorded as
// one in per-session mode: the output as the client received it, and the
// input with --record-input; the one-off's agent connection itself is not.
func TestRecordingConnectionMode(t *testing.T) {
	b := startConnBridge(t, Options{Args: []string{"--record-apps", "demo-app", "--record-input"}})
	dir := filepath.Join(b.DataDir, "recordings")
	typed := "echo conn-$((6*7))\nexit 6\n"
	r := runCmd(t, b.SSH(t.Context(), "demo-app+conn", []string{"-tt"}), strings.NewReader(typed))
	if r.Code != 6 || !strings.Contains(r.Stdout, "conn-42") {
		t.Fatalf("shell: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if !b.LogHas("connection mode: session relayed") {
		t.Fatalf("the session did not run in connection mode:\n%s", b.Log())
	}
	files := recordings(t, dir)
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), "demo-app-") {
		t.Fatalf("recordings: %v", files)
	}
	_, events := readCast(t, files[0])
	if got := castData(events, "o"); got != r.Stdout {
		t.Fatalf("recorded output\n%q\nclient received\n%q", got, r.Stdout)
	}
	if got := castData(events, "i"); got != typed {
		t.Fatalf("recorded input %q, client sent %q", got, typed)
	}
}
