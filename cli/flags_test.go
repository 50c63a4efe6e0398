package cli

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	listen  string
	size    int64
	wait    time.Duration
	count   int
	names   []string
	level   slog.Level
	version bool
}

func testSet(c *testConfig) *FlagSet {
	fs := NewFlagSet("bridge")
	fs.Commands = []string{"platform", "version"}
	fs.Bool(&c.version, "version", "", "print the version")
	fs.String(&c.listen, "listen", "TEST_LISTEN", "127.0.0.1:2222", "address to listen on").Arg("ADDR")
	fs.Size(&c.size, "upload-quota", "TEST_QUOTA", 1<<30, "pending bytes")
	fs.Duration(&c.wait, "start-timeout", "TEST_TIMEOUT", 2*time.Minute, "start deadline")
	fs.Int(&c.count, "max-sessions", "TEST_MAX", 10, "sessions")
	fs.List(&c.names, "env-allow", "TEST_ALLOW", "names").Arg("NAMES")
	fs.Level(&c.level, "log-level", "TEST_LEVEL", slog.LevelInfo, "level")
	fs.Lookup("max-sessions").Check(Positive(&c.count))
	fs.Lookup("listen").Check(HostPort(&c.listen))
	return fs
}

func TestParseErrorsAreOneLineNamingTheFix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--lissten", "x"}, nil, `bridge: unknown flag --lissten (did you mean --listen?); see bridge --help`},
		{[]string{"-v"}, nil, `bridge: unknown flag -v (did you mean --version?); see bridge --help`},
		{[]string{"--upload"}, nil, `bridge: unknown flag --upload (did you mean --upload-quota?); see bridge --help`},
		{[]string{"--nothing-like-it"}, nil, `bridge: unknown flag --nothing-like-it; see bridge --help`},
		{[]string{"--listen"}, nil, `bridge: --listen needs a value, as in --listen ADDR; see bridge --help`},
		{[]string{"--listen", "--max-sessions", "3"}, nil, `bridge: --listen needs a value before --max-sessions, as in --listen ADDR; see bridge --help`},
		{[]string{"--upload-quota", "--listen=x"}, nil, `bridge: --upload-quota needs a value before --listen, as in --upload-quota SIZE; see bridge --help`},
		{[]string{"--upload-quota", "12X"}, nil, `bridge: --upload-quota "12X": not a size (a whole number of bytes, optionally with K, M or G); see bridge --help`},
		{[]string{"--start-timeout=5"}, nil, `bridge: --start-timeout "5": not a duration (a number with a unit: 90s, 2m, 1h30m); see bridge --help`},
		{[]string{"--max-sessions", "ten"}, nil, `bridge: --max-sessions "ten": not a whole number; see bridge --help`},
		{[]string{"--log-level", "loud"}, nil, `bridge: --log-level "loud": not a log level (debug, info, warn or error); see bridge --help`},
		{[]string{"serve"}, nil, `bridge: unexpected argument "serve": give flags, or one of the commands platform, version first; see bridge --help`},
		{[]string{"--max-sessions", "0"}, nil, `bridge: --max-sessions "0": must be more than 0; see bridge --help`},
		{nil, map[string]string{"TEST_MAX": "-2"}, `bridge: TEST_MAX="-2": must be more than 0; see bridge --help`},
		{[]string{"--max-sessions", "-2"}, map[string]string{"TEST_MAX": "5"}, `bridge: --max-sessions "-2": must be more than 0; see bridge --help`},
		{[]string{"--listen", "localhost"}, nil, `bridge: --listen "localhost": not an address to listen on (HOST:PORT, as 127.0.0.1:2222, :2222 or [::1]:2222); see bridge --help`},
		{nil, map[string]string{"TEST_QUOTA": "-1"}, `bridge: TEST_QUOTA="-1": not a size (a whole number of bytes, optionally with K, M or G); see bridge --help`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var c testConfig
		err := testSet(&c).Parse(tc.args)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: err = %v, want a *cli.Error", tc.args, err)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error spans lines", tc.args)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}

func TestFlagWinsOverVariable(t *testing.T) {
	t.Setenv("TEST_LISTEN", "0.0.0.0:22")
	t.Setenv("TEST_QUOTA", "2G")
	t.Setenv("TEST_ALLOW", "A, B*,")
	t.Setenv("TEST_LEVEL", "")
	var c testConfig
	if err := testSet(&c).Parse([]string{"--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if c.listen != "127.0.0.1:0" || c.size != 2<<30 || strings.Join(c.names, "|") != "A|B*" || c.level != slog.LevelInfo {
		t.Fatalf("got %+v", c)
	}
}

func TestSourceNamesWhatTheUserGave(t *testing.T) {
	t.Setenv("TEST_LISTEN", "0.0.0.0:22")
	t.Setenv("TEST_MAX", "3")
	var c testConfig
	fs := testSet(&c)
	if err := fs.Parse([]string{"--max-sessions", "4"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"listen": "TEST_LISTEN", "max-sessions": "--max-sessions", "upload-quota": "--upload-quota"} {
		if got := fs.Lookup(name).Source(); got != want {
			t.Errorf("Source(%s) = %q, want %q", name, got, want)
		}
	}
	if got := fs.Errorf("listen", "is busy").Error(); got != `bridge: TEST_LISTEN="0.0.0.0:22": is busy; see bridge --help` {
		t.Errorf("Errorf: %s", got)
	}
}

func TestHelp(t *testing.T) {
	var c testConfig
	if err := testSet(&c).Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var b strings.Builder
	testSet(&c).WriteUsage(&b, Section{Title: "Usage", Lines: [][2]string{{"bridge platform", "the platform"}}})
	out := b.String()
	if !strings.HasPrefix(out, "Usage:\n  bridge platform") {
		t.Errorf("subcommands do not come first:\n%s", out)
	}
	for _, want := range []string{
		"--listen ADDR", "$TEST_LISTEN; default: 127.0.0.1:2222",
		"$TEST_QUOTA; default: 1G", "$TEST_TIMEOUT; default: 2m", "$TEST_LEVEL; default: info",
		"$TEST_ALLOW; default: none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "--upload-quota") != 1 || strings.Count(out, "default") != 6 {
		t.Errorf("a flag or default shows more than once:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > usageWidth {
			t.Errorf("line over %d columns: %q", usageWidth, line)
		}
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "100M": 100 << 20, "1G": 1 << 30, "16K": 16 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "1.5G", "M", "99999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
	for n, want := range map[int64]string{0: "0", 100 << 20: "100M", 1 << 30: "1G", 1500: "1500", 3 << 10: "3K"} {
		s := Size(n)
		if got := s.String(); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", 30 * time.Second: "30s", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 0: "0s"} {
		v := Duration(d)
		if got := v.String(); got != want {
			t.Errorf("%v shows as %q, want %q", d, got, want)
		}
	}
}

// An alias sets the same value; errors and Source name it as the user gave it.
func TestAlias(t *testing.T) {
	var c testConfig
	fs := testSet(&c)
	fs.Alias("sessions", "TEST_OLD_MAX", "max-sessions")
	if err := fs.Parse([]string{"--sessions", "7"}); err != nil || c.count != 7 {
		t.Fatalf("--sessions 7: %v, count %d", err, c.count)
	}
	if got := fs.Lookup("max-sessions").Source(); got != "--sessions" {
		t.Errorf("Source = %q, want --sessions", got)
	}
	t.Setenv("TEST_OLD_MAX", "0")
	fs = testSet(&c)
	fs.Alias("sessions", "TEST_OLD_MAX", "max-sessions")
	err := fs.Parse(nil)
	if err == nil || err.Error() != `bridge: TEST_OLD_MAX="0": must be more than 0; see bridge --help` {
		t.Fatalf("alias variable out of range: %v", err)
	}
	var b strings.Builder
	fs.WriteUsage(&b)
	if !strings.Contains(b.String(), "the older name of --max-sessions") {
		t.Errorf("usage does not say what the alias names:\n%s", b.String())
	}
}
