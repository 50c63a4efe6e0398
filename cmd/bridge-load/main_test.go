package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestOnlyLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:22":     true,
		"127.1.2.3:2222":   true,
		"[::1]:22":         true,
		"localhost:22":     true,
		"10.0.0.1:22":      false,
		"192.0.2.7:22":     false,
		"[2001:db8::1]:22": false,
		"0.0.0.0:22":       false,
		"127.0.0.1":        false, // no port
	} {
		err := checkLoopback(addr)
		if (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

func TestFlagsRefused(t *testing.T) {
	base := []string{"-addr", "127.0.0.1:2222", "-key", "k", "-known-hosts", "h"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-sessions", "5"}, "required"},
		{append(base[:2:2], "-key", "k"), "required"},
		{append(base, "-addr", "192.0.2.1:22"), "not a loopback address"},
		{append(base, "-sessions", "0"), "above 0"},
		{append(base, "-shell-fraction", "1.5"), "0 to 1"},
		{append(base, "-duration", "0s"), "positive"},
		{append(base, "-apps", "0"), "at least 1"},
		{append(base, "extra"), "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags(base, io.Discard); err != nil {
		t.Errorf("parseFlags(%q): %v", base, err)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[int]time.Duration{50: 100 * time.Millisecond, 99: 198 * time.Millisecond, 100: 200 * time.Millisecond, 1: 2 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%d of 1..200 ms = %v, want %v", p, got, want)
		}
	}
	if got := percentile(d[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
}
