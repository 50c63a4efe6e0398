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
