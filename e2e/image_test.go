package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No Docker engine runs where the tests do: the image is checked through
// its parts. The binary is built with the Dockerfile's own build command
// (read from it), and must be static, carry the fallback CA roots and take
// its version from the VERSION build argument; the context must leave .git
// out; the health check must be the binary's own.
func TestImage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := strings.ReplaceAll(string(raw), "\\\n", " ")

	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0) go build (.*) -o /out/bridge \.$`).FindStringSubmatch(dockerfile)
	if build == nil {
		t.Fatalf("no `RUN CGO_ENABLED=0 go build … -o /out/bridge .` in the Dockerfile")
	}
	if !regexp.MustCompile(`(?m)^ARG VERSION=`).MatchString(dockerfile) {
		t.Fatalf("the Dockerfile takes no VERSION build argument")
	}
	out := filepath.Join(t.TempDir(), "bridge")
	script := "go build " + strings.ReplaceAll(build[2], "${VERSION}", "v0.0.0-image") + " -o " + out + " ."
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), build[1])
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	info, err := exec.Command("go", "version", "-m", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"golang.org/x/crypto/x509roots/fallback", "CGO_ENABLED=0", "-trimpath=true"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("go version -m of the image's binary lacks %q:\n%s", want, info)
		}
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "bridge v0.0.0-image ") {
		t.Errorf("the image's binary: version %q, %v", v, err)
	}

	healthcheck := regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/bridge", "healthcheck"\]$`)
	if !healthcheck.MatchString(dockerfile) {
		t.Errorf("no HEALTHCHECK running `bridge healthcheck`")
	}
	if !strings.Contains(dockerfile, "BRIDGE_LISTEN=0.0.0.0:2222") {
		t.Errorf("the image does not set BRIDGE_LISTEN, which the health check reads")
	}

	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	lines := strings.Fields(string(ignore))
	if !slices.Contains(lines, ".git") {
		t.Errorf(".dockerignore does not leave out .git")
	}
	for _, pkg := range []string{"bridge", "/bridge", "auth", "main.go", "go.mod"} {
		if slices.Contains(lines, pkg) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", pkg)
		}
	}
}
