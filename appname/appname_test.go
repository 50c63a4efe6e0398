package appname

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for name, want := range map[string]bool{
		"demo-app":              true,
		"a":                     true,
		"0day":                  true,
		"app-":                  true,
		strings.Repeat("x", 64): true,
		strings.Repeat("x", 65): false,
		"":                      false,
		"-app":                  false,
		"Demo-App":              false,
		"demo_app":              false,
		"demo.app":              false,
		"demo app":              false,
		"demo/app":              false,
		"demo-*":                false,
		"demo-?":                false,
		"demo-[a]":              false,
		"démo":                  false,
		"demo\x00":              false,
		"demo\n":                false,
	} {
		if got := Valid(name); got != want {
			t.Errorf("Valid(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	f.Add("demo-app")
	f.Add("Demo_App.x")
	f.Fuzz(func(t *testing.T, name string) {
		if !Valid(name) {
			return
		}
		if len(name) > MaxLen || strings.HasPrefix(name, "-") || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Fatalf("Valid(%q) but outside the rule", name)
		}
	})
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		user, app string
		conn      bool
		valid     bool // Valid(app)
	}{
		{"demo-app", "demo-app", false, true},
		{"demo-app+conn", "demo-app", true, true},
		{"a+conn", "a", true, true},
		{"0day+conn", "0day", true, true},
		{"+conn", "", true, false},
		{"demo-app+CONN", "demo-app+CONN", false, false},
		{"demo-app+connection", "demo-app+connection", false, false},
		{"demo-app+con", "demo-app+con", false, false},
		{"demo-app+", "demo-app+", false, false},
		{"demo+x", "demo+x", false, false},
		{"demo-app+conn+conn", "demo-app+conn", true, false},
		{"demo-app +conn", "demo-app ", true, false},
		{"Demo-App+conn", "Demo-App", true, false},
		{"conn", "conn", false, true},
		{"", "", false, false},
		{strings.Repeat("x", 64) + "+conn", strings.Repeat("x", 64), true, true},
		{strings.Repeat("x", 65) + "+conn", strings.Repeat("x", 65), true, false},
	}
	for _, tt := range tests {
		app, conn := ParseUser(tt.user)
		if app != tt.app || conn != tt.conn {
			t.Errorf("ParseUser(%q) = %q, %v; want %q, %v", tt.user, app, conn, tt.app, tt.conn)
		}
		if Valid(app) != tt.valid {
			t.Errorf("Valid(%q) = %v, want %v", app, !tt.valid, tt.valid)
		}
	}
}

func FuzzParseUser(f *testing.F) {
	f.Add("demo-app+conn")
	f.Add("demo+x")
	f.Fuzz(func(t *testing.T, user string) {
		app, conn := ParseUser(user)
		if conn && app+ConnectionSuffix != user || !conn && (app != user || strings.HasSuffix(user, ConnectionSuffix)) {
			t.Fatalf("ParseUser(%q) = %q, %v", user, app, conn)
		}
	})
}
