package platform

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestClientGoneKillsWholeTree(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{true, false} {
		t.Run(map[bool]string{true: "terminal", false: "pipe"}[tty], func(t *testing.T) {
			tp := startPlatform(t, Config{})
			m := sleepMarker()
			o := tp.run("demo", "sleep "+m+" & sleep "+m, tty, nil)
			conn, _ := o.attach()
			pids := waitPids(t, m, 2)
			conn.Close()
			assertGone(t, pids, 2*time.Second)
			if status, code := o.wait(); status != 200 || code != 137 {
				t.Errorf("wait: %d exit %d, want 200 exit 137", status, code)
			}
			if left := tp.stateEntries(); len(left) != 0 {
				t.Errorf("state dir not cleaned: %v", left)
			}
		})
	}
}

func TestPipeModeHalfCloseIsStdinEOF(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "wc -c; echo done", false, nil)
	conn, br := o.attach()
	conn.Write([]byte("12345"))
	conn.CloseWrite()
	out, _ := io.ReadAll(br)
	if strings.TrimSpace(string(out)) != "5\ndone" {
		t.Errorf("got %q", out)
	}
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d exit %d", status, code)
	}
}

func TestPipeModeResetKillsTree(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	m := sleepMarker()
	o := tp.run("demo", "sleep "+m, false, nil)
	conn, _ := o.attach()
	pids := waitPids(t, m, 1)
	conn.SetLinger(0)
	conn.Close()
	assertGone(t, pids, 2*time.Second)
}

func TestPipeModeHalfClosedClientStays(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "sleep 0.6; echo still-here", false, nil)
	conn, br := o.attach()
	conn.CloseWrite()
	out, _ := io.ReadAll(br)
	if string(out) != "still-here\n" {
		t.Errorf("got %q", out)
	}
}

func TestBackgroundJobsDieWithTheCommand(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	m := sleepMarker()
	o := tp.run("demo", "sleep "+m+" & echo started", false, nil)
	_, br := o.attach()
	out, _ := io.ReadAll(br)
	if string(out) != "started\n" {
		t.Errorf("output %q", out)
	}
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d exit %d", status, code)
	}
	assertGone(t, pidsWithArg(m), 2*time.Second)
}

func TestInactivityKillsAndWaitAnswers408(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{InactivityTimeout: time.Second})
	m := sleepMarker()
	// "ready" once sleep runs, so that the test sees it before the kill.
	o := tp.run("demo", "sleep "+m+" & until read c </proc/$!/comm && [ \"$c\" = sleep ]; do sleep 0.01; done; echo ready; wait", false, nil)
	_, br := o.attach()
	readUntil(t, br, "ready")
	pids := waitPids(t, m, 1)
	start := time.Now()
	io.Copy(io.Discard, br) // the platform closes the stream
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stream closed after %v", d)
	}
	if status, _ := o.wait(); status != 408 {
		t.Errorf("wait: %d, want 408", status)
	}
	assertGone(t, pids, 2*time.Second)
}

func TestActivityKeepsOneOffAlive(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{InactivityTimeout: 1500 * time.Millisecond})
	// Output every 100 ms for about two seconds: never idle for 1.5 s.
	out, code := tp.runAndCollect("echo 0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.1; echo $i; sleep 0.1; done", false)
	if code != 0 || !strings.HasSuffix(out, "10\n") {
		t.Errorf("got %q exit %d", out, code)
	}
}

func TestNeverAttachedIsDropped(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{AttachTimeout: 200 * time.Millisecond, AppQuota: 1})
	o := tp.run("demo", "echo never", true, nil)
	if status, _ := o.wait(); status != 408 {
		t.Errorf("wait: %d, want 408", status)
	}
	if left := tp.stateEntries(); len(left) != 0 {
		t.Errorf("state dir not cleaned: %v", left)
	}
	if status, _, _ := o.attachRaw(tp.token); status != 410 {
		t.Errorf("attach after drop: %d, want 410", status)
	}
	tp.run("demo", "true", true, nil) // the quota was released
}

func TestPrivateTmp(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	if tp.runner.isolation == isolationNone {
		t.Skip("no namespaces on this host")
	}
	a := tp.run("demo", "cat /tmp/uploads/secret; touch /tmp/mine; ls /tmp", false, nil)
	if status, body := a.upload("secret", []byte("only-a")); status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	b := tp.run("demo", "ls -A /tmp/uploads; test -e /tmp/uploads/secret || echo absent", false, nil)
	_, brA := a.attach()
	outA, _ := io.ReadAll(brA)
	if string(outA) != "only-afine\n" && !strings.HasPrefix(string(outA), "only-a") {
		t.Errorf("one-off A read %q", outA)
	}
	if strings.Contains(string(outA), "platform-") {
		t.Errorf("one-off A sees the host /tmp: %q", outA)
	}
	_, brB := b.attach()
	outB, _ := io.ReadAll(brB)
	if string(outB) != "absent\n" {
		t.Errorf("one-off B saw %q", outB)
	}
}

func TestRunsAsUnprivilegedUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	tp := startPlatform(t, Config{})
	out, code := tp.runAndCollect("id -u; id -G; echo $HOME; pwd", false)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || lines[0] == "0" || lines[0] != lines[1] && !strings.HasPrefix(lines[1], "65534") {
		t.Errorf("got %q exit %d", out, code)
	}
	if lines[2] != lines[3] {
		t.Errorf("HOME %q but working directory %q", lines[2], lines[3])
	}
}

func TestOwnPIDNamespace(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	if tp.runner.isolation == isolationNone {
		t.Skip("no namespaces on this host")
	}
	// The shell is not PID 1 (its init is), and /proc shows this one-off
	// only: init and the shell, which counts them by its own glob (a
	// pipeline's processes would start in a racy order).
	out, code := tp.runAndCollect("echo $$; set -- /proc/[0-9]*; echo $#", false)
	if code != 0 || strings.HasPrefix(out, "1\n") || !strings.HasSuffix(out, "\n2\n") {
		t.Errorf("got %q exit %d", out, code)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("PLATFORM_TEST_SECRET", "leak")
	tp := startPlatform(t, Config{Env: map[string]string{"APP_VAR": "app", "BOTH": "app"}})
	o := tp.run("demo", `echo "$APP_VAR $RUN_VAR $BOTH $PLATFORM_TEST_SECRET"; echo "$PATH"; test -n "$HOME" && echo home`, false,
		map[string]string{"RUN_VAR": "run", "BOTH": "run"})
	_, br := o.attach()
	out, _ := io.ReadAll(br)
	want := "app run run \n"
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "/usr/bin") || !strings.HasSuffix(string(out), "home\n") {
		t.Errorf("got %q", out)
	}
}

func TestShutdownKillsEverything(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	m := sleepMarker()
	o := tp.run("demo", "sleep "+m, true, nil)
	o.attach()
	idle := tp.run("demo", "true", true, nil) // never attached
	_ = idle
	pids := waitPids(t, m, 1)
	// A /wait in flight must not hold Shutdown up.
	waited := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", o.attachURL+"/wait", nil)
		req.SetBasicAuth("", tp.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			waited <- -1
			return
		}
		res.Body.Close()
		waited <- res.StatusCode
	}()
	t.Cleanup(func() { <-waited })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	assertGone(t, pids, 2*time.Second)
	if left := tp.stateEntries(); len(left) != 0 {
		t.Errorf("state dir not cleaned: %v", left)
	}
}

// readUntil reads from br until the output contains want.
func readUntil(t *testing.T, br *bufio.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %q so far, want %q: %v", got, want, err)
		}
	}
	return string(got)
}

// TestFreshInits covers one-offs whose init is started for them, as when
// the spares run out: the init gets its spec before it is even ready.
func TestFreshInits(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	if tp.runner.pool == nil {
		t.Skip("no namespaces on this host")
	}
	tp.runner.pool.close() // no spares from now on
	tp.runner.pool.wait = 0
	for _, tty := range []bool{false, true, false} {
		out, code := tp.runAndCollect("echo fresh", tty)
		if strings.TrimSpace(out) != "fresh" || code != 0 {
			t.Errorf("got %q exit %d", out, code)
		}
	}
}
