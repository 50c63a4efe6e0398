package auth

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The examples of sshd(8) AUTHORIZED_KEYS FILE FORMAT, with the key left
// out (parseOptions sees only the option text).
func TestParseOptionsOpenSSHExamples(t *testing.T) {
	tests := []struct {
		opts  string
		check func(o keyOptions) bool
	}{
		{`command="dump /home",no-pty,no-port-forwarding`, func(o keyOptions) bool {
			return o.hasCommand && o.command == "dump /home" && o.noPTY && o.noPortFwd && !o.noAgentFwd
		}},
		{`restrict,command="dump /home"`, func(o keyOptions) bool {
			return o.command == "dump /home" && o.noPTY && o.noPortFwd && o.noAgentFwd && o.noX11Fwd && o.noUserRC
		}},
		{`permitopen="192.0.2.1:80",permitopen="192.0.2.2:25"`, func(o keyOptions) bool {
			return slices.Equal(o.permitOpen, []string{"192.0.2.1:80", "192.0.2.2:25"})
		}},
		{`permitlisten="localhost:8080",permitlisten="[::1]:22000"`, func(o keyOptions) bool {
			return slices.Equal(o.permitListen, []string{"localhost:8080", "[::1]:22000"})
		}},
		{`tunnel="0",command="sh /etc/netstart tun0"`, func(o keyOptions) bool {
			return o.tunnel == "0" && o.command == "sh /etc/netstart tun0"
		}},
		{`restrict,pty,command="nethack"`, func(o keyOptions) bool {
			return !o.noPTY && o.noPortFwd && o.noAgentFwd && o.noX11Fwd && o.command == "nethack"
		}},
		{`no-touch-required`, func(o keyOptions) bool { return o.noTouch }},
		{`cert-authority,no-touch-required,principals="user_a"`, func(o keyOptions) bool {
			return o.certAuthority && o.noTouch && slices.Equal(o.principals, []string{"user_a"})
		}},
		{`from="*.sales.example.net,!pc.sales.example.net"`, func(o keyOptions) bool { return len(o.from) == 2 }},
		{`from="!*.dialup.example.com,*.example.com"`, func(o keyOptions) bool { return len(o.from) == 2 && o.from[0].neg }},
		{`environment="PATH=/bin:/usr/bin"`, func(o keyOptions) bool {
			return slices.Equal(o.env, []envVar{{"PATH", "/bin:/usr/bin"}})
		}},
		// Names are case-insensitive; quotes are escaped with \".
		{`NO-PTY,Command="echo \"hi, there\""`, func(o keyOptions) bool { return o.noPTY && o.command == `echo "hi, there"` }},
		// A backslash not before a quote is kept, as sshd does.
		{`command="printf 'a\nb'"`, func(o keyOptions) bool { return o.command == `printf 'a\nb'` }},
		{`restrict,port-forwarding,agent-forwarding,X11-forwarding,user-rc`, func(o keyOptions) bool {
			return o.noPTY && !o.noPortFwd && !o.noAgentFwd && !o.noX11Fwd && !o.noUserRC
		}},
		// Left to right: restrict after pty wins.
		{`pty,restrict`, func(o keyOptions) bool { return o.noPTY }},
		{`apps="demo-*,!demo-secret"`, func(o keyOptions) bool { return o.apps.allows("demo-x") && !o.apps.allows("demo-secret") }},
		// The first environment value of a name wins, as in sshd.
		{`environment="A=1",environment="A=2",environment="B=x=y"`, func(o keyOptions) bool {
			return slices.Equal(o.env, []envVar{{"A", "1"}, {"B", "x=y"}})
		}},
		{`environment="EMPTY="`, func(o keyOptions) bool { return slices.Equal(o.env, []envVar{{"EMPTY", ""}}) }},
		// The earliest expiry wins.
		{`expiry-time="20300101",expiry-time="20290101"`, func(o keyOptions) bool {
			return o.expiry.Equal(time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{`no-agent-forwarding,no-X11-forwarding,no-user-rc`, func(o keyOptions) bool { return o.noAgentFwd && o.noX11Fwd && o.noUserRC }},
	}
	for _, tt := range tests {
		t.Run(tt.opts, func(t *testing.T) {
			o, err := parseOptions(tt.opts, time.UTC)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !tt.check(o) {
				t.Fatalf("wrong result: %+v", o)
			}
		})
	}
}

func TestParseOptionsErrors(t *testing.T) {
	tests := []struct{ opts, want string }{
		{`frobnicate`, `unknown option "frobnicate"`},
		{`no-pty,,no-port-forwarding`, "empty option"},
		{`no-pty,`, "trailing comma"},
		{`command=ls`, "double quotes"},
		{`command="ls`, "missing closing quote"},
		{`command="ls"x`, "after the closing quote"},
		{`command="a",command="b"`, "given twice"},
		{`from="10.0.0.1/8"`, "inconsistent mask"},
		{`from=""`, "empty pattern"},
		{`apps="demo-[",no-pty`, "bad apps pattern"},
		{`apps=""`, "empty pattern"},
		{`apps="a,,b"`, "empty pattern"},
		{`expiry-time="2030"`, "bad time"},
		{`expiry-time="20301301"`, "bad time"},
		{`environment="NOEQUALS"`, "NAME=value"},
		{`environment="BAD-NAME=1"`, "NAME=value"},
		{`principals="a"`, "cert-authority"},
		{`cert-authority,principals="a,,b"`, "empty name"},
		{`no-pty="yes"`, "takes no value"},
		{`command`, "needs a quoted value"},
		{`verify-required`, "not supported"},
		{`permitopen=""`, "bad value"},
	}
	for _, tt := range tests {
		t.Run(tt.opts, func(t *testing.T) {
			_, err := parseOptions(tt.opts, time.UTC)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseExpiry(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"20301231", time.Date(2030, 12, 31, 0, 0, 0, 0, paris)},
		{"203012311530", time.Date(2030, 12, 31, 15, 30, 0, 0, paris)},
		{"20301231153045", time.Date(2030, 12, 31, 15, 30, 45, 0, paris)},
		{"20301231Z", time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"203012311530Z", time.Date(2030, 12, 31, 15, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseExpiry(tt.in, paris)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "2030", "2030123", "2030123115", "20301231153045Z1", "2030-12-31", "20300231"} {
		if _, err := parseExpiry(bad, paris); err == nil {
			t.Errorf("parseExpiry(%q): no error", bad)
		}
	}
}
