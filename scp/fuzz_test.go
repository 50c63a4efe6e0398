package scp

import (
	"context"
	"io"
	"strings"
	"testing"

	"sshbridge/uploads"
)

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"C0644 5 hello.txt", "D0755 0 dir", "E", "T1600000000 0 1600000000 0",
		"\x01scp: warning", "\x02scp: fatal", "C0644 1 ../x", "C0644 -1 x", "C9999 1 x", "C0644 99999999999999999999 x",
		"T1 2 3", "C0644  x", "", "No match."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRecord(line)
		if err != nil {
			return
		}
		switch r.Kind {
		case KindFile, KindDir:
			if r.Name == "" || r.Name == ".." || r.Name == "." || strings.Contains(r.Name, "/") || r.Size < 0 {
				t.Fatalf("%q parsed to %+v", line, r)
			}
		case KindTimes, KindEndDir, KindWarning, KindFatal:
		default:
			t.Fatalf("%q parsed to kind %d", line, r.Kind)
		}
		// What parses renders back to a line that parses the same.
		again, err := ParseRecord(r.String())
		if err != nil || again.Kind != r.Kind || again.Name != r.Name || again.Size != r.Size ||
			again.Mode != r.Mode || !again.Mtime.Equal(r.Mtime) || again.Message != r.Message {
			t.Fatalf("%q: %+v renders as %q: %+v, %v", line, r, r.String(), again, err)
		}
	})
}

// FuzzSink feeds arbitrary client bytes to the sink: it must end, never
// panic, and stage only valid names.
func FuzzSink(f *testing.F) {
	f.Add("-r -t .", "D0755 0 dir\nC0644 1 a\nx\x00E\n")
	f.Add("-t .", "C0644 5 hello.txt\nhello\x00")
	f.Add("-p -t f", "T1 0 1 0\nC0644 3 f\nabc\x01x\n")
	f.Add("-r -t .", "D0755 0 d\nD0755 0 d\nE\nE\nE\n")
	s, err := uploads.Open(f.TempDir(), uploads.Limits{MaxFileSize: 1 << 10, UserQuota: 4 << 10}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, args, input string) {
		sc := s.Scope("fuzz", "app")
		tr := &transcript{in: strings.NewReader(input)}
		Sink(context.Background(), tr, io.Discard, sc, strings.Fields(args), nil)
		es, _ := sc.Pending()
		for _, e := range es {
			if err := uploads.CheckPath(e.Name); err != nil {
				t.Fatalf("staged %q: %v", e.Name, err)
			}
			sc.Remove(e.Name)
		}
	})
}

func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{`scp -t .`, `scp -t 'a b'`, `scp -t "a\"b"`, `a\ b`, `'`, `"`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err != nil {
			return
		}
		// Words quoted back the simple way split to the same words.
		var b strings.Builder
		for _, w := range words {
			b.WriteString("'" + strings.ReplaceAll(w, "'", `'\''`) + "' ")
		}
		again, err := SplitCommand(b.String())
		if err != nil || strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("%q: %q requoted to %q: %q, %v", s, words, b.String(), again, err)
		}
	})
}
