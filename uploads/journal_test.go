package uploads

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fullDisk is a journal on a disk that fills up when armed: a write takes
// the first half of its bytes and fails with ENOSPC, as on a full disk.
type fullDisk struct {
	full        bool
	truncateErr error // what Truncate returns instead of truncating; nil: it works
}

func (d *fullDisk) open(name string) (journalFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &fullDiskFile{File: f, d: d}, nil
}

type fullDiskFile struct {
	*os.File
	d *fullDisk
}

func (f *fullDiskFile) Write(p []byte) (int, error) {
	if !f.d.full {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:len(p)/2])
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func (f *fullDiskFile) Truncate(size int64) error {
	if f.d.truncateErr != nil {
		return f.d.truncateErr
	}
	return f.File.Truncate(size)
}

func journalOf(t *testing.T, s *Store, sc *Scope) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.scopeDir(sc.key), journalName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The case: the disk fills, a mkdir fails part-way through its
// journal line, space comes back, a file is put and listed as pending: it
// is still pending after a restart, and the refused mkdir left nothing.
func TestJournalFailedAppendLeavesItAsItWas(t *testing.T) {
	for _, tc := range []struct {
		name        string
		truncateErr error
	}{
		{"undone", nil},
		// The undo fails too: the fragment stays, and the next record
		// must not be swallowed by it.
		{"undo fails", &os.PathError{Op: "truncate", Path: "journal", Err: syscall.EIO}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := newStore(t, dir, Limits{})
			disk := &fullDisk{truncateErr: tc.truncateErr}
			s.openJournal = disk.open
			sc := s.Scope("u", "a")
			put(t, sc, "before.txt", []byte("b"))
			before := journalOf(t, s, sc)

			disk.full = true
			err := sc.Mkdir("d", 0)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("mkdir on a full disk = %v, want ENOSPC", err)
			}
			if _, err := sc.Stat("d"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("the refused directory exists: %v", err)
			}
			after := journalOf(t, s, sc)
			if tc.truncateErr == nil && !bytes.Equal(after, before) {
				t.Fatalf("journal after a failed append:\n%q\nwant it as it was:\n%q", after, before)
			}
			if tc.truncateErr != nil && bytes.HasSuffix(after, []byte("\n")) {
				t.Fatalf("the test's disk did not leave a fragment: %q", after)
			}

			disk.full = false
			put(t, sc, "precious.txt", []byte("precious"))
			if got := strings.Join(pendingNames(t, sc), ","); got != "before.txt,precious.txt" {
				t.Fatalf("pending = %q", got)
			}
			s.Close()

			s2, _ := newStore(t, dir, Limits{})
			sc2 := s2.Scope("u", "a")
			if got := strings.Join(pendingNames(t, sc2), ","); got != "before.txt,precious.txt" {
				t.Fatalf("pending after a restart = %q, want before.txt,precious.txt", got)
			}
			if string(readAll(t, sc2, "precious.txt")) != "precious" {
				t.Fatal("precious.txt has other bytes after a restart")
			}
			if _, err := sc2.Stat("d"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("the refused directory exists after a restart: %v", err)
			}
		})
	}
}

// Reading the journal back loses no complete record: a torn line with a
// whole record after it on the same line (as a failed append left it
// before the journal was cut back) is skipped, and that record and every
// one after it are kept. (A torn line of its own is the "undo fails" case
// above.)
func TestJournalTornLineInTheMiddle(t *testing.T) {
	for _, tc := range []struct {
		name string
		torn func(a, b, c []byte) []byte // the journal, from its three lines
	}{
		{"record glued to a fragment", func(a, b, c []byte) []byte {
			return join(a, b[:len(b)/2], b, c)
		}},
		{"fragment cut inside a name", func(a, b, c []byte) []byte {
			i := bytes.Index(b, []byte(`"path":"`)) + len(`"path":"`) + 2
			return join(a, b[:i], b, c)
		}},
		{"two fragments glued", func(a, b, c []byte) []byte {
			return join(a, b[:len(b)/3], b[:len(b)/2], b, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := newStore(t, dir, Limits{})
			sc := s.Scope("u", "a")
			put(t, sc, "a", []byte("1"))
			put(t, sc, `b "quoted" {"files":`, []byte("22"))
			put(t, sc, "c", []byte("333"))
			lines := bytes.SplitAfter(journalOf(t, s, sc), []byte("\n"))
			if len(lines) != 4 || len(lines[3]) != 0 {
				t.Fatalf("journal has %d lines, want 3", len(lines)-1)
			}
			name := filepath.Join(s.scopeDir(sc.key), journalName)
			s.Close()
			if err := os.WriteFile(name, tc.torn(lines[0], lines[1], lines[2]), 0o600); err != nil {
				t.Fatal(err)
			}

			s2, _ := newStore(t, dir, Limits{})
			sc2 := s2.Scope("u", "a")
			want := `a,b "quoted" {"files":,c`
			if got := strings.Join(pendingNames(t, sc2), ","); got != want {
				t.Fatalf("pending after a restart = %q, want %q", got, want)
			}
			if used, _ := sc2.Usage(); used != 6 {
				t.Fatalf("usage after a restart = %d, want 6", used)
			}
		})
	}
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
