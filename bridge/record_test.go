package bridge

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// castEvents reads the events of an asciicast v2 file as [time, kind,
// data] triples, past its header line.
func castEvents(t *testing.T, file string) [][3]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	var events [][3]any
	for sc.Scan() {
		var e [3]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event %q: %v", sc.Bytes(), err)
		}
		events = append(events, e)
	}
	return events
}

func castData(events [][3]any, kind string) string {
	var b strings.Builder
	for _, e := range events {
		if e[1] == kind {
			b.WriteString(e[2].(string))
		}
	}
	return b.String()
}

// TestRecordConnectionMode: a terminal session relayed to the agent is
// recorded as one in its own one-off is: output as the client got it,
// input, and the window change the agent took.
func TestRecordConnectionMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	b := startConnBridge(t, Config{RecordApps: []string{"demo-*"}, RecordDir: dir, RecordInput: true}, "")
	c := b.dial(t, "demo-app+conn")

	// Without a pty: not recorded.
	if o, _, code := output(t, c, "echo plain"); code != 0 || o != "plain\n" {
		t.Fatalf("exec without pty: %d %q", code, o)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a session without a pty was recorded: %v", entries)
	}

	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := s.StdinPipe()
	var out strings.Builder
	s.Stdout = &out
	if err := s.Start(`read line; printf 'got %s\n' "$line"; stty size`); err != nil {
		t.Fatal(err)
	}
	var file string
	waitFor(t, "the recording", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "demo-app-*-1.cast"))
		if len(m) == 1 {
			file = m[0]
		}
		return file != ""
	})
	if err := s.WindowChange(30, 100); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resize event", func() bool { return castData(castEvents(t, file), "r") == "100x30" })
	stdin.Write([]byte("héllo\n"))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "got héllo") || !strings.Contains(out.String(), "30 100") {
		t.Fatalf("client got %q", out.String())
	}
	// The recording is closed before the exit status goes to the client.
	events := castEvents(t, file)
	if got := castData(events, "o"); got != out.String() {
		t.Fatalf("recorded output\n%q\nclient got\n%q", got, out.String())
	}
	if got := castData(events, "i"); got != "héllo\n" {
		t.Fatalf("recorded input %q", got)
	}
	if !strings.Contains(b.logs.String(), "recording to file") {
		t.Fatalf("no log line for the recording:\n%s", b.logs.String())
	}
}

func TestRecordConfig(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{RecordApps: []string{"demo-*", "!demo-secret"}, RecordDir: "/r"}, true},
		{Config{RecordApps: []string{"demo-*"}}, false},
		{Config{RecordApps: []string{"!"}, RecordDir: "/r"}, false},
		{Config{RecordApps: []string{"demo-["}, RecordDir: "/r"}, false},
		{Config{RecordDir: "/r"}, true},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%v %q: Validate() = %v", c.cfg.RecordApps, c.cfg.RecordDir, err)
		}
	}
}
