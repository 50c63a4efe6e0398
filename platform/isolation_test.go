package platform

import (
	"strings"
	"testing"
	"time"
)

// withIsolation makes tp run its one-offs as a host allowing only iso
// would; it must be called before any one-off runs.
func withIsolation(t *testing.T, tp *testPlatform, iso isolation) {
	t.Helper()
	r := tp.runner
	if r.pool != nil {
		r.pool.close()
		r.pool = nil
	}
	r.isolation, r.cred, r.uid, r.gid, r.homeDir = iso, nil, -1, -1, ""
	if iso != isolationNone {
		r.pool = newInitPool(r)
	}
}

// TestWithoutIsolation: a host with neither root nor user namespaces still
// runs one-offs, killed as a process group.
func TestWithoutIsolation(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	withIsolation(t, tp, isolationNone)
	for _, tc := range []struct {
		command string
		tty     bool
		out     string
		code    int
	}{
		{"echo hi", false, "hi\n", 0},
		{"echo hi", true, "hi\r\n", 0},
		{"kill -9 $$", false, "", 137},
		{"pwd", false, tp.stateDir, 0},
	} {
		out, code := tp.runAndCollect(tc.command, tc.tty)
		if !strings.HasPrefix(out, tc.out) || code != tc.code {
			t.Errorf("%q: got %q exit %d, want %q exit %d", tc.command, out, code, tc.out, tc.code)
		}
	}
	m := sleepMarker()
	o := tp.run("demo", "sleep "+m+" & sleep "+m, true, nil)
	conn, _ := o.attach()
	pids := waitPids(t, m, 2)
	conn.Close()
	assertGone(t, pids, 2*time.Second)
	m = sleepMarker()
	out, _ := tp.runAndCollect("sleep "+m+" & echo started", false)
	if out != "started\n" {
		t.Errorf("background job: %q", out)
	}
	assertGone(t, pidsWithArg(m), 2*time.Second)
	if left := tp.stateEntries(); len(left) != 0 {
		t.Errorf("state dir not cleaned: %v", left)
	}
}

// TestUserNamespaceIsolation: what a host without root but with user
// namespaces gets: its own PID and mount namespaces, a private /tmp.
func TestUserNamespaceIsolation(t *testing.T) {
	t.Parallel()
	if err := probeUserNS(); err != nil {
		t.Skipf("no user namespaces: %v", err)
	}
	tp := startPlatform(t, Config{})
	withIsolation(t, tp, isolationUserNS)
	o := tp.run("demo", "cat /tmp/uploads/f; echo; id -u; kill -9 $$", false, nil)
	if status, body := o.upload("f", []byte("private")); status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	_, br := o.attach()
	out := readAll(t, br)
	if out != "private\n0\n" {
		t.Errorf("got %q", out)
	}
	if status, code := o.wait(); status != 200 || code != 137 {
		t.Errorf("wait: %d exit %d", status, code)
	}
}
