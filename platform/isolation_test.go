package platform

import (
	"os"
	"path/filepath"
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
	if iso == isolationNone {
		r.plan.OwnNetwork = false
	}
	if iso != isolationNone {
		r.pool = newInitPool(r, nil)
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

// TestProtectedPaths: what Config.Protect names is out of a one-off's
// reach, even for a one-off that owns it (root of a user namespace is the
// platform's own user, here root): a hidden directory, a file reached
// through a symbolic link, a file not made yet; nor can the one-off
// rename a directory above them, undo a mount, or gain a capability.
func TestProtectedPaths(t *testing.T) {
	t.Parallel()
	for _, iso := range []isolation{isolationRoot, isolationUserNS} {
		t.Run(iso.String(), func(t *testing.T) {
			t.Parallel()
			if iso == isolationUserNS {
				if err := probeUserNS(); err != nil {
					t.Skipf("no user namespaces: %v", err)
				}
			}
			// Outside /tmp, which a one-off has of its own.
			root, err := os.MkdirTemp("/var/tmp", "platform-protect-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			if err := os.Chmod(root, 0o777); err != nil {
				t.Fatal(err)
			}
			hidden := filepath.Join(root, "data")
			secretDir := filepath.Join(root, "real")
			links := filepath.Join(root, "links")
			for _, d := range []string{hidden, secretDir, links} {
				if err := os.Mkdir(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
			for name, content := range map[string]string{
				filepath.Join(hidden, "key"):    "hidden-secret",
				filepath.Join(secretDir, "key"): "linked-secret",
			} {
				if err := os.WriteFile(name, []byte(content), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(links, "key")
			if err := os.Symlink(filepath.Join(secretDir, "key"), link); err != nil {
				t.Fatal(err)
			}
			missing := filepath.Join(root, "later", "key")
			tp := startPlatform(t, Config{Protect: []string{hidden, link, missing}})
			if iso == isolationUserNS {
				withIsolation(t, tp, isolationUserNS)
			}
			out, code := tp.runAndCollect(strings.Join([]string{
				"cat " + hidden + "/key " + link + " " + secretDir + "/key",
				"echo x >> " + link + "; echo x >> " + secretDir + "/key",
				"ln -sf /etc/hostname " + link,
				"mkdir -p " + filepath.Dir(missing) + " && echo made > " + missing,
				"mv " + secretDir + " " + root + "/moved; mv " + links + " " + root + "/moved-links; mv " + hidden + " " + root + "/moved-data",
				"umount " + hidden + "; umount " + secretDir + "/key",
				"grep -E '^Cap(Prm|Eff|Bnd)|NoNewPrivs' /proc/self/status",
				"echo over",
			}, "\n"), false)
			if code != 0 || !strings.Contains(out, "over\n") {
				t.Fatalf("the one-off did not run: exit %d\n%s", code, out)
			}
			for _, leak := range []string{"hidden-secret", "linked-secret"} {
				if strings.Contains(out, leak) {
					t.Errorf("read %q", leak)
				}
			}
			for _, f := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
				if !strings.Contains(out, f) {
					t.Errorf("the one-off's status lacks %q", f)
				}
			}
			if b, err := os.ReadFile(filepath.Join(secretDir, "key")); err != nil || string(b) != "linked-secret" {
				t.Errorf("the linked file: %q, %v", b, err)
			}
			if target, err := os.Readlink(link); err != nil || target != filepath.Join(secretDir, "key") {
				t.Errorf("the link: %q, %v", target, err)
			}
			if _, err := os.Stat(filepath.Dir(missing)); err == nil {
				t.Errorf("the one-off made the directory of a protected path")
			}
			for _, moved := range []string{"moved", "moved-links", "moved-data"} {
				if _, err := os.Stat(filepath.Join(root, moved)); err == nil {
					t.Errorf("the one-off renamed a directory to %s", moved)
				}
			}
			if t.Failed() {
				t.Logf("one-off output:\n%s", out)
			}
		})
	}
}
