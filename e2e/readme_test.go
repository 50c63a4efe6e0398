package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the commands of the README's code block marked
// `<!-- readme-test: NAME -->`, joined with &&, so that what users copy is
// what runs here.
func readmeCommands(t *testing.T, readme, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- readme-test: " + regexp.QuoteMeta(name) + " -->\n```sh\n(.*?)```")
	m := re.FindStringSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no sh block marked readme-test: %s", name)
	}
	var cmds []string
	for _, line := range strings.Split(m[1], "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	return strings.Join(cmds, " && ")
}

// The README's run and install commands, taken from the README of a fresh
// clone and run as written there: `go run .`, the root install into
// /usr/local/bin (in a mount namespace of its own, so that the machine's is
// left alone) and the user install into ~/.local/bin. Each bridge so started
// takes the user's own key, as the Quick start promises, and runs a command.
func TestReadmeInstallAndRun(t *testing.T) {
	need(t, "git")
	need(t, "unshare")
	top, err := exec.Command("git", "-C", "..", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "ssh-bridge")
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	// The build caches are the machine's, so that a new HOME does not
	// mean downloading every module again.
	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	caches := strings.Fields(string(goEnv))

	for _, tc := range []struct {
		name   string
		script func(cmds string) string
		binary string // where the install puts the binary, under HOME
	}{
		{"run", func(cmds string) string { return "exec " + cmds }, ""},
		{"install-root", func(cmds string) string {
			return "mount -t tmpfs tmpfs /usr/local/bin && " + cmds +
				` && test "$(command -v bridge)" = /usr/local/bin/bridge && exec bridge`
		}, ""},
		{"install-user", func(cmds string) string {
			return cmds + ` && test -x "$HOME/.local/bin/bridge" && exec "$HOME/.local/bin/bridge"`
		}, ".local/bin/bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			key := clientKey(t, "default")
			if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"), []byte(publicKey(t, key)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			script := tc.script(readmeCommands(t, readme, tc.name))
			b := &Bridge{t: t, Key: key,
				DataDir:    filepath.Join(home, ".local", "state", "ssh-bridge"),
				KnownHosts: filepath.Join(home, "known_hosts"),
			}
			b.launch = func() *exec.Cmd {
				cmd := exec.Command("sh", "-c", script)
				if tc.name == "install-root" {
					cmd = exec.Command("unshare", "-m", "sh", "-c", script)
				}
				cmd.Dir = clone
				cmd.Env = append(os.Environ(), "HOME="+home, "XDG_STATE_HOME=",
					"GOCACHE="+caches[0], "GOMODCACHE="+caches[1],
					"BRIDGE_LISTEN=127.0.0.1:0", "BRIDGE_DATA_DIR=", "BRIDGE_AUTHORIZED_KEYS=")
				return cmd
			}
			b.start()
			t.Cleanup(b.Stop)
			if r := b.Run("demo-app", nil, "echo", "installed-"+tc.name); r.Code != 0 || r.Stdout != "installed-"+tc.name+"\n" {
				t.Fatalf("ssh through the bridge started by %q: %+v\n%s", script, r, b.Log())
			}
			// Connection mode works out of the box: the bridge's own
			// binary serves as the agent for its own architecture.
			if r := b.Run("demo-app+conn", nil, "echo out; echo err >&2"); r.Code != 0 || r.Stdout != "out\n" || r.Stderr != "err\n" {
				t.Fatalf("connection mode through the bridge started by %q: %+v\n%s", script, r, b.Log())
			}
			if tc.binary != "" {
				if st, err := os.Stat(filepath.Join(home, tc.binary)); err != nil || st.Mode()&0o111 == 0 {
					t.Fatalf("the install left no binary at ~/%s: %v", tc.binary, err)
				}
			}
		})
	}
	if _, err := os.Stat("/usr/local/bin/bridge"); err == nil {
		t.Logf("note: /usr/local/bin/bridge exists on this machine; the test's own install went to a private mount")
	}
}
