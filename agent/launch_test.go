package agent_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sshbridge/agent"
)

// launchWrapper runs the launch line as a one-off would, in a private
// mount namespace (unshare -m) whose /tmp is a fresh tmpfs: it mounts
// tmpfs on /tmp (and, noexec, on each of $NOEXEC), fills /tmp/uploads
// from $STAGE/uploads, puts $STAGE/bin first in PATH, runs `$UNDER -c
// "$LINE"`, then reports on fd 3 ($STAGE/report) the line's exit status
// and what /tmp holds.
const launchWrapper = `set -e
cd "$STAGE"
exec 3>"$STAGE/report"
mount -t tmpfs -o mode=1777$TMPOPTS tmpfs /tmp
for d in $NOEXEC; do mount -t tmpfs -o noexec,mode=1777 tmpfs "$d"; done
mkdir -p /tmp/home /tmp/uploads
cp -R uploads/. /tmp/uploads/
if [ -d bin ]; then mkdir /tmp/bin; cp bin/* /tmp/bin/; PATH=/tmp/bin:$PATH; fi
HOME=/tmp/home
set +e
$UNDER -c "$LINE"
echo "exit=$?" >&3
cd /tmp && find . -mindepth 1 -not -path './bin*' >&3
`

// launchCase is one run of the launch line.
type launchCase struct {
	shell   string            // the shell that runs the line ("busybox sh" is two words)
	uploads map[string]string // file (relative to /tmp/uploads) → path of its content
	uname   string            // when set, a fake uname first in PATH prints it
	tmpOpts string            // more mount options for /tmp, e.g. ",noexec"
	noexec  string            // more directories mounted noexec
	env     []string
}

// shells are the shells the launch line must work in.
func shells(t *testing.T) []string {
	t.Helper()
	for _, p := range []string{"/bin/sh", "dash", "busybox"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s: %v (Debian packages dash and busybox)", p, err)
		}
	}
	return []string{"/bin/sh", "dash", "busybox sh"}
}

// start starts the wrapper for c; the test reads the line's stdout from
// the returned reader and writes its stdin to the returned writer.
func (c launchCase) start(t *testing.T) (cmd *exec.Cmd, stdout io.Reader, stdin io.WriteCloser, stderr *bytes.Buffer, stage string) {
	t.Helper()
	stage = t.TempDir()
	if err := os.Mkdir(filepath.Join(stage, "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range c.uploads {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(stage, "uploads", name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		// Uploaded files are not executable: the line must not need it.
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.uname != "" {
		if err := os.Mkdir(filepath.Join(stage, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stage, "bin", "uname"), []byte("#!/bin/sh\necho "+c.uname+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare: ", err)
	}
	cmd = exec.Command("unshare", "-m", "/bin/sh", "-c", launchWrapper)
	cmd.Env = environ(append([]string{
		"STAGE=" + stage,
		"LINE=" + agent.LaunchCommand(),
		"UNDER=" + c.shell,
		"TMPOPTS=" + c.tmpOpts,
		"NOEXEC=" + c.noexec,
	}, c.env...)...)
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	var err error
	if stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdout, stdin, stderr, stage
}

// report is what the wrapper said after the line ended: its exit status
// line and the paths under /tmp.
func report(t *testing.T, stage string) (exit string, paths []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stage, "report"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[0], lines[1:]
}

func userFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "mine.txt")
	if err := os.WriteFile(p, []byte("the user's pending file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fail runs c and checks that the line printed exactly want and exited
// with code, that the agent's upload is gone and the user's file stays,
// and that no private directory is left.
func (c launchCase) fail(t *testing.T, want string, code int) {
	t.Helper()
	cmd, stdout, stdin, stderr, stage := c.start(t)
	stdin.Close()
	out, _ := io.ReadAll(stdout)
	cmd.Wait()
	if string(out) != want+"\n" {
		t.Errorf("%s: stdout %q, want %q", c.shell, out, want+"\n")
	}
	if line, ok := agent.ParseLaunchFailure(out); !ok || line != want {
		t.Errorf("%s: ParseLaunchFailure = %q, %v; want %q", c.shell, line, ok, want)
	}
	if stderr.Len() != 0 {
		t.Errorf("%s: stderr %q, want nothing", c.shell, stderr.String())
	}
	exit, paths := report(t, stage)
	if want := "exit=" + strconv.Itoa(code); exit != want {
		t.Errorf("%s: %s, want %s", c.shell, exit, want)
	}
	checkTmp(t, c.shell, paths, c.uploads["mine.txt"] != "")
}

// checkTmp checks what /tmp holds once the line is over: the user's file
// in uploads when there was one, no agent upload, no private copy.
func checkTmp(t *testing.T, shell string, paths []string, userFile bool) {
	t.Helper()
	var uploads []string
	for _, p := range paths {
		if strings.HasPrefix(p, "./uploads/") {
			uploads = append(uploads, p)
		}
		if strings.Contains(p, "bridge-agent.") {
			t.Errorf("%s: the agent's private copy is left: %s", shell, p)
		}
	}
	want := []string(nil)
	if userFile {
		want = []string{"./uploads/mine.txt"}
	}
	if !slices.Contains(paths, "./uploads") {
		t.Errorf("%s: /tmp/uploads is gone once the line ran, want it kept", shell)
	}
	if strings.Join(uploads, " ") != strings.Join(want, " ") {
		t.Errorf("%s: /tmp/uploads holds %q once the line ran, want %q", shell, uploads, want)
	}
}

// TestLaunchStartsTheAgent: the line copies the agent for this machine's
// architecture out of /tmp/uploads, removes the upload (leaving the user's
// file), and the agent answers an SSH handshake on the line's stdin and
// stdout; its private copy is gone once it runs. With /tmp and $HOME
// noexec it runs from /dev/shm.
func TestLaunchStartsTheAgent(t *testing.T) {
	bin := agentBinary(t)
	for _, shell := range shells(t) {
		for _, noexecTmp := range []bool{false, true} {
			key, pub := hostKey(t)
			c := launchCase{
				shell:   shell,
				uploads: map[string]string{agent.UploadName(runtime.GOARCH): bin, "mine.txt": userFile(t)},
				env:     []string{agent.HostKeyEnv + "=" + key},
			}
			wantDir := "/tmp/"
			if noexecTmp {
				c.tmpOpts, c.noexec, wantDir = ",noexec", "/var/tmp", "/dev/shm/"
			}
			cmd, stdout, stdin, stderr, stage := c.start(t)
			cl := clientOver(t, pipeConn{stdout, stdin}, pub)
			if env := output(t, cl, "env"); strings.Contains("\n"+env, "\n"+agent.EnvPrefix) {
				t.Errorf("%s: a command's environment has a %s variable:\n%s", shell, agent.EnvPrefix, env)
			}
			exe := output(t, cl, "readlink /proc/$PPID/exe")
			if !strings.HasPrefix(exe, wantDir+"bridge-agent.") || !strings.HasSuffix(exe, "/agent (deleted)\n") {
				t.Errorf("%s: the agent runs from %q, want a removed copy in %sbridge-agent.*", shell, exe, wantDir)
			}
			if got := output(t, cl, "ls -A /tmp/uploads"); got != "mine.txt\n" {
				t.Errorf("%s: /tmp/uploads holds %q while the agent runs, want only the user's mine.txt", shell, got)
			}
			cl.Close()
			cmd.Wait()
			if stderr.Len() != 0 {
				t.Errorf("%s: stderr %q, want nothing", shell, stderr.String())
			}
			exit, paths := report(t, stage)
			if exit != "exit=0" {
				t.Errorf("%s: the agent's %s after the client closed, want exit=0", shell, exit)
			}
			checkTmp(t, shell, paths, true)
		}
	}
}

func TestLaunchUnknownArchitecture(t *testing.T) {
	bin := agentBinary(t)
	for _, shell := range shells(t) {
		launchCase{
			shell:   shell,
			uploads: map[string]string{agent.UploadName("amd64"): bin, agent.UploadName("arm64"): bin, "mine.txt": userFile(t)},
			uname:   "riscv64",
		}.fail(t, "bridge-agent: no agent for architecture riscv64", agent.LaunchNoArch)
	}
}

func TestLaunchArchitectureNotUploaded(t *testing.T) {
	bin := agentBinary(t)
	for _, shell := range shells(t) {
		launchCase{
			shell:   shell,
			uploads: map[string]string{agent.UploadName("amd64"): bin},
			uname:   "aarch64",
		}.fail(t, "bridge-agent: no agent uploaded for architecture aarch64", agent.LaunchNoArch)
	}
}

func TestLaunchNoExecutableDirectory(t *testing.T) {
	bin := agentBinary(t)
	for _, shell := range shells(t) {
		launchCase{
			shell:   shell,
			uploads: map[string]string{agent.UploadName(runtime.GOARCH): bin, "mine.txt": userFile(t)},
			tmpOpts: ",noexec",
			noexec:  "/dev/shm /var/tmp",
		}.fail(t, "bridge-agent: no directory where the agent can be executed (/tmp, $HOME, /dev/shm, /var/tmp are noexec or not writable)", agent.LaunchNoExecDir)
	}
}

func TestLaunchNothingUploaded(t *testing.T) {
	for _, shell := range shells(t) {
		launchCase{
			shell:   shell,
			uploads: map[string]string{"mine.txt": userFile(t)},
		}.fail(t, "bridge-agent: no agent uploaded (no /tmp/uploads/.bridge-agent)", agent.LaunchNoUpload)
	}
}
