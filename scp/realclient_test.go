package scp

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sshbridge/uploads"
)

// The test binary doubles as the remote end of `scp -O -S <wrapper>`: scp
// runs the wrapper as it would run ssh, with the remote command last.
const helperEnv = "SSHBRIDGE_SCP_TEST_STORE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }

func helper(dir string, args []string) int {
	if len(args) == 0 || !IsCommand(args[len(args)-1]) {
		fmt.Fprintf(os.Stderr, "helper: not an scp command: %q\n", args)
		return 2
	}
	s, err := uploads.Open(dir, uploads.Limits{MaxFileSize: 4 << 20}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	return Run(context.Background(), stdio{}, os.Stderr, s.Scope("test-user", "app"), args[len(args)-1], nil)
}

func TestOpenSSHScpLegacy(t *testing.T) {
	scpBin, err := exec.LookPath("scp")
	if err != nil {
		t.Fatal("scp is needed by this test and is not installed (.ci/run installs it)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	wrapper := filepath.Join(t.TempDir(), "ssh.sh")
	os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\n%s='%s' exec '%s' \"$@\"\n", helperEnv, store, exe)), 0o755)

	local := t.TempDir()
	big := make([]byte, 3<<20+1)
	rand.Read(big)
	files := map[string][]byte{
		"zero":                nil,
		"one":                 {'1'},
		"big":                 big,
		"tree/a":              []byte("a"),
		"tree/sub/b c":        []byte("b"),
		"tree/sub/deep/-dash": []byte("d"),
	}
	for name, data := range files {
		p := filepath.Join(local, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o640)
	}
	os.WriteFile(filepath.Join(local, "huge"), make([]byte, 5<<20), 0o644)
	scp := func(args ...string) (string, error) {
		cmd := exec.Command(scpBin, append([]string{"-O", "-S", wrapper}, args...)...)
		cmd.Dir = local
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{
		{"zero", "one", "host:"},
		{"-p", "big", "host:/tmp/uploads/"},
		{"-r", "tree", "host:"},
		{"one", "host:tree/renamed"},
	} {
		if out, err := scp(args...); err != nil {
			t.Fatalf("scp %q: %v\n%s", args, err, out)
		}
	}
	out, err := scp("huge", "one", "host:")
	if err == nil || !strings.Contains(out, `"huge": file exceeds the per-file upload limit (4 MiB)`) {
		t.Errorf("over-size: %v\n%s", err, out)
	}
	if out, err := scp("one", "host:/etc/"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("to /etc: %v\n%s", err, out)
	}

	s, err := uploads.Open(store, uploads.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Scope("test-user", "app")
	files["tree/renamed"] = files["one"]
	es, _ := sc.Pending()
	if len(es) != len(files) {
		t.Errorf("staged %d files, want %d: %+v", len(es), len(files), es)
	}
	for name, data := range files {
		f, _, err := sc.Open(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var b bytes.Buffer
		b.ReadFrom(f)
		f.Close()
		if !bytes.Equal(b.Bytes(), data) {
			t.Errorf("%s: staged %d bytes, want %d", name, b.Len(), len(data))
		}
	}
	if e, _ := sc.Stat("big"); e.Mode != 0o640 {
		t.Errorf("scp -p kept mode %v", e.Mode)
	}
	s.Close() // the helper below opens the store

	// Read back with scp -O from the bridge.
	if out, err := scp("-r", "host:tree", filepath.Join(local, "back")); err != nil {
		t.Fatalf("scp -r from: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(local, "back", "sub", "b c")); string(b) != "b" {
		t.Errorf("read back %q", b)
	}
}
