package agent_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sshbridge/agent"
)

func TestFindBinaries(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("the agent and these tests are for linux, not %s", runtime.GOOS)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	write := func(dir, name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("agent"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}

	both := t.TempDir()
	amd := write(both, "linux-amd64", 0o755)
	arm := write(both, "linux-arm64", 0o755)
	got, err := agent.FindBinaries(both)
	if err != nil || len(got) != 2 || got["amd64"] != amd || got["arm64"] != arm {
		t.Errorf("FindBinaries with both: %v, %v", got, err)
	}

	// Only the other architecture's: the running executable serves this one.
	onlyOther := t.TempDir()
	o := write(onlyOther, agent.BinaryName(other), 0o755)
	got, err = agent.FindBinaries(onlyOther)
	if err != nil || len(got) != 2 || got[other] != o || got[runtime.GOARCH] != exe {
		t.Errorf("FindBinaries with only %s: %v, %v; want the running executable for %s", other, got, err, runtime.GOARCH)
	}

	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		got, err = agent.FindBinaries(dir)
		if err != nil || len(got) != 1 || got[runtime.GOARCH] != exe {
			t.Errorf("FindBinaries(%q): %v, %v; want only the running executable for %s", dir, got, err, runtime.GOARCH)
		}
	}

	notExec := t.TempDir()
	p := write(notExec, agent.BinaryName(runtime.GOARCH), 0o644)
	if _, err := agent.FindBinaries(notExec); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("FindBinaries with a non-executable %s: %v, want an error naming it", p, err)
	}
}

func TestUploadName(t *testing.T) {
	if got := agent.UploadName("arm64"); got != ".bridge-agent/linux-arm64" {
		t.Errorf("UploadName(arm64) = %q", got)
	}
}
