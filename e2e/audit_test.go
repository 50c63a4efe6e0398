package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// auditGolden is the audit stream of the scripted day, normalised
// (normaliseAudit). Set UPDATE_GOLDEN=1 to write it from a run.
const auditGolden = "testdata/audit-day.golden"

// TestAuditStreamOfADay drives the built bridge through a day's events
// with real clients: a refused key, an accepted one running a command, an
// upload (legacy scp), its delivery to the next session, and an upload
// refused for its size. Its --audit-log must match the golden file.
func TestAuditStreamOfADay(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	b := StartBridge(t, Options{Args: []string{"--audit-log", auditFile, "--upload-max-file-size", "1K"}})
	closed := 0
	// step runs one client and waits until the bridge logged its
	// connection's end, so that the stream's order is the script's.
	step := func(what string, wantCode int, cmd *exec.Cmd) {
		t.Helper()
		r := runCmd(t, cmd, nil)
		if r.Code != wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s", what, r.Code, wantCode, r.Stderr)
		}
		closed++
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(readAudit(t, auditFile), `"event":"connection","action":"close"`) < closed {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the connection's close is not in the audit stream:\n%s", what, readAudit(t, auditFile))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ssh := func(key string, command ...string) *exec.Cmd {
		args := append(b.SSHArgs(key), "-p", b.Port, "-o", "LogLevel=ERROR", "demo-app@"+b.Host)
		return exec.Command(need(t, "ssh"), append(args, command...)...)
	}
	dir := localTree(t, map[string][]byte{"notes.txt": []byte("hello\n"), "big.bin": []byte(strings.Repeat("x", 2048))})
	for _, f := range []string{"notes.txt", "big.bin"} {
		if err := os.Chmod(filepath.Join(dir, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scp := func(file string) *exec.Cmd {
		args := append(b.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", b.Port, "-O", file, "demo-app@"+b.Host+":")
		cmd := exec.Command(need(t, "scp"), args...)
		cmd.Dir = dir
		return cmd
	}

	step("a key the bridge does not know", 255, ssh(clientKey(t, "stranger"), "true"))
	step("a command", 0, ssh("", "echo hi"))
	step("an upload", 0, scp("notes.txt"))
	step("the session it is delivered to", 0, ssh("", "cat /tmp/uploads/notes.txt"))
	step("an upload past the size limit", 1, scp("big.bin"))

	got := normaliseAudit(t, readAudit(t, auditFile))
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(auditGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readAudit(t, auditGolden)
	if got != want {
		t.Fatalf("audit stream (normalised):\n%s\nwant (%s):\n%s", got, auditGolden, want)
	}
}

func readAudit(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var portRE = regexp.MustCompile(`:\d+$`)

// normaliseAudit checks that each line is one JSON object with a time,
// then replaces what changes from run to run: the time, the connection
// ids (C1, C2, ... in order of appearance), the client's port and the
// durations. The order of the fields stays the bridge's.
func normaliseAudit(t *testing.T, stream string) string {
	t.Helper()
	conns := map[string]string{}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(stream, "\n"), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("audit line is not one JSON object: %v\n%s", err, line)
		}
		ts, _ := obj["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("audit line's time %q: %v", ts, err)
		}
		line = replaceField(line, "time", `"T"`)
		if c, ok := obj["conn"].(string); ok {
			if conns[c] == "" {
				conns[c] = fmt.Sprintf("C%d", len(conns)+1)
			}
			line = replaceField(line, "conn", `"`+conns[c]+`"`)
		}
		if r, ok := obj["remote"].(string); ok {
			line = replaceField(line, "remote", `"`+portRE.ReplaceAllString(r, ":PORT")+`"`)
		}
		if _, ok := obj["duration_ms"]; ok {
			line = replaceField(line, "duration_ms", "0")
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

// replaceField replaces the JSON value of the top-level field name in
// line, an object of strings and numbers.
func replaceField(line, name, value string) string {
	re := regexp.MustCompile(`"` + name + `":("(?:[^"\\]|\\.)*"|-?[0-9.]+)`)
	return re.ReplaceAllString(line, `"`+name+`":`+value)
}
