package e2e

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checkFiles writes an authorized_keys file with content into a fresh
// directory and returns the directory, the file and an empty data dir.
func checkFiles(t *testing.T, content string) (dir, authorizedKeys, dataDir string) {
	t.Helper()
	dir = t.TempDir()
	authorizedKeys = filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorizedKeys, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, authorizedKeys, dataDir
}

// emptyDir fails unless dir has no entry: bridge check writes nothing.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("bridge check wrote into %s: %v", dir, entries)
	}
}

// A good configuration: exit 0 and no output at all, as sshd -t; nothing
// is written, and the listen address is not bound (another socket holds it).
func TestCheckGoodConfig(t *testing.T) {
	_, ak, data := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
	hostKey := clientKey(t, "other-user") // any ed25519 private key, mode 0600
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := runBinary(t, nil, "check", "--listen", busy.Addr().String(), "--authorized-keys", ak,
		"--data-dir", data, "--host-key", hostKey)
	if r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
		t.Fatalf("bridge check of a good configuration: want exit 0 and no output, got %+v", r)
	}
	emptyDir(t, data)
}

// Without --host-key and with none in the data dir yet, check says it would
// be made, makes none, and passes.
func TestCheckHostKeyWouldBeMade(t *testing.T) {
	dir, ak, _ := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
	data := filepath.Join(dir, "not-yet")
	r := runBinary(t, nil, "check", "--authorized-keys", ak, "--data-dir", data)
	if r.Code != 0 || r.Stdout != "" {
		t.Fatalf("want exit 0 and nothing on stdout, got %+v", r)
	}
	want := filepath.Join(data, "ssh_host_ed25519_key") + ": no host key yet: the bridge makes one"
	if !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr does not say the host key would be made (%q):\n%s", want, r.Stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("bridge check made the data dir %s (%v)", data, err)
	}
}

// Each broken line of each key file is said as FILE:LINE, not only the
// first; exit 1; nothing on stdout.
func TestCheckBrokenKeyFiles(t *testing.T) {
	good := publicKey(t, clientKey(t, "default"))
	dir, ak, data := checkFiles(t, good+"\n"+
		"this is not a key\n"+
		"# a comment\n"+
		`from="10.0.0.0/8 `+good+"\n"+
		"ssh-ed25519 AAAA!!notbase64\n")
	ca := filepath.Join(dir, "ca_keys")
	if err := os.WriteFile(ca, []byte(`restrict `+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	revoked := filepath.Join(dir, "revoked")
	if err := os.WriteFile(revoked, []byte("\n\nnonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, nil, "check", "--authorized-keys", ak, "--trusted-user-ca-keys", ca,
		"--revoked-keys", revoked, "--data-dir", data, "--host-key", clientKey(t, "other-user"))
	if r.Code != 1 || r.Stdout != "" {
		t.Fatalf("want exit 1 and nothing on stdout, got %+v", r)
	}
	for _, want := range []string{ak + ":2: ", ak + ":4: missing closing quote", ak + ":5: bad base64", ca + ":1: options are not allowed", revoked + ":3: "} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).MatchString(r.Stderr) {
			t.Errorf("stderr has no line starting %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, ak+":1:") || strings.Contains(r.Stderr, ak+":3:") {
		t.Errorf("a good line or a comment is reported:\n%s", r.Stderr)
	}
	emptyDir(t, data)
}

// The host key is checked as the bridge loads it: mode, and a private key;
// the API token file must hold the token; a missing key file is named.
func TestCheckHostKeyTokenAndMissingFiles(t *testing.T) {
	dir, ak, data := checkFiles(t, publicKey(t, clientKey(t, "default"))+"\n")
	open := filepath.Join(dir, "open_host_key")
	raw, err := os.ReadFile(clientKey(t, "other-user"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	notKey := filepath.Join(dir, "not_a_key")
	if err := os.WriteFile(notKey, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("two\nlines\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(dir, "agents")
	if err := os.Mkdir(agentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agentDir, "linux-amd64"), []byte("not a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--host-key", clientKey(t, "other-user"), "--agent-dir", agentDir}, "--agent-dir: agent binaries: " + filepath.Join(agentDir, "linux-amd64") + " is not an executable file"},
		{[]string{"--host-key", open}, "permissions 0644 are too open"},
		{[]string{"--host-key", notKey}, notKey + ": ssh: no key found"},
		{[]string{"--host-key", filepath.Join(dir, "absent")}, "--host-key: host key: stat " + filepath.Join(dir, "absent")},
		{[]string{"--host-key", notKey + "x", "--api-url", "https://api.example", "--api-token-file", token}, "--api-token-file " + token + ": want the API token alone on one line"},
		{[]string{"--host-key", open, "--revoked-keys", filepath.Join(dir, "nope")}, "--revoked-keys " + filepath.Join(dir, "nope") + ": no such file"},
	} {
		args := append([]string{"check", "--authorized-keys", ak, "--data-dir", data}, tc.args...)
		r := runBinary(t, nil, args...)
		if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("bridge %s: want exit 1 saying %q, got %+v", strings.Join(args, " "), tc.want, r)
		}
	}
	// A bad flag is still a usage error, as for the bridge itself.
	if r := runBinary(t, nil, "check", "--max-sessions", "0"); r.Code != 2 || !strings.Contains(r.Stderr, `--max-sessions "0"`) {
		t.Errorf("bad flag: want exit 2 naming it, got %+v", r)
	}
	emptyDir(t, data)
}

// --print-config: one "name value" line per setting, values from the
// environment and the command line, the API token never shown.
func TestPrintConfig(t *testing.T) {
	const marker = "tk-marker-5f1c0ffee"
	r := runBinary(t, []string{"ONEOFF_API_TOKEN=" + marker, "BRIDGE_MAX_SESSIONS=7", "ONEOFF_API_URL=https://api.example"},
		"--print-config", "--upload-quota", "2G", "--env-allow", "FOO,BAR_*")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("--print-config: %+v", r)
	}
	if strings.Contains(r.Stdout, marker) || strings.Contains(r.Stdout, "5f1c0ffee") {
		t.Fatalf("--print-config shows the API token:\n%s", r.Stdout)
	}
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	seen := map[string]string{}
	lineRE := regexp.MustCompile(`^([a-z0-9-]+) (\S.*)$`)
	for _, l := range lines {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a \"name value\" line: %q", l)
		}
		if _, dup := seen[m[1]]; dup {
			t.Errorf("%s printed twice", m[1])
		}
		seen[m[1]] = m[2]
	}
	for name, want := range map[string]string{
		"max-sessions":   "7",
		"upload-quota":   "2G",
		"env-allow":      "FOO,BAR_*",
		"api-url":        "https://api.example",
		"api-token":      "***",
		"listen":         "127.0.0.1:2222",
		"api-token-file": "none",
	} {
		if seen[name] != want {
			t.Errorf("%s: want %q, got %q", name, want, seen[name])
		}
	}
	// Every flag of --help but the ones that are no setting is printed.
	for name := range flagsOfHelp(t, runBinary(t, nil, "--help").Stdout) {
		switch name {
		case "version", "print-config", "keepalive-interval", "keepalive-count-max":
			continue
		}
		if _, ok := seen[name]; !ok {
			t.Errorf("--print-config does not print %s", name)
		}
	}
	// Without a token, no api-token line.
	r = runBinary(t, []string{"ONEOFF_API_TOKEN="}, "--print-config")
	if r.Code != 0 || strings.Contains(r.Stdout, "api-token ") {
		t.Errorf("no token set: want no api-token line, got %+v", r)
	}
}
