package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDebugListener: --debug-listen serves /debug/stats and Go's
// profiles; a session's one-off shows in the stats while it runs; at a
// handover the listener passes on, so that the address answers from the
// new process once the old one has exited.
func TestDebugListener(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--debug-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}})
	re := regexp.MustCompile(`msg="debug listening" addr=(\S+)`)
	log, ok := b.LogWhen(func(log string) bool { return re.MatchString(log) })
	if !ok {
		t.Fatalf("no debug listening line in the log:\n%s", log)
	}
	addr := re.FindStringSubmatch(log)[1]
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("debug listener on %s", addr)
	}
	stats := func() map[string]any {
		t.Helper()
		code, body := httpGet(t, "http://"+addr+"/debug/stats?gc=1")
		var m map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("GET /debug/stats?gc=1: %d %q", code, body)
		}
		return m
	}
	idle := stats()
	for _, k := range []string{"open_fds", "goroutines", "heap_objects_bytes", "heap_live_bytes", "threads", "rss_bytes"} {
		if v, ok := idle[k].(float64); !ok || v <= 0 {
			t.Errorf("/debug/stats: %s = %v, want a positive number: %v", k, idle[k], idle)
		}
	}
	if idle["gc"] != true {
		t.Errorf("/debug/stats?gc=1: gc = %v", idle["gc"])
	}
	// A session held open: its connection, attach stream and one-off
	// cost the bridge descriptors and goroutines.
	c := goClient(t, b, "demo-app")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.Start("echo up; read x"); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Read(make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	busy := stats()
	if busy["open_fds"].(float64) <= idle["open_fds"].(float64) || busy["goroutines"].(float64) <= idle["goroutines"].(float64) {
		t.Errorf("a session open: %v; idle: %v", busy, idle)
	}
	in.Close()
	s.Wait()
	c.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/cmdline":           "--debug-listen",
	} {
		if code, body := httpGet(t, "http://"+addr+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want %q in %.300q", path, code, want, body)
		}
	}

	oldPID := b.cmd.Process.Pid
	syscall.Kill(oldPID, syscall.SIGHUP)
	served := regexp.MustCompile(`msg="handover: the new process serves" new_pid=([0-9]+)`)
	waitFor(t, time.Minute, "the handover in the log", func() bool { return served.MatchString(b.Log()) })
	newPID, _ := strconv.Atoi(served.FindStringSubmatch(b.Log())[1])
	t.Cleanup(func() { stopPID(t, newPID) })
	waitFor(t, time.Minute, "the old process's exit", func() bool { return !alive(oldPID) })
	if after := stats(); after["open_fds"].(float64) <= 0 {
		t.Errorf("after the handover: %v", after)
	}
	if code, body := httpGet(t, "http://"+addr+"/debug/pprof/cmdline"); code != 200 || !strings.Contains(body, "--debug-listen") {
		t.Errorf("after the handover: GET /debug/pprof/cmdline: %d %q", code, body)
	}
}
