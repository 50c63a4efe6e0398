package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startPlatformAlone starts `bridge platform` with env and waits until
// it listens; it is stopped at the end of the test if still running.
func startPlatformAlone(t *testing.T, env ...string) *platformProcess {
	t.Helper()
	return startPlatformProcessEnv(t, env)
}

// killHard ends pid with SIGKILL, as a crash would, and waits until its
// children (the one-offs' inits), which the kernel kills with it, are
// gone too.
func killHard(t *testing.T, pid int, exited <-chan struct{}) {
	t.Helper()
	children := childPids(pid)
	if len(children) == 0 {
		t.Fatalf("process %d has no child: no one-off runs", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	<-exited
	waitFor(t, 30*time.Second, "the killed process's one-offs gone", func() bool {
		for _, c := range children {
			if _, err := os.Stat("/proc/" + strconv.Itoa(c)); err == nil {
				return false
			}
		}
		return true
	})
}

// childPids lists the processes whose parent is pid.
func childPids(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// heldOneOff is a session whose one-off waits for a line on its stdin.
type heldOneOff struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// holdOneOff uploads a file named name to app through b and starts a
// session whose one-off copies it from /tmp/uploads to /tmp, then waits;
// it returns once the copy is made. The session ends at the end of the
// test, or with finish.
func holdOneOff(t *testing.T, b *Bridge, app, name string) *heldOneOff {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	scp := exec.Command(need(t, "scp"), append(b.SSHArgs(""), "-P", b.Port, f, app+"@"+b.Host+":")...)
	if out, err := scp.CombinedOutput(); err != nil {
		t.Fatalf("scp: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := b.SSH(ctx, app, nil, "cp /tmp/uploads/"+name+" /tmp/copy-"+name+" && echo ready && read line && wc -c < /tmp/copy-"+name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	h := &heldOneOff{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if line, _ := h.out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the one-off did not start: %q", line)
	}
	return h
}

// finish lets the one-off go on: it says how many bytes its copy in /tmp
// still holds, and the session ends.
func (h *heldOneOff) finish() (string, error) {
	h.stdin.Write([]byte("go\n"))
	h.stdin.Close()
	rest, _ := io.ReadAll(h.out)
	return strings.TrimSpace(string(rest)), h.cmd.Wait()
}

// filesNamed lists the files under root named like name (the upload or
// the one-off's copy of it).
func filesNamed(t *testing.T, root, name string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), name) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b) + ".bin"
}

// A platform killed with -9 leaves its one-offs' dirs (their /tmp, with
// the uploaded files); the next platform to start removes them, in the
// default state dir too (under $TMPDIR), and leaves alone the dirs of a
// platform still running there.
func TestPlatformCrashLeftoversRemoved(t *testing.T) {
	tmp := t.TempDir()
	env := "TMPDIR=" + tmp
	crashed := startPlatformAlone(t, env)
	b1 := StartBridge(t, Options{Args: []string{"--api-url", crashed.url}, Env: []string{"ONEOFF_API_TOKEN=" + canaryToken}})
	dead := uniqueName("dead")
	holdOneOff(t, b1, "demo-app", dead)
	if len(filesNamed(t, tmp, dead)) != 2 {
		t.Fatalf("the one-off's files are not under $TMPDIR: %v", filesNamed(t, tmp, dead))
	}

	live := startPlatformAlone(t, env)
	b2 := StartBridge(t, Options{Args: []string{"--api-url", live.url}, Env: []string{"ONEOFF_API_TOKEN=" + canaryToken}})
	alive := uniqueName("alive")
	session := holdOneOff(t, b2, "demo-app", alive)
	liveFiles := filesNamed(t, tmp, alive)
	if len(liveFiles) != 2 {
		t.Fatalf("the live one-off's files are not under $TMPDIR: %v", liveFiles)
	}

	killHard(t, crashed.pid, crashed.exited)
	if left := filesNamed(t, tmp, dead); len(left) != 2 {
		t.Fatalf("after kill -9, want the dead one-off's two files left, got %v", left)
	}
	startPlatformAlone(t, env)
	if left := filesNamed(t, tmp, dead); len(left) != 0 {
		t.Errorf("a restart left the dead one-off's files: %v", left)
	}
	if got := filesNamed(t, tmp, alive); len(got) != 2 {
		t.Errorf("the live one-off's files were touched: %v, had %v", got, liveFiles)
	}
	if out, err := session.finish(); err != nil || out != "1048576" {
		t.Errorf("the live one-off, told to go on: %q, %v (want its copy's 1048576 bytes)", out, err)
	}
}

// A bridge killed with -9 leaves its embedded platform's one-off dirs;
// its restart removes them.
func TestBridgeCrashLeftoversRemoved(t *testing.T) {
	tmp := t.TempDir()
	b := StartBridge(t, Options{Env: []string{"TMPDIR=" + tmp}})
	name := "copy-" + uniqueName("dead")
	holdOneOff(t, b, "demo-app", strings.TrimPrefix(name, "copy-"))
	killHard(t, b.cmd.Process.Pid, b.exited)
	left := append(filesNamed(t, b.DataDir, name), filesNamed(t, tmp, name)...)
	if len(left) != 1 {
		t.Fatalf("after kill -9, want the one-off's copy left behind, got %v", left)
	}
	b.Restart()
	left = append(filesNamed(t, b.DataDir, name), filesNamed(t, tmp, name)...)
	if len(left) != 0 {
		t.Errorf("a restart left the dead one-off's files: %v", left)
	}
}
