package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxThrottleEntries bounds the memory an address-rotating client can make
// the throttle use; beyond it, stale entries are swept and, failing that,
// new addresses are not tracked.
const maxThrottleEntries = 100_000

// throttle counts failed connections per source address (IPv6 per /64,
// the usual allocation to one host) and refuses an address for a window
// once it reached the limit, leaving other addresses alone. A failed
// connection is one that tried public keys and closed unauthenticated:
// counting connections rather than keys spares users whose agent offers
// other keys first, and counting at close cannot be reset by merely
// offering a known public key without its signature.
type throttle struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	entries map[netip.Addr]*throttleEntry
}

type throttleEntry struct {
	first        time.Time // start of the counting window
	failures     int
	blockedUntil time.Time
}

func newThrottle(maxFailures int, window time.Duration) *throttle {
	if maxFailures == 0 {
		maxFailures = 10
	}
	if window <= 0 {
		window = time.Minute
	}
	return &throttle{max: maxFailures, window: window, entries: map[netip.Addr]*throttleEntry{}}
}

// throttleKey maps an address to its throttle bucket; ok is false when
// the address is unknown (not throttled: nothing to key it by).
func throttleKey(remote net.Addr) (netip.Addr, bool) {
	a, ok := addrOf(remote)
	if !ok {
		return netip.Addr{}, false
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr(), true
	}
	return a, true
}

// addrOf extracts the IP of a connection's remote address.
func addrOf(remote net.Addr) (netip.Addr, bool) {
	switch r := remote.(type) {
	case *net.TCPAddr:
		a, ok := netip.AddrFromSlice(r.IP)
		return a.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		a, err := netip.ParseAddr(remote.String())
		return a.Unmap(), err == nil
	}
	return ap.Addr().Unmap(), true
}

// blocked reports whether the address is refused at time now.
func (t *throttle) blocked(remote net.Addr, now time.Time) bool {
	if t.max < 0 {
		return false
	}
	k, ok := throttleKey(remote)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[k]
	return e != nil && now.Before(e.blockedUntil)
}

// fail records a failed connection; it reports true when this failure made
// the address blocked.
func (t *throttle) fail(remote net.Addr, now time.Time) bool {
	if t.max < 0 {
		return false
	}
	k, ok := throttleKey(remote)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[k]
	if e == nil {
		if len(t.entries) >= maxThrottleEntries {
			t.sweepLocked(now)
			if len(t.entries) >= maxThrottleEntries {
				return false
			}
		}
		e = &throttleEntry{first: now}
		t.entries[k] = e
	}
	if now.Sub(e.first) >= t.window {
		e.first, e.failures = now, 0
	}
	e.failures++
	if e.failures >= t.max && !now.Before(e.blockedUntil) {
		e.blockedUntil = now.Add(t.window)
		e.first, e.failures = e.blockedUntil, 0
		return true
	}
	return false
}

func (t *throttle) sweepLocked(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.first) >= t.window && !now.Before(e.blockedUntil) {
			delete(t.entries, k)
		}
	}
}
