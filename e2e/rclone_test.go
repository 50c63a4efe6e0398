package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const answeredLine = `msg="probe answered by the bridge"`

// oneOffsStarted counts the one-offs the bridge started so far.
func oneOffsStarted(b *Bridge) int {
	return strings.Count(b.Log(), `msg="one-off started"`)
}

// rclone with no options: its shell-type probe (echo) and hash commands
// (md5sum, sha1sum) are answered by the bridge from the staging area and
// start no one-off, so the upload stays pending for the next session;
// check, md5sum and lsl see the pending files with their real hashes.
func TestRcloneDefaultsKeepTheUpload(t *testing.T) {
	b := StartBridge(t, Options{})
	files := map[string][]byte{"f": []byte("first\n"), "sub/b c": randomData(300 << 10)}
	dir := localTree(t, files)
	remote := fmt.Sprintf(":sftp,host=%s,port=%s,user=demo-app,key_file=%s,known_hosts_file=%s:",
		b.Host, b.Port, b.Key, b.KnownHosts)
	rclone := func(args ...string) Result {
		cmd := exec.Command(need(t, "rclone"), append([]string{"--config", "/dev/null"}, args...)...)
		cmd.Dir = dir
		return runCmd(t, cmd, nil)
	}
	mustOK(t, "rclone copyto f", rclone("copyto", "f", remote+"f"))
	mustOK(t, "rclone copyto sub/b c", rclone("copyto", "sub/b c", remote+"sub/b c"))
	r := rclone("check", dir, remote)
	mustOK(t, "rclone check", r)
	if !strings.Contains(r.Stderr, "0 differences found") || !strings.Contains(r.Stderr, "2 matching files") ||
		strings.Contains(r.Stderr, "hash") {
		t.Fatalf("rclone check did not compare both files by hash:\n%s", r.Stderr)
	}
	// One file at a time: rclone 1.60 hashing several objects at once in a
	// fresh run may report "hash unsupported" for all but the first, with
	// any server (its Fs.Hashes marks the hash set known before its probes
	// have answered).
	for _, c := range []struct{ root, name, file string }{{"f", "f", "f"}, {"sub", "b c", "sub/b c"}} {
		r = rclone("md5sum", remote+c.root)
		mustOK(t, "rclone md5sum "+c.root, r)
		s := md5.Sum(files[c.file])
		if want := hex.EncodeToString(s[:]) + "  " + c.name + "\n"; r.Stdout != want {
			t.Fatalf("rclone md5sum %s: %q, want %q", c.root, r.Stdout, want)
		}
	}
	r = rclone("lsl", remote)
	mustOK(t, "rclone lsl", r)
	for _, w := range []string{fmt.Sprintf("%9d ", len(files["f"])), " f\n", fmt.Sprintf("%9d ", len(files["sub/b c"])), " sub/b c\n"} {
		if !strings.Contains(r.Stdout, w) {
			t.Fatalf("rclone lsl lacks %q:\n%s", w, r.Stdout)
		}
	}
	// The hashes came from the bridge, for the escaped name too.
	for _, probe := range []string{`probe=shell-type`, `probe="md5sum -"`, `probe="sha1sum -"`,
		`probe="md5sum /tmp/uploads/f"`, `probe="md5sum /tmp/uploads/sub/b c"`} {
		if !b.LogHas(`msg="probe answered by the bridge" component=uploads app=demo-app ` + probe + ` exit_code=0`) {
			t.Fatalf("the bridge did not answer %s:\n%s", probe, b.Log())
		}
	}
	if n := oneOffsStarted(b); n != 0 {
		t.Fatalf("rclone started %d one-offs", n)
	}
	// The next real session gets the files.
	c := b.Run("demo-app", nil, "cat /tmp/uploads/f")
	if c.Code != 0 || c.Stdout != "first\n" {
		t.Fatalf("cat in the next session: exit %d, %q\n%s", c.Code, c.Stdout, c.Stderr)
	}
}

// From ssh, the probes are answered by the bridge and leave the file
// pending; commands that only look like them run in a one-off verbatim,
// which takes the pending files as any session does.
func TestProbesAnsweredLookalikesNot(t *testing.T) {
	b := StartBridge(t, Options{})
	dir := localTree(t, map[string][]byte{"f": []byte("pending\n")})
	mustOK(t, "sftp put", b.sftpBatch(t, dir, "", "demo-app", "put f\n"))
	const md5f, sha1f = "683e7c0dae508462e3c1766330b83eae", "080ad0dc55090a498be43be0111a60efcee058e8"
	for _, c := range []struct {
		command, stdout string
		code            int
		probe           bool
	}{
		{"echo ${ShellId}%ComSpec%", "%ComSpec%\n", 0, true},
		{"md5sum /tmp/uploads/f", md5f + "  /tmp/uploads/f\n", 0, true},
		{"sha1sum '/tmp/uploads/f'", sha1f + "  /tmp/uploads/f\n", 0, true},
		{"md5sum /tmp/uploads/missing", "", 1, true},
		{"echo hello", "hello\n", 0, false},
		// Outside the staging area, or spelled for the shell to expand.
		{"md5sum /tmp/other", "md5sum: /tmp/other: No such file or directory\n", 1, false}, // one stream: stderr is in stdout
		{"md5sum /tmp/uploads/*", md5f + "  /tmp/uploads/f\n", 0, false},
		{"sha1sum /tmp/uploads/f; echo one-off", sha1f + "  /tmp/uploads/f\none-off\n", 0, false},
	} {
		before, answered := oneOffsStarted(b), strings.Count(b.Log(), answeredLine)
		r := b.Run("demo-app", nil, c.command)
		if r.Code != c.code || r.Stdout != c.stdout {
			t.Errorf("%q: exit %d, %q\n%s", c.command, r.Code, r.Stdout, r.Stderr)
		}
		if c.probe {
			_, ok := b.LogWhen(func(log string) bool { return strings.Count(log, answeredLine) == answered+1 })
			if !ok || oneOffsStarted(b) != before {
				t.Fatalf("%q was not answered by the bridge", c.command)
			}
			continue
		}
		if _, ok := b.LogWhen(func(string) bool { return oneOffsStarted(b) == before+1 }); !ok {
			t.Errorf("%q started no one-off", c.command)
		}
		// The one-off took the file: stage it again for the next case.
		if r := b.Run("demo-app", nil, "test -e /tmp/uploads/f"); r.Code != 1 {
			t.Errorf("after %q the file is still pending (test -e: exit %d)", c.command, r.Code)
		}
		mustOK(t, "sftp put", b.sftpBatch(t, dir, "", "demo-app", "put f\n"))
	}
}
