package bridge

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestEnvRefusal(t *testing.T) {
	full := map[string]string{}
	for i := range MaxEnvVars {
		full[fmt.Sprintf("LC_%d", i)] = "v"
	}
	big := map[string]string{"LC_A": strings.Repeat("a", MaxEnvValueBytes), "LC_B": strings.Repeat("b", MaxEnvValueBytes-12)}
	for _, tc := range []struct {
		kept        map[string]string
		name, value string
		want        string
	}{
		{nil, "LANG", "C.UTF-8", ""},
		{nil, "LC_" + strings.Repeat("N", MaxEnvNameBytes-3), "", ""},
		{nil, "LC_" + strings.Repeat("N", MaxEnvNameBytes-2), "", "name too long"},
		{nil, "LC_ALL", strings.Repeat("v", MaxEnvValueBytes), ""},
		{nil, "LC_ALL", strings.Repeat("v", MaxEnvValueBytes+1), "value too long"},
		{full, "LC_NEW", "v", "too many variables"},
		{full, "LC_7", "replaced", ""}, // a kept name again does not count twice
		{big, "LC_C", "", ""},
		{big, "LC_C", "1", "too many bytes in all"},
		{big, "LC_B", strings.Repeat("b", MaxEnvValueBytes-8), ""}, // replacing frees the old value's bytes
	} {
		if got := envRefusal(tc.kept, tc.name, tc.value); got != tc.want {
			t.Errorf("%d kept, %.12s… (%d bytes) = %.12s… (%d bytes): %q, want %q",
				len(tc.kept), tc.name, len(tc.name), tc.value, len(tc.value), got, tc.want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},                          // é is two bytes: not split
		{"a€b", 3, "a"},                         // € is three
		{"\xff\xfe\xfd\xfc\xfb", 2, "\xff\xfe"}, // not UTF-8: cut where asked
	} {
		if got := cut(tc.s, tc.n); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestOneOffCounts(t *testing.T) {
	var c oneOffCounts
	r1, ok1 := c.acquire("SHA256:a", 2)
	_, ok2 := c.acquire("SHA256:a", 2)
	if _, ok := c.acquire("SHA256:a", 2); !ok1 || !ok2 || ok {
		t.Fatalf("third of two: %v %v %v", ok1, ok2, ok)
	}
	if _, ok := c.acquire("SHA256:b", 2); !ok {
		t.Fatal("another key refused")
	}
	r1()
	r1() // a second release gives nothing back
	if _, ok := c.acquire("SHA256:a", 2); !ok {
		t.Fatal("no slot after a release")
	}
	if _, ok := c.acquire("SHA256:a", 2); ok {
		t.Fatal("a double release gave a slot twice")
	}
}

// The first refusals with a message are logged; the rest are counted in
// one line a minute and at the end.
func TestRefusalLogSummaries(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	now := time.Unix(0, 0)
	r := refusalLog{now: func() time.Time { return now }}
	for range 25 {
		r.refused(log, slog.LevelInfo, "refused forwarding", "type", "tcpip-forward")
	}
	r.refused(log, slog.LevelDebug, "ignored environment variable", "name", "X")
	now = now.Add(refusalSummaryEvery)
	r.refused(log, slog.LevelInfo, "refused forwarding", "type", "tcpip-forward") // the 16th unlogged
	for range 4 {
		r.refused(log, slog.LevelInfo, "refused forwarding", "type", "tcpip-forward")
	}
	r.flush()
	r.flush()
	got := out.String()
	if n := strings.Count(got, `level=INFO msg="refused forwarding" type=tcpip-forward`+"\n"); n != refusalLogFirst {
		t.Errorf("%d refusals logged one by one, want %d", n, refusalLogFirst)
	}
	for _, want := range []string{
		`level=INFO msg="refusals not logged" refusal="refused forwarding" count=16` + "\n",
		`level=INFO msg="refusals not logged" refusal="refused forwarding" count=4` + "\n",
		`level=DEBUG msg="ignored environment variable" name=X` + "\n",
	} {
		if strings.Count(got, want) != 1 {
			t.Errorf("want once: %s", want)
		}
	}
	if n := strings.Count(got, "\n"); n != refusalLogFirst+3 {
		t.Errorf("%d lines, want %d:\n%s", n, refusalLogFirst+3, got)
	}
}
