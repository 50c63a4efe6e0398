package sftp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sshbridge/uploads"
)

// The test binary doubles as the server end of OpenSSH's clients: `sftp -D`
// runs it directly, and `scp -S` runs it in place of ssh.
const helperEnv = "SSHBRIDGE_SFTP_TEST_STORE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir))
	}
	os.Exit(m.Run())
}

type stdio struct {
	*os.File // stdin
	out      *os.File
}

func (s stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

func helper(dir string) int {
	s, err := uploads.Open(dir, uploads.Limits{MaxFileSize: 8 << 20}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	if err := Serve(context.Background(), stdio{os.Stdin, os.Stdout}, s.Scope("test-user", "app"), Options{Stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// wrapper writes a script that runs this test binary as the server.
func wrapper(t *testing.T, store string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "server.sh")
	script := fmt.Sprintf("#!/bin/sh\n%s='%s' exec '%s' \"$@\"\n", helperEnv, store, exe)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func needClient(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed by this test and is not installed (.ci/run installs it)", name)
	}
	return p
}

func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func staged(t *testing.T, store string) map[string][]byte {
	t.Helper()
	s, err := uploads.Open(store, uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("test-user", "app")
	es, err := sc.Pending()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, e := range es {
		f, _, err := sc.Open(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(f)
		f.Close()
		out[e.Name] = b.Bytes()
	}
	return out
}

func TestOpenSSHSftpClient(t *testing.T) {
	sftpBin := needClient(t, "sftp")
	store := t.TempDir()
	local := t.TempDir()
	files := map[string][]byte{
		"zero":                   nil,
		"one":                    {'1'},
		"big.bin":                randomBytes(5<<20 + 3),
		"tree/a":                 []byte("a"),
		"tree/sub/b c":           []byte("b"),
		"tree/sub/deeper/-dash":  []byte("dash"),
		"tree/sub/deeper/ünïcod": []byte("u"),
	}
	writeTree(t, local, files)
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte(strings.Join([]string{
		"pwd",
		"put zero",
		"put one one.tmp",
		"rename one.tmp one",
		"put big.bin",
		"put -r tree",
		"mkdir empty",
		"rmdir empty",
		"chmod 600 one",
		"ls -l",
		"ls -l tree/sub",
		"get big.bin big.back",
		"df",
		"-put /etc/hostname /etc/hostname",
		"-cd /",
	}, "\n")+"\n"), 0o644)
	cmd := exec.Command(sftpBin, "-D", wrapper(t, store), "-b", batch)
	cmd.Dir = local
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	t.Logf("sftp:\n%s", out)
	if !strings.Contains(string(out), "Remote working directory: /tmp/uploads") {
		t.Errorf("pwd not /tmp/uploads")
	}
	if !strings.Contains(string(out), "-rw-------") {
		t.Errorf("chmod not shown in ls -l")
	}
	back, _ := os.ReadFile(filepath.Join(local, "big.back"))
	if !bytes.Equal(back, files["big.bin"]) {
		t.Errorf("get returned %d bytes, want %d", len(back), len(files["big.bin"]))
	}
	got := staged(t, store)
	if len(got) != len(files) {
		t.Errorf("staged %d files, want %d: %v", len(got), len(files), keys(got))
	}
	for name, data := range files {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: staged %d bytes, want %d", name, len(got[name]), len(data))
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestOpenSSHSftpRefusals(t *testing.T) {
	sftpBin := needClient(t, "sftp")
	store := t.TempDir()
	local := t.TempDir()
	writeTree(t, local, map[string][]byte{"huge": make([]byte, 9<<20)})
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte("put huge\n"), 0o644)
	cmd := exec.Command(sftpBin, "-D", wrapper(t, store), "-b", batch)
	cmd.Dir = local
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("over-size put succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), `upload refused: "huge": file exceeds the per-file upload limit (8 MiB)`) {
		t.Errorf("no clear message:\n%s", out)
	}
	if got := staged(t, store); len(got) != 0 {
		t.Errorf("staged after refusal: %v", keys(got))
	}
}

// OpenSSH 9's scp speaks SFTP to the "sftp" subsystem; -S runs the helper
// in place of ssh.
func TestOpenSSHScpOverSftp(t *testing.T) {
	scpBin := needClient(t, "scp")
	store := t.TempDir()
	local := t.TempDir()
	files := map[string][]byte{
		"f":              []byte("file"),
		"dir/a":          []byte("a"),
		"dir/sub/b":      []byte("b"),
		"dir/sub/deep/c": randomBytes(1 << 20),
	}
	writeTree(t, local, files)
	srv := wrapper(t, store)
	for _, args := range [][]string{
		{"-s", "-S", srv, "f", "host:"},
		{"-s", "-S", srv, "-r", "dir", "host:/tmp/uploads/"},
		{"-s", "-S", srv, "f", "host:/tmp/uploads/dir/renamed"},
	} {
		cmd := exec.Command(scpBin, args...)
		cmd.Dir = local
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scp %q: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command(scpBin, "-s", "-S", srv, "f", "host:/etc/")
	cmd.Dir = local
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("scp to /etc succeeded:\n%s", out)
	}
	got := staged(t, store)
	files["dir/renamed"] = files["f"]
	for name, data := range files {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: staged %d bytes, want %d", name, len(got[name]), len(data))
		}
	}
	if len(got) != len(files) {
		t.Errorf("staged %v", keys(got))
	}
}
