package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// smallDisk mounts a tmpfs of size bytes on dir in a mount namespace of its
// own, held by a process that sleeps until the test ends; nothing outside
// that namespace sees the mount. It returns the holder's pid: enter the
// namespace with nsenter -t pid -m, or reach its files through
// /proc/pid/root.
func smallDisk(t *testing.T, dir string, size int) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs in a mount namespace and needs root (.ci/run runs as root)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(need(t, "unshare"), "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size="$2",mode=0700 tmpfs "$1" && echo mounted && exec sleep 100000`, "sh", dir, strconv.Itoa(size))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "mounted\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("mount a tmpfs in a mount namespace: %s", stderr.String())
	}
	return cmd.Process.Pid
}

// startBridgeIn starts the built bridge inside the mount namespace of the
// process holder, as StartBridge does otherwise.
func startBridgeIn(t *testing.T, holder int, dataDir string) *Bridge {
	t.Helper()
	b := &Bridge{t: t, Key: clientKey(t, "default"), DataDir: dataDir}
	dir := t.TempDir()
	b.AuthorizedKeys = filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(b.AuthorizedKeys, []byte(publicKey(t, b.Key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.KnownHosts = filepath.Join(dir, "known_hosts")
	b.args = []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--authorized-keys", b.AuthorizedKeys, "--log-level", "debug"}
	nsenter := need(t, "nsenter")
	b.launch = func() *exec.Cmd {
		return exec.Command(nsenter, append([]string{"-t", strconv.Itoa(holder), "-m", "--", binary}, b.args...)...)
	}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// fill writes zeros into a new file of dir until the disk is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return
		}
	}
}

// The case: the staging area's disk fills up, mkdir fails while
// its journal line is written, space comes back, a file is put and listed
// as pending. After a restart it is still pending, and the one-off gets it.
func TestUploadsFullDiskKeepsLaterUploads(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	// The staging area alone on the small disk: the host key stays where
	// the test reads it.
	uploadsDir := filepath.Join(dataDir, "uploads")
	holder := smallDisk(t, uploadsDir, 1<<20)
	b := startBridgeIn(t, holder, dataDir)
	work := localTree(t, map[string][]byte{"precious.txt": []byte("precious\n")})

	mustOK(t, "mkdir", b.sftpBatch(t, work, "", "demo-app", "mkdir first\n"))
	filler := filepath.Join(fmt.Sprintf("/proc/%d/root", holder), uploadsDir, "filler")
	fill(t, filler)
	var batch strings.Builder
	for i := range 200 {
		fmt.Fprintf(&batch, "-mkdir d%03d\n", i)
	}
	r := b.sftpBatch(t, work, "", "demo-app", batch.String())
	if !strings.Contains(r.Stderr, `remote mkdir "/tmp/uploads/d`) || !b.LogHas("out of disk space") {
		t.Fatalf("no mkdir failed on a full disk: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "put", b.sftpBatch(t, work, "", "demo-app", "put precious.txt\n"))
	r = b.sftpBatch(t, work, "", "demo-app", "ls -1\n")
	if !strings.Contains(r.Stdout, "precious.txt") {
		t.Fatalf("precious.txt is not pending before the restart:\n%s", r.Stdout)
	}

	b.Restart()
	r = b.sftpBatch(t, work, "", "demo-app", "ls -1\n")
	mustOK(t, "ls", r)
	for _, want := range []string{"precious.txt", "first", "d000"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("%s is not pending after the restart:\n%s", want, r.Stdout)
		}
	}
	got := remoteHashes(t, b, "demo-app")
	if want := "precious.txt=" + sha([]byte("precious\n")); got != want {
		t.Fatalf("the one-off after the restart has\n%s\nwant\n%s", got, want)
	}
}
