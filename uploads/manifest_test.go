package uploads

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every change reaches the disk: a restart sees the same tree, whether the
// last changes sit in the journal or were folded into the snapshot.
func TestJournalReplayAndCompaction(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir, Limits{})
	sc := s.Scope("u", "a")
	sc.Mkdir("d", 0)
	// Enough files that the journal is folded into a snapshot on the way.
	for i := range 1200 {
		put(t, sc, fmt.Sprintf("d/f%04d", i), []byte{byte(i)})
	}
	if err := sc.Rename("d", "e"); err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		if err := sc.Remove(fmt.Sprintf("e/f%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mode := os.FileMode(0o600)
	sc.Setattr("e/f1199", Attrs{Mode: &mode})
	want := tree(t, sc)
	s.Close()

	scopeDir := s.scopeDir(sc.key)
	if _, err := os.Stat(filepath.Join(scopeDir, manifestName)); err != nil {
		t.Fatalf("no snapshot after many changes: %v", err)
	}
	// A crash mid-append leaves a torn last line: it is ignored.
	f, err := os.OpenFile(filepath.Join(scopeDir, journalName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"del_files":["e/f1`)
	f.Close()

	s2, _ := newStore(t, dir, Limits{})
	sc2 := s2.Scope("u", "a")
	if got := tree(t, sc2); got != want {
		t.Fatalf("after restart:\n%.300s\nwant\n%.300s", got, want)
	}
	if e, _ := sc2.Stat("e/f1199"); e.Mode != 0o600 {
		t.Fatalf("mode after restart = %v", e.Mode)
	}
	if used, _ := sc2.Usage(); used != 600 {
		t.Fatalf("usage after restart = %d", used)
	}
	// Emptied, the scope leaves nothing on disk.
	d, err := sc2.Deliver(t.Context(), func(_ context.Context, _ string, _ int64, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	}, nil)
	if err == nil {
		err = d.Commit()
	}
	if err != nil {
		t.Fatal(err)
	}
	// Delivered files are removed off the session's path; Close waits for it.
	s2.Close()
	if _, err := os.Stat(scopeDir); !os.IsNotExist(err) {
		out, _ := exec.Command("find", filepath.Dir(scopeDir)).CombinedOutput()
		t.Fatalf("empty scope left %v\n%s", err, out)
	}
}

func tree(t *testing.T, sc *Scope) string {
	t.Helper()
	var out []string
	var walk func(string)
	walk = func(dir string) {
		es, err := sc.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, fmt.Sprintf("%s %d %v", e.Name, e.Size, e.Mode))
			if e.IsDir() {
				walk(e.Name)
			}
		}
	}
	walk("")
	return strings.Join(out, "\n")
}
