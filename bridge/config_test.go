package bridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sshbridge/oneoff"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DefaultCommand != "bash" || c.MaxSessions != 10 || c.LoginGraceTime != 30*time.Second ||
		c.ClientAliveInterval != 15*time.Second || c.ClientAliveCountMax != 3 || c.IdleTimeout != 0 || c.MaxOneOffsPerKey != 8 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, c := range []Config{
		{EnvAllow: []string{"BAD-NAME"}},
		{EnvAllow: []string{"A*B"}},
		{EnvAllow: []string{""}},
		{MaxSessions: -1},
		{MaxOneOffsPerKey: -1},
		{LoginGraceTime: -time.Second},
		{ClientAliveCountMax: -2},
		{IdleTimeout: -time.Second},
		{Version: "two words"},
		{Version: "with-dash"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

func TestEnvAllowed(t *testing.T) {
	c := Config{EnvAllow: []string{"DEPLOY_*", "COLOR"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"LANG": true, "LC_ALL": true, "LC_TIME": true, "DEPLOY_ENV": true, "DEPLOY_": true, "COLOR": true,
		"COLORS": false, "PATH": false, "LD_PRELOAD": false, "LANGUAGE": false, "deploy_env": false, "": false,
	} {
		if got := c.envAllowed(name); got != want {
			t.Errorf("envAllowed(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{&oneoff.APIError{Kind: oneoff.ErrAppNotFound}, ExitAppNotFound, `App "demo" was not found on the platform.`},
		{&oneoff.APIError{Kind: oneoff.ErrQuota}, ExitQuota, "The platform refused to start another one-off container for demo (quota or rate limit); try again later."},
		{&oneoff.APIError{Kind: oneoff.ErrOperationFailed, Message: "no\x1b[31m capacity"}, ExitStartFailed, "The one-off container failed to start: no [31m capacity"},
		{&oneoff.APIError{Kind: oneoff.ErrStartTimeout}, ExitStartFailed, "The one-off container did not start in time."},
		{&oneoff.APIError{Kind: oneoff.ErrInactivity}, ExitInactivity, "The platform stopped the one-off container after a period of inactivity."},
		{&oneoff.APIError{Kind: oneoff.ErrUnreachable}, ExitPlatformDown, "The platform is unavailable; try again later."},
		{&oneoff.APIError{Kind: oneoff.ErrMalformed}, ExitPlatformDown, "The platform is unavailable; try again later."},
		{&oneoff.APIError{Kind: oneoff.ErrUnauthorized}, ExitPlatformDown, "The bridge could not authenticate to the platform; tell its operator."},
		{&oneoff.APIError{Kind: oneoff.ErrInvalid}, ExitRequestRefused, "The platform refused the run request as invalid."},
		{fmt.Errorf("start one-off: %w", &oneoff.APIError{Kind: oneoff.ErrAppNotFound}), ExitAppNotFound, `App "demo" was not found on the platform.`},
		{errors.New("something else"), ExitInternal, "The bridge failed to run the session; the cause is in its log."},
	} {
		f := classify("demo", tc.err)
		if f.code != tc.code || f.message != tc.msg {
			t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, f.code, f.message, tc.code, tc.msg)
		}
	}
}

func TestInvalidAppNameMessage(t *testing.T) {
	rule := ": app names are 1 to 64 lowercase letters, digits and dashes, starting with a letter or a digit."
	for name, want := range map[string]string{
		"Demo-App":               `"Demo-App" is not a valid app name` + rule,
		"":                       `"" is not a valid app name` + rule,
		"\x1b[2Jx\n":             `"\x1b[2Jx\n" is not a valid app name` + rule,
		strings.Repeat("A", 200): `"` + strings.Repeat("A", 128) + `"… is not a valid app name` + rule,
	} {
		if got := invalidAppNameMessage(name); got != want {
			t.Errorf("invalidAppNameMessage(%q) = %q, want %q", name, got, want)
		}
	}
}

func FuzzOneLine(f *testing.F) {
	f.Add("plain message")
	f.Add("line\nbreak\x1b[2J\x7f\u0085")
	f.Fuzz(func(t *testing.T, s string) {
		out := oneLine(s)
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("control character %U in %q", r, out)
			}
		}
		if n := len([]rune(out)); n > 201 {
			t.Fatalf("%d runes", n)
		}
	})
}
