package auth

import (
	"net"
	"testing"
	"time"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestThrottle(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(3, time.Minute)
	a, b := tcp("192.0.2.1:1000"), tcp("192.0.2.2:1000")

	th.fail(a, now)
	th.fail(a, now.Add(10*time.Second))
	if th.blocked(a, now.Add(11*time.Second)) {
		t.Fatal("blocked before the limit")
	}
	// The window restarts: old failures are forgotten.
	th.fail(a, now.Add(61*time.Second))
	th.fail(a, now.Add(62*time.Second))
	if th.blocked(a, now.Add(62*time.Second)) {
		t.Fatal("failures of an old window counted")
	}
	if !th.fail(a, now.Add(63*time.Second)) {
		t.Fatal("third failure in the window did not block")
	}
	// Another port of the same address is the same client; another
	// address is not.
	if !th.blocked(tcp("192.0.2.1:2000"), now.Add(64*time.Second)) || th.blocked(b, now.Add(64*time.Second)) {
		t.Fatal("wrong address blocked")
	}
	if th.blocked(a, now.Add(63*time.Second+time.Minute)) {
		t.Fatal("still blocked after the window")
	}

	// IPv6 counts per /64.
	th.fail(tcp("[2001:db8:1:2::1]:1"), now)
	th.fail(tcp("[2001:db8:1:2::2]:1"), now)
	th.fail(tcp("[2001:db8:1:2:ffff::3]:1"), now)
	if !th.blocked(tcp("[2001:db8:1:2::99]:1"), now) || th.blocked(tcp("[2001:db8:1:3::1]:1"), now) {
		t.Fatal("IPv6 /64 grouping")
	}

	// Disabled.
	off := newThrottle(-1, 0)
	for range 100 {
		off.fail(a, now)
	}
	if off.blocked(a, now) {
		t.Fatal("a disabled throttle blocked")
	}
	// An unknown address is never throttled.
	if th.fail(nil, now) || th.blocked(nil, now) {
		t.Fatal("nil address")
	}
}

func TestThrottleBounded(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(2, time.Minute)
	for i := range maxThrottleEntries + 10 {
		ip := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))
		th.fail(&net.TCPAddr{IP: ip, Port: 1}, now)
	}
	if len(th.entries) > maxThrottleEntries {
		t.Fatalf("%d entries", len(th.entries))
	}
	// Stale entries make room again.
	th.fail(tcp("192.0.2.9:1"), now.Add(2*time.Minute))
	if len(th.entries) != 1 {
		t.Fatalf("%d entries after a sweep", len(th.entries))
	}
}
