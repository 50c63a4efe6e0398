package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// sendEnv sends one env request (RFC 4254 section 6.4) with want-reply
// set, and says whether the bridge accepted it.
func sendEnv(t *testing.T, s *gossh.Session, name, value string) bool {
	t.Helper()
	ok, err := s.SendRequest("env", true, gossh.Marshal(struct{ Name, Value string }{name, value}))
	if err != nil {
		t.Fatalf("env %s: %v", name, err)
	}
	return ok
}

// peakRSS is the bridge process's peak resident set (VmHWM) in KiB.
func (b *Bridge) peakRSS(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("VmHWM: %q", line)
			}
			return kib
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// A session keeps at most 128 variables, each name up to 256 bytes and
// value up to 32 KiB, 64 KiB in all; the rest is refused, and the session
// still runs with what was kept.
func TestEnvRequestLimits(t *testing.T) {
	b := StartBridge(t, Options{})
	c := goClient(t, b, "demo-app")

	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if ok, want := sendEnv(t, s, fmt.Sprintf("LC_%d", i), fmt.Sprintf("v%d", i)), i < 128; ok != want {
			t.Fatalf("env request %d: accepted=%v, want %v", i+1, ok, want)
		}
	}
	out, err := s.Output(`printf '%s|%s|' "$LC_127" "${LC_128-unset}"; env | grep -c '^LC_'`)
	if err != nil || string(out) != "v127|unset|128\n" {
		t.Fatalf("session after 200 env requests: %q %v, want the first 128 variables", out, err)
	}

	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"LC_" + strings.Repeat("N", 254), "", false},     // a name of 257 bytes
		{"LC_LONG", strings.Repeat("v", 32<<10+1), false}, // a value over 32 KiB
		{"LC_A", strings.Repeat("a", 32<<10), true},
		{"LC_B", strings.Repeat("b", 32<<10), false}, // 64 KiB in all would be passed
		{"LC_C", strings.Repeat("c", 100), true},
	} {
		if ok := sendEnv(t, s, tc.name, tc.value); ok != tc.want {
			t.Fatalf("env %.20s… (%d bytes): accepted=%v, want %v", tc.name, len(tc.value), ok, tc.want)
		}
	}
	out, err = s.Output(`printf '%s|%s|%s\n' "${#LC_A}" "${LC_B-unset}" "${#LC_C}"`)
	if err != nil || string(out) != "32768|unset|100\n" {
		t.Fatalf("session after large env requests: %q %v", out, err)
	}

	// 1000 requests of 200 KB each: 200 MB that the bridge must not keep.
	// Today's figure without limits is +240 MB of RSS, and more at exec.
	before := b.peakRSS(t)
	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 200_000)
	for i := range 1000 {
		if sendEnv(t, s, fmt.Sprintf("LC_%d", i), big) {
			t.Fatalf("env request %d of 200 KB accepted", i+1)
		}
	}
	out, err = s.Output(`env | grep -c '^LC_'; true`)
	if err != nil || string(out) != "0\n" {
		t.Fatalf("session after 1000 refused env requests: %q %v", out, err)
	}
	if grown := b.peakRSS(t) - before; grown > 64<<10 {
		t.Fatalf("the bridge's peak RSS grew by %d MiB over 200 MB of env requests; want under 64 MiB", grown>>10)
	}
}

// holdKeyOneOff starts ssh with key running a command that says "ready" and
// then waits for its stdin to end. It returns once the one-off runs; closing
// the returned writer ends it, and the channel then gives its result.
func holdKeyOneOff(t *testing.T, b *Bridge, key string) (io.WriteCloser, <-chan Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args := append(b.SSHArgs(key), "-p", b.Port, "-o", "LogLevel=ERROR", "demo-app@"+b.Host, "echo ready; cat >/dev/null; echo bye")
	cmd := exec.CommandContext(ctx, need(t, "ssh"), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	if line, err := rd.ReadString('\n'); err != nil || line != "ready\n" {
		cancel()
		cmd.Wait()
		t.Fatalf("held one-off: %q %v; stderr: %s", line, err, stderr.String())
	}
	done := make(chan Result, 1)
	go func() {
		defer cancel()
		rest, _ := io.ReadAll(rd)
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		done <- Result{Stdout: string(rest), Stderr: stderr.String(), Code: code}
	}()
	t.Cleanup(func() { stdin.Close(); cancel() })
	return stdin, done
}

// One key runs at most --max-one-offs-per-key one-offs at once, whatever
// the connections they come from; the next gets its own line and exit code
// before the platform is asked, other keys are not affected, and a slot
// comes back when a one-off ends.
func TestOneOffsPerKey(t *testing.T) {
	other := clientKey(t, "other-user")
	b := StartBridge(t, Options{
		Args:           []string{"--max-one-offs-per-key", "2"},
		AuthorizedKeys: publicKey(t, clientKey(t, "default")) + "\n" + publicKey(t, other) + "\n",
	})
	first, firstDone := holdKeyOneOff(t, b, "")
	holdKeyOneOff(t, b, "")
	created := strings.Count(b.Log(), `msg="one-off created"`)

	r := b.Run("demo-app", nil, "echo third")
	const msg = "This key already runs 2 one-off containers, the most the bridge allows per key; try again when one has ended.\n"
	if r.Code != 252 || r.Stdout != "" || r.Stderr != msg {
		t.Fatalf("third one-off of the key: %+v, want exit 252 and %q", r, msg)
	}
	if !b.LogHas("exit_code=252") {
		t.Fatal("no log line for the refused one-off")
	}
	if strings.Count(b.Log(), `msg="one-off created"`) != created {
		t.Fatal("the platform was asked for the refused one-off")
	}

	// Another key is not limited by this one's one-offs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(b.SSHArgs(other), "-p", b.Port, "-o", "LogLevel=ERROR", "demo-app@"+b.Host, "echo other")
	if r := runCmd(t, exec.CommandContext(ctx, "ssh", args...), nil); r.Code != 0 || r.Stdout != "other\n" {
		t.Fatalf("another key: %+v", r)
	}

	first.Close()
	if r := <-firstDone; r.Code != 0 || r.Stdout != "bye\n" {
		t.Fatalf("first held one-off: %+v", r)
	}
	if r := b.Run("demo-app", nil, "echo again"); r.Code != 0 || r.Stdout != "again\n" {
		t.Fatalf("after one ended: %+v", r)
	}
}
