package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitBinary is the path the units in contrib/systemd start the bridge from.
const unitBinary = "/usr/local/bin/bridge"

// unitsDir holds the repository's systemd units.
var unitsDir = filepath.Join("..", "contrib", "systemd")

// installUnits copies the repository's units into a fresh directory with
// ExecStart and ExecStartPre pointing at the built binary, and returns that
// directory and the units' names.
func installUnits(t *testing.T) (string, []string) {
	t.Helper()
	entries, err := os.ReadDir(unitsDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".service") && !strings.HasSuffix(name, ".socket") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(unitsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		if strings.HasSuffix(name, ".service") && !strings.Contains(text, "ExecStart="+unitBinary+"\n") {
			t.Fatalf("%s: no ExecStart=%s", name, unitBinary)
		}
		text = strings.ReplaceAll(text, unitBinary, binary)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	for _, want := range []string{"bridge.service", "bridge-embedded.service"} {
		if !slices.Contains(names, want) {
			t.Fatalf("contrib/systemd has no %s (has %v)", want, names)
		}
	}
	return dir, names
}

// verifyUnit runs systemd-analyze verify on dir/name and returns what it
// said about the units of dir (other units on the machine may draw
// warnings of their own) and whether it exited 0.
func verifyUnit(t *testing.T, dir, name string) (said []string, ok bool) {
	t.Helper()
	cmd := exec.Command(need(t, "systemd-analyze"), "verify", filepath.Join(dir, name))
	out, err := cmd.CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, dir) || strings.Contains(line, name) || strings.Contains(line, binary) {
			said = append(said, line)
		}
	}
	return said, err == nil
}

// Each unit passes systemd-analyze verify with the built binary, with no
// warning about it; a unit with a mistake draws one, so the check can fail.
func TestSystemdUnitsVerify(t *testing.T) {
	dir, names := installUnits(t)
	for _, name := range names {
		if said, ok := verifyUnit(t, dir, name); !ok || len(said) > 0 {
			t.Errorf("systemd-analyze verify %s (exit 0: %v):\n%s", name, ok, strings.Join(said, "\n"))
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bridge.service"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(raw), "[Service]\n", "[Service]\nProtectSystem=stricter\n", 1)
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bridge.service"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if said, _ := verifyUnit(t, bad, "bridge.service"); len(said) == 0 {
		t.Error("systemd-analyze verify said nothing about a unit with ProtectSystem=stricter: the check above cannot fail")
	}
}

// unitSetting returns the values of key in unit's text, in order.
func unitSetting(text, key string) []string {
	var vals []string
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+`=(.*)$`).FindAllStringSubmatch(text, -1) {
		vals = append(vals, strings.TrimSpace(m[1]))
	}
	return vals
}

// embeddedUnitCaps reads the capabilities of bridge-embedded.service's
// CapabilityBoundingSet, as setpriv names them ("sys_admin"), and checks
// that it runs as root with NoNewPrivileges.
func embeddedUnitCaps(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(unitsDir, "bridge-embedded.service"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if u := unitSetting(text, "User"); len(u) != 1 || u[0] != "root" {
		t.Fatalf("bridge-embedded.service: User=%v, want root", u)
	}
	if n := unitSetting(text, "NoNewPrivileges"); len(n) != 1 || n[0] != "yes" {
		t.Fatalf("bridge-embedded.service: NoNewPrivileges=%v, want yes", n)
	}
	sets := unitSetting(text, "CapabilityBoundingSet")
	if len(sets) != 1 {
		t.Fatalf("bridge-embedded.service: want one CapabilityBoundingSet line, got %q", sets)
	}
	var caps []string
	for _, c := range strings.Fields(sets[0]) {
		caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return caps
}

// startWithCaps starts the built bridge, as root, with the embedded
// platform under setpriv: a bounding set of exactly caps and no new
// privileges, as systemd starts the unit. It returns the bridge, or nil
// and why it did not start.
func startWithCaps(t *testing.T, caps []string) (*Bridge, string) {
	t.Helper()
	setpriv := need(t, "setpriv")
	b := newBridge(t, Options{})
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + c
	}
	cmd := exec.Command(setpriv, append([]string{"--no-new-privs", "--bounding-set=" + bounding, "--inh-caps=-all", "--", binary}, b.args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := b.tryRun(cmd, 30*time.Second)
	if b.exited != nil {
		t.Cleanup(b.Stop)
	}
	if err != nil {
		return nil, "did not start: " + err.Error() + "\n" + b.log.String()
	}
	return b, ""
}

// oneOffWorks runs a session on b and says what, if anything, fell short
// of what the embedded platform gives a one-off as root: the command runs
// as nobody, in a network of its own with only its loopback, up; and once
// it ended, what it left in its /tmp (a directory only nobody may enter)
// is gone.
func oneOffWorks(t *testing.T, b *Bridge) string {
	t.Helper()
	r := b.Run("app", nil, `id -u; cat /proc/net/dev; mkdir -p /tmp/a/b && echo y > /tmp/a/b/c && chmod 700 /tmp/a && echo made`)
	if r.Code != 0 || !strings.Contains(r.Stdout, "65534\n") || !strings.HasSuffix(r.Stdout, "made\n") {
		return "session: " + r.Stderr + r.Stdout
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && !strings.Contains(name, "|") && name != "lo" {
			return "the one-off sees the interface " + name + " of the host's network"
		}
	}
	if strings.Contains(b.Log(), "share the host's network") {
		return "the one-off shares the host's network: " + b.Log()
	}
	// The one-off's dir goes once it ended, or the log says it could not.
	platformDir := filepath.Join(b.DataDir, "platform")
	deadline := time.Now().Add(15 * time.Second)
	for {
		entries, err := os.ReadDir(platformDir)
		if err != nil {
			return err.Error()
		}
		left := 0
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				left++
			}
		}
		if left == 0 {
			return ""
		}
		if strings.Contains(b.Log(), "remove one-off dir") || time.Now().After(deadline) {
			return "the one-off's files stayed behind: " + b.Log()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The embedded unit's capabilities are enough for a one-off session
// through a real ssh, and each of them is needed.
func TestSystemdEmbeddedCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs the bridge as root, as bridge-embedded.service does: run it as root")
	}
	caps := embeddedUnitCaps(t)
	b, why := startWithCaps(t, caps)
	if b == nil {
		t.Fatalf("with CapabilityBoundingSet=%v: %s", caps, why)
	}
	if why := oneOffWorks(t, b); why != "" {
		t.Fatalf("with CapabilityBoundingSet=%v: %s", caps, why)
	}
	b.Stop()
	for _, c := range caps {
		fewer := slices.DeleteFunc(slices.Clone(caps), func(x string) bool { return x == c })
		b, why := startWithCaps(t, fewer)
		if b == nil {
			t.Logf("without %s: %s", c, firstLine(why))
			continue // needed to start
		}
		if why := oneOffWorks(t, b); why == "" {
			t.Errorf("without %s a one-off works as well: the unit need not keep it", c)
		} else {
			t.Logf("without %s: %s", c, firstLine(why))
		}
		b.Stop()
	}
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
