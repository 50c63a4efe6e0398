package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// A command is logged once, cut to its first 1 KiB, with its full length:
// a 200 KB command costs the log a few KiB, not three copies of itself.
func TestCommandLoggedOnceAndCut(t *testing.T) {
	b := StartBridge(t, Options{})
	before := len(b.Log())
	// Four arguments, which ssh joins with spaces: the kernel takes no
	// single argument of 200 KB.
	part := strings.Repeat("x", 51_200)
	command := strings.Join([]string{"echo", part, part, part, part}, " ")
	r := b.Run("demo-app", nil, "echo", part, part, part, part)
	// The embedded platform takes commands up to 100 KiB.
	if r.Code != 247 {
		t.Fatalf("200 KB command: %+v, want the platform's refusal (247)", r)
	}
	log, ok := b.LogWhen(func(log string) bool { return strings.Contains(log[before:], `msg="session end"`) })
	if !ok {
		t.Fatal("no session end in the log")
	}
	grown := log[before:]
	if len(grown) > 16<<10 {
		t.Fatalf("a 200 KB command made %d bytes of log; want under 16 KiB", len(grown))
	}
	start := regexp.MustCompile(`msg="session start" conn=\S+ remote=\S+ user=SHA256:\S+ app=demo-app kind=exec command=` +
		regexp.QuoteMeta(strconv.Quote(command[:1024])) + ` command_bytes=` + strconv.Itoa(len(command)) + "\n")
	if n := len(start.FindAllString(grown, -1)); n != 1 {
		t.Fatalf("%d session start lines with the command's first 1 KiB and its length, want 1; the log:\n%.4000s", n, grown)
	}
	if n := strings.Count(grown, strings.Repeat("x", 1000)); n != 1 {
		t.Fatalf("the command is in the log %d times, want once", n)
	}
}

// A flood of refused requests on one connection makes a few log lines and
// a count, not a line each.
func TestRefusalsLogRateLimited(t *testing.T) {
	b := StartBridge(t, Options{})
	c := goClient(t, b, "demo-app")
	const globals, x11s = 10_000, 1_000
	for i := range globals {
		payload := gossh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", uint32(1024 + i)})
		// The last one waits for its answer: the bridge answers global
		// requests in order, so all of them were handled by then.
		if ok, _, err := c.SendRequest("tcpip-forward", i == globals-1, payload); ok || err != nil {
			t.Fatalf("tcpip-forward %d: ok=%v err=%v", i, ok, err)
		}
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	x11 := gossh.Marshal(struct {
		Single           bool
		Protocol, Cookie string
		Screen           uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})
	for i := range x11s {
		if ok, err := s.SendRequest("x11-req", true, x11); ok || err != nil {
			t.Fatalf("x11-req %d: ok=%v err=%v", i, ok, err)
		}
	}
	// The session still works.
	if out, err := s.Output("echo fine"); err != nil || string(out) != "fine\n" {
		t.Fatalf("session after the refusals: %q %v", out, err)
	}
	c.Close()

	summary := regexp.MustCompile(`msg="refusals not logged" conn=\S+ remote=\S+ user=SHA256:\S+ app=demo-app refusal="refused forwarding" count=(\d+)\n`)
	count := func(log string) (lines, summed int) {
		lines = strings.Count(log, `msg="refused forwarding"`)
		for _, m := range summary.FindAllStringSubmatch(log, -1) {
			n, _ := strconv.Atoi(m[1])
			summed += n
		}
		return lines, summed
	}
	log, ok := b.LogWhen(func(log string) bool { lines, summed := count(log); return lines+summed == globals+x11s })
	lines, summed := count(log)
	if !ok {
		t.Fatalf("%d refusals logged and %d counted in summaries, want %d in all", lines, summed, globals+x11s)
	}
	if lines > 10 {
		t.Fatalf("%d lines for %d refusals; want the first 10 only", lines, globals+x11s)
	}
	if n := len(summary.FindAllString(log, -1)); n < 1 || n > 3 {
		t.Fatalf("%d summary lines, want 1 to 3", n)
	}
}
