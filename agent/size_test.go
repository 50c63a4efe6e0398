package agent_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sshbridge/agent"
)

// maxAgentSize is the most an agent binary may weigh: it is uploaded into
// every connection-mode one-off.
const maxAgentSize = 6 << 20

// TestReleaseAgentsAreSmallAndStatic builds the agents with the
// Dockerfile's own command (read from it) for each architecture, and
// checks that each is a static ELF for that machine of at most 6 MiB, and
// that the image puts them in DefaultBinariesDir.
func TestReleaseAgentsAreSmallAndStatic(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := strings.ReplaceAll(string(raw), "\\\n", " ")
	build := regexp.MustCompile(`(?m)^RUN for arch in ([a-z0-9 ]+); do (CGO_ENABLED=0 GOOS=linux) GOARCH=\$arch go build (.*) -o /out/agents/linux-\$arch \./cmd/bridge-agent \|\| exit 1; done$`).FindStringSubmatch(dockerfile)
	if build == nil {
		t.Fatalf("no `RUN for arch in …; do CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build … -o /out/agents/linux-$arch ./cmd/bridge-agent || exit 1; done` in the Dockerfile")
	}
	if got := strings.Fields(build[1]); strings.Join(got, " ") != strings.Join(agent.Architectures, " ") {
		t.Errorf("the Dockerfile builds agents for %q, want %q", got, agent.Architectures)
	}
	if !regexp.MustCompile(`(?m)^COPY --from=build /out/agents/ ` + regexp.QuoteMeta(agent.DefaultBinariesDir) + `/$`).MatchString(dockerfile) {
		t.Errorf("the Dockerfile does not copy /out/agents/ into %s/", agent.DefaultBinariesDir)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	dir := t.TempDir()
	for _, arch := range agent.Architectures {
		out := filepath.Join(dir, agent.BinaryName(arch))
		script := "go build " + build[3] + " -o " + out + " ./cmd/bridge-agent"
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), append(strings.Fields(build[2]), "GOARCH="+arch)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GOARCH=%s %s: %v\n%s", arch, script, err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("linux-%s: %d bytes (%.2f MiB)", arch, fi.Size(), float64(fi.Size())/(1<<20))
		if fi.Size() > maxAgentSize {
			t.Errorf("linux-%s is %d bytes (%.2f MiB), over the %d (6 MiB) an agent may weigh", arch, fi.Size(), float64(fi.Size())/(1<<20), maxAgentSize)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machines[arch] {
			t.Errorf("linux-%s is an ELF for %v", arch, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("linux-%s is dynamically linked (it has %v)", arch, p.Type)
			}
		}
		f.Close()
		info, err := exec.Command("go", "version", "-m", out).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath=true", "GOARCH=" + arch, "GOOS=linux"} {
			if !strings.Contains(string(info), want) {
				t.Errorf("go version -m of linux-%s lacks %q:\n%s", arch, want, info)
			}
		}
	}
}
