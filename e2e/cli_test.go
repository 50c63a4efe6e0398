package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// runBinary runs the built bridge with args and extra environment, and
// returns its output and exit code.
func runBinary(t *testing.T, env []string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	return runCmd(t, cmd, nil)
}

// oneLine fails unless s is exactly one line.
func oneLine(t *testing.T, what, s string) string {
	t.Helper()
	if lines := strings.Split(strings.TrimRight(s, "\n"), "\n"); len(lines) != 1 || lines[0] == "" {
		t.Fatalf("%s: want one line, got %d:\n%s", what, len(lines), s)
	}
	return strings.TrimSpace(s)
}

// --help: subcommands first, then each flag once with its variable and its
// default; and the README's configuration table says the same.
func TestHelp(t *testing.T) {
	r := runBinary(t, nil, "--help")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("--help: %+v", r)
	}
	out := r.Stdout
	usage, flags := strings.Index(out, "Usage:"), strings.Index(out, "Flags")
	if usage < 0 || flags < usage {
		t.Fatalf("subcommands should come before the flags:\n%s", out)
	}
	for _, sub := range []string{"bridge platform", "bridge healthcheck", "bridge version"} {
		if !strings.Contains(out[usage:flags], sub) {
			t.Errorf("--help does not mention %q before the flags", sub)
		}
	}
	if strings.Contains(out, "(default") {
		t.Errorf("--help shows a default in the flag package's own words:\n%s", out)
	}
	helpEnv := flagsOfHelp(t, out)
	readmeEnv := flagsOfReadme(t)
	for name, env := range helpEnv {
		if strings.Count(out, "\n  --"+name+" ")+strings.Count(out, "\n  --"+name+"\n") != 1 {
			t.Errorf("--%s is not listed exactly once", name)
		}
		if name == "version" || name == "api-token" || name == "print-config" {
			continue
		}
		if env == "" {
			t.Errorf("--%s shows no environment variable", name)
		}
		if readmeEnv[name] != env {
			t.Errorf("--%s: --help says $%s, the README's table says %q", name, env, readmeEnv[name])
		}
	}
	for name := range readmeEnv {
		if _, ok := helpEnv[name]; !ok {
			t.Errorf("the README documents --%s, which --help does not list", name)
		}
	}

	r = runBinary(t, nil, "platform", "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "$PLATFORM_LISTEN; default: 127.0.0.1:8080") {
		t.Fatalf("platform --help: %+v", r)
	}
}

var helpFlagRE = regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
var helpEnvRE = regexp.MustCompile(`^\$([A-Z0-9_]+)[;\n]`)

// flagsOfHelp maps each flag of the usage text to its variable.
func flagsOfHelp(t *testing.T, out string) map[string]string {
	t.Helper()
	flags := map[string]string{}
	locs := helpFlagRE.FindAllStringSubmatchIndex(out, -1)
	for i, loc := range locs {
		name := out[loc[2]:loc[3]]
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		block := strings.Join(strings.Fields(out[loc[1]:end]), " ")
		env := ""
		if j := strings.Index(block, "$"); j >= 0 {
			if m := helpEnvRE.FindStringSubmatch(block[j:] + "\n"); m != nil {
				env = m[1]
			}
		}
		flags[name] = env
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in --help:\n%s", len(flags), out)
	}
	return flags
}

var readmeFlagRE = regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\|")

// flagsOfReadme maps each flag of the README's Configuration table to its
// variable.
func flagsOfReadme(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, m := range readmeFlagRE.FindAllStringSubmatch(string(raw), -1) {
		flags[m[1]] = m[2]
	}
	return flags
}

// A bad flag or variable: one line naming it and the fix, exit 2.
func TestBadFlag(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, []string{"--lissten", "127.0.0.1:0"}, []string{"unknown flag --lissten", "did you mean --listen?", "see bridge --help"}},
		{nil, []string{"--upload-quota", "lots"}, []string{`--upload-quota "lots"`, "K, M or G", "see bridge --help"}},
		{[]string{"BRIDGE_SHUTDOWN_GRACE=30"}, nil, []string{`BRIDGE_SHUTDOWN_GRACE="30"`, "90s, 2m", "see bridge --help"}},
		{nil, []string{"serve"}, []string{`unexpected argument "serve"`, "platform, healthcheck, version"}},
		{nil, []string{"--api-token", "secret-value"}, []string{"--api-token is refused", "ONEOFF_API_TOKEN"}},
		{nil, []string{"platform", "--app-quota", "x"}, []string{`bridge platform: --app-quota "x": not a whole number`, "see bridge platform --help"}},
		{nil, []string{"--max-sessions", "0"}, []string{`--max-sessions "0": must be more than 0`}},
		{nil, []string{"--listen", "--data-dir", "/tmp/x"}, []string{`--listen needs a value before --data-dir`}},
		{[]string{"BRIDGE_SHUTDOWN_GRACE=-1s"}, nil, []string{`BRIDGE_SHUTDOWN_GRACE="-1s": must not be negative`}},
		{nil, []string{"--listen", "127.0.0.1:99999"}, []string{`--listen "127.0.0.1:99999": not an address to listen on`}},
		{[]string{"ONEOFF_AUTH_URL=https://auth.example"}, nil, []string{`ONEOFF_AUTH_URL="https://auth.example"`, "--api-url"}},
		{nil, []string{"--env-allow", "A B"}, []string{`--env-allow "A B"`, "not a variable name"}},
	} {
		r := runBinary(t, tc.env, tc.args...)
		if r.Code != 2 || r.Stdout != "" {
			t.Errorf("%v %v: code %d, stdout %q (want 2 and nothing)", tc.env, tc.args, r.Code, r.Stdout)
			continue
		}
		line := oneLine(t, strings.Join(tc.args, " "), r.Stderr)
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%v %v: %q lacks %q", tc.env, tc.args, line, w)
			}
		}
		if strings.Contains(line, "secret-value") {
			t.Errorf("the refusal repeats the token: %q", line)
		}
	}
}

// `bridge version` and `--version`: the version set at build time, else
// what the toolchain stamped (the VCS revision when stamped), and Go's.
func TestVersion(t *testing.T) {
	goVersion := runtime.Version()
	plain := runBinary(t, nil, "version")
	flag := runBinary(t, nil, "--version")
	if plain.Code != 0 || flag.Code != 0 || plain.Stdout != flag.Stdout {
		t.Fatalf("version %+v, --version %+v", plain, flag)
	}
	if line := oneLine(t, "version", plain.Stdout); !strings.HasPrefix(line, "bridge ") || !strings.Contains(line, goVersion) {
		t.Fatalf("version: %q", line)
	}

	dir := t.TempDir()
	stamped := filepath.Join(dir, "bridge-stamped")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", stamped, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(stamped, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "bridge v9.8.7-test ") {
		t.Fatalf("-X main.version: %q, %v", out, err)
	}

	// Built from a plain clone: Go stamps no VCS information in a git
	// worktree, and a developer's checkout may be one.
	clone := filepath.Join(dir, "clone")
	if out, err := exec.Command("git", "clone", "-q", "..", clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	rev, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	vcs := filepath.Join(dir, "bridge-vcs")
	build = exec.Command("go", "build", "-buildvcs=true", "-o", vcs, ".")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = exec.Command(vcs, "--version").Output()
	if err != nil || !strings.Contains(string(out), "revision "+string(rev[:12])) {
		t.Fatalf("a build stamped with VCS information should name revision %.12s: %q, %v", rev, out, err)
	}
}

// A busy address: one line that says which setting changes it, and nothing
// started before the bind (no warning from the embedded platform).
func TestListenAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	home := t.TempDir()
	r := runBinary(t, []string{"HOME=" + home, "XDG_STATE_HOME="}, "--listen", ln.Addr().String(), "--data-dir", filepath.Join(home, "data"))
	if r.Code != 1 {
		t.Fatalf("code %d, want 1: %+v", r.Code, r)
	}
	line := oneLine(t, "address in use", r.Stderr)
	for _, w := range []string{ln.Addr().String(), "address already in use", "--listen", "BRIDGE_LISTEN"} {
		if !strings.Contains(line, w) {
			t.Errorf("%q lacks %q", line, w)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "data")); err == nil {
		t.Errorf("the bridge made its data directory before it could listen")
	}
}

// A key file named but absent (a container with nothing mounted): one line
// that says what the file must hold and how to name another.
func TestAuthorizedKeysFileMissing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "authorized_keys")
	r := runBinary(t, []string{"BRIDGE_AUTHORIZED_KEYS=" + missing}, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	if r.Code != 1 {
		t.Fatalf("code %d, want 1: %+v", r.Code, r)
	}
	line := oneLine(t, "missing key file", r.Stderr)
	for _, w := range []string{"BRIDGE_AUTHORIZED_KEYS " + missing, "no such file", "public keys", "mount"} {
		if !strings.Contains(line, w) {
			t.Errorf("%q lacks %q", line, w)
		}
	}

	r = runBinary(t, nil, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--authorized-keys", dir)
	if line := oneLine(t, "a directory for a key file", r.Stderr); r.Code != 1 || !strings.Contains(line, "--authorized-keys "+dir+": is a directory") {
		t.Errorf("a directory as the key file: %+v", r)
	}

	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, []string{"ONEOFF_API_URL=http://127.0.0.1:9", "ONEOFF_API_TOKEN="},
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--authorized-keys", keys, "--api-token-file", filepath.Join(dir, "token"))
	line = oneLine(t, "missing token file", r.Stderr)
	if r.Code != 1 || !strings.Contains(line, "--api-token-file "+filepath.Join(dir, "token")+": no such file") || !strings.Contains(line, "ONEOFF_API_TOKEN") {
		t.Errorf("a missing token file: %+v", r)
	}
}

// `bridge healthcheck` answers 0 for a listening bridge, found through
// BRIDGE_LISTEN as in the image, and 1 with one line for a closed port. It
// is no failed login: many checks neither penalise the address nor stop a
// login from it.
func TestHealthcheck(t *testing.T) {
	b := StartBridge(t, Options{})
	for range 12 {
		r := runBinary(t, []string{"BRIDGE_LISTEN=" + b.Addr}, "healthcheck")
		if r.Code != 0 || !strings.Contains(r.Stdout, `"SSH-2.0-`) {
			t.Fatalf("healthcheck of a running bridge: %+v", r)
		}
	}
	if r := b.Run("demo-app", nil, "echo", "still-welcome"); r.Code != 0 || !strings.Contains(r.Stdout, "still-welcome") {
		t.Fatalf("a login after the health checks: %+v\n%s", r, b.Log())
	}
	// Each check is a connection that did not authenticate (OpenSSH's
	// noauth penalty, 1 s by default), below the 15 s that penalise a source.
	if strings.Contains(b.Log(), "source penalised") {
		t.Fatalf("health checks penalised their source:\n%s", b.Log())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	r := runBinary(t, nil, "healthcheck", "--listen", closed)
	if r.Code != 1 || r.Stdout != "" {
		t.Fatalf("healthcheck of a closed port: %+v", r)
	}
	if line := oneLine(t, "healthcheck failure", r.Stderr); !strings.Contains(line, closed) {
		t.Fatalf("%q does not name the address", line)
	}
}
