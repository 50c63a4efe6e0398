package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsAddr is the address the bridge serves its metrics on, from its
// log line (written before its SSH address file, so already there).
func (b *Bridge) metricsAddr(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	log, ok := b.LogWhen(func(log string) bool { return re.MatchString(log) })
	if !ok {
		t.Fatalf("no metrics listening line in the log:\n%s", log)
	}
	return re.FindStringSubmatch(log)[1]
}

// scrape is one GET /metrics, parsed.
type scrape map[string]*dto.MetricFamily

func getMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the series' value: a counter's or gauge's, a histogram's count
// (and sum, for histograms, through sum); -1 when there is no such series.
func (s scrape) value(name string, labels ...string) float64 {
	v, _ := s.series(name, labels...)
	return v
}

func (s scrape) sum(name string, labels ...string) float64 {
	_, sum := s.series(name, labels...)
	return sum
}

func (s scrape) series(name string, labels ...string) (float64, float64) {
	f := s[name]
	if f == nil {
		return -1, -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), 0
		case m.Gauge != nil:
			return m.Gauge.GetValue(), 0
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), m.Histogram.GetSampleSum()
		}
	}
	return -1, -1
}

// metricsWhen scrapes until ok holds, for up to 5 s: a connection is
// counted closed by the bridge shortly after the client exits.
func metricsWhen(t *testing.T, addr string, ok func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := getMetrics(t, addr)
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type want struct {
	name   string
	labels []string
	value  float64
}

func check(t *testing.T, when string, s scrape, wants ...want) {
	t.Helper()
	for _, w := range wants {
		if got := s.value(w.name, w.labels...); got != w.value {
			t.Errorf("%s: %s%v = %v, want %v", when, w.name, w.labels, got, w.value)
		}
	}
}

// TestMetricsDuringSessionAndUpload scrapes the metrics of the built
// bridge while an upload is staged, while a session runs that received
// it, and after both ended.
func TestMetricsDuringSessionAndUpload(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--metrics-listen", "127.0.0.1:0"}})
	addr := b.metricsAddr(t)
	s := getMetrics(t, addr)
	check(t, "at start", s,
		want{"sshbridge_connections_open", nil, 0},
		want{"sshbridge_sessions_open", nil, 0},
		want{"sshbridge_uploads_total", []string{"event", "staged"}, 0})
	if f := s["sshbridge_build_info"]; f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("build_info: %v", f)
	}

	data := randomData(5000)
	dir := localTree(t, map[string][]byte{"up.bin": data})
	mustOK(t, "scp", b.client(t, dir, "", "scp", "up.bin", "demo-app@"+b.Host+":"))
	s = metricsWhen(t, addr, func(s scrape) bool { return s.value("sshbridge_connections_open") == 0 })
	check(t, "after scp", s,
		want{"sshbridge_uploads_total", []string{"event", "staged"}, 1},
		want{"sshbridge_staged_files", nil, 1},
		want{"sshbridge_staged_bytes", nil, 5000},
		want{"sshbridge_sessions_total", []string{"kind", "subsystem", "outcome", "command"}, 1},
		want{"sshbridge_connections_total", []string{"outcome", "authenticated"}, 1},
		want{"sshbridge_connections_open", nil, 0})

	// A session that reads the upload, then waits for a line on stdin.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := b.SSH(ctx, "demo-app", nil, "wc -c < /tmp/uploads/up.bin; read line; echo bye")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	first, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(first) != "5000" {
		t.Fatalf("session's first line %q, %v", first, err)
	}
	s = getMetrics(t, addr)
	check(t, "during the session", s,
		want{"sshbridge_connections_open", nil, 1},
		want{"sshbridge_sessions_open", nil, 1},
		want{"sshbridge_uploads_total", []string{"event", "delivered"}, 1},
		want{"sshbridge_staged_files", nil, 0},
		want{"sshbridge_staged_bytes", nil, 0},
		want{"sshbridge_upload_delivery_bytes", nil, 1},
		want{"sshbridge_upload_delivery_seconds", nil, 1},
		want{"sshbridge_oneoff_start_seconds", []string{"phase", "operation_done"}, 1},
		want{"sshbridge_oneoff_start_seconds", []string{"phase", "attached"}, 1},
		want{"sshbridge_oneoff_start_seconds", []string{"phase", "first_byte"}, 1},
		want{"sshbridge_authentications_total", []string{"result", "ok", "reason", ""}, 2})
	if sum := s.sum("sshbridge_upload_delivery_bytes"); sum != 5000 {
		t.Errorf("upload_delivery_bytes_sum %v, want 5000", sum)
	}
	start, attached := s.sum("sshbridge_oneoff_start_seconds", "phase", "operation_done"), s.sum("sshbridge_oneoff_start_seconds", "phase", "attached")
	firstByte := s.sum("sshbridge_oneoff_start_seconds", "phase", "first_byte")
	if !(0 < start && start <= attached && attached <= firstByte) {
		t.Errorf("start phases %v, %v, %v s: want each after the one before", start, attached, firstByte)
	}

	io.WriteString(stdin, "go on\n")
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil || string(rest) != "bye\n" {
		t.Fatalf("session: %q %v", rest, err)
	}
	s = metricsWhen(t, addr, func(s scrape) bool { return s.value("sshbridge_connections_open") == 0 })
	check(t, "after the session", s,
		want{"sshbridge_connections_open", nil, 0},
		want{"sshbridge_sessions_open", nil, 0},
		want{"sshbridge_sessions_total", []string{"kind", "exec", "outcome", "command"}, 1},
		want{"sshbridge_connections_total", []string{"outcome", "authenticated"}, 2})

	// A refused key and a session the bridge ends itself are counted by
	// reason and by the name of its exit code.
	if r := b.Run("Not_An_App", nil, "true"); r.Code != 250 {
		t.Fatalf("session of an invalid app name: %+v", r)
	}
	stranger := clientKey(t, "stranger")
	r := runCmd(t, exec.Command(need(t, "ssh"), append(b.SSHArgs(stranger), "-p", b.Port, "-o", "LogLevel=ERROR", "demo-app@"+b.Host, "true")...), nil)
	if r.Code != 255 {
		t.Fatalf("unknown key: %+v", r)
	}
	// ssh -W asks for a direct-tcpip channel, refused in per-session mode.
	if r := runCmd(t, exec.Command(need(t, "ssh"), append(b.SSHArgs(""), "-p", b.Port, "-o", "LogLevel=ERROR",
		"-W", "127.0.0.1:9", "demo-app@"+b.Host)...), nil); r.Code != 255 {
		t.Fatalf("ssh -W: %+v", r)
	}
	s = metricsWhen(t, addr, func(s scrape) bool {
		return s.value("sshbridge_connections_total", "outcome", "auth_failed") == 1 && s.value("sshbridge_connections_open") == 0
	})
	check(t, "after the refusals", s,
		want{"sshbridge_forwards_total", []string{"type", "direct-tcpip", "outcome", "refused"}, 1},
		want{"sshbridge_sessions_total", []string{"kind", "exec", "outcome", "invalid_app_name"}, 1},
		want{"sshbridge_authentications_total", []string{"result", "fail", "reason", "unknown_key"}, 1},
		want{"sshbridge_connections_total", []string{"outcome", "auth_failed"}, 1})
	for _, f := range s {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "demo-app") || strings.Contains(v, "127.0.0.1") || strings.Contains(v, "SHA256:") {
					t.Errorf("%s has label %s=%q: an app, address or key", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}

// TestReadyzTurns503WhenDraining: ready while serving; SIGTERM during a
// shell turns readiness 503 at once, while the session still runs and the
// process is alive; the user is told, and the session ends with exit code
// 251 at the end of the grace.
func TestReadyzTurns503WhenDraining(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--metrics-listen", "127.0.0.1:0", "--shutdown-grace", "3s"}})
	addr := b.metricsAddr(t)
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A shell on a terminal; the typed line echoes as "echo sta''rted",
	// its output is "started".
	cmd := b.SSH(ctx, "demo-app", []string{"-tt"})
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "echo sta''rted\n")
	out := bufio.NewReader(stdout)
	var seen strings.Builder
	for !strings.Contains(strings.ReplaceAll(seen.String(), "sta''rted", ""), "started") {
		line, err := out.ReadString('\n')
		seen.WriteString(line)
		if err != nil {
			t.Fatalf("shell: %q %v", seen.String(), err)
		}
	}
	go io.Copy(io.Discard, out)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := b.LogWhen(func(log string) bool { return strings.Contains(log, "shutting down") }); !ok {
		t.Fatalf("no drain in the log:\n%s", b.Log())
	}
	code, body := httpGet(t, "http://"+addr+"/readyz")
	if code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz during the drain: %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz during the drain: %d", code)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 251 {
		t.Fatalf("the shell ended with %v, want exit code 251 at the end of the grace; stderr %q", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "The bridge is stopping") || !strings.Contains(stderr.String(), "The bridge stopped: this session was ended.") {
		t.Fatalf("the user was not told: stderr %q", stderr.String())
	}
	stdin.Close()
}

// TestReadyzStagingUnwritable: no staging directory to write to, not
// ready.
func TestReadyzStagingUnwritable(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--metrics-listen", "127.0.0.1:0"}})
	addr := b.metricsAddr(t)
	if err := os.RemoveAll(filepath.Join(b.DataDir, "uploads", "staging")); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, "http://"+addr+"/readyz")
	if code != 503 || !strings.Contains(body, "staging area not writable") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestLogFormatJSON: with --log-format json every line the bridge logs is
// one JSON object with slog's time, level and msg.
func TestLogFormatJSON(t *testing.T) {
	b := StartBridge(t, Options{Env: []string{"BRIDGE_LOG_FORMAT=json"}})
	if r := b.Run("demo-app", nil, "echo hi"); r.Code != 0 {
		t.Fatalf("session: %+v", r)
	}
	if !b.LogHas(`"msg":"session end"`) {
		t.Fatalf("no session end in the log:\n%s", b.Log())
	}
	for _, line := range strings.Split(strings.TrimSpace(b.Log()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := obj[k]; !ok {
				t.Fatalf("log line without %q: %s", k, line)
			}
		}
	}
}

// TestMetricsListenerPassesOnAtHandover: after SIGHUP the new process
// answers on the same metrics address, ready, while the old one drains a
// session (and would answer 503).
func TestMetricsListenerPassesOnAtHandover(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--metrics-listen", "127.0.0.1:0", "--drain-timeout", "1m"}})
	addr := b.metricsAddr(t)
	oldPID := b.cmd.Process.Pid
	c := goClient(t, b, "demo-app")
	held, err := c.NewSession()
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
		return served.MatchString(b.Log()) && strings.Contains(b.Log(), `msg="handover: draining: open sessions run on"`)
	})
	newPID, _ := strconv.Atoi(served.FindStringSubmatch(b.Log())[1])
	t.Cleanup(func() { stopPID(t, newPID) })
	for i := range 5 {
		if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 200 || body != "ready\n" {
			t.Fatalf("/readyz #%d on %s after the handover: %d %q; want the new process's 200", i, addr, code, body)
		}
	}
	io.WriteString(heldIn, "y\n")
	heldIn.Close()
	held.Wait()
	c.Close()
}
