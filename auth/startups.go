package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxStartups caps the unauthenticated connections the bridge holds at
// once, as OpenSSH's MaxStartups "start:rate:full": below Start pending
// connections every new one is served; from Start on, a new one is
// dropped with a probability of Rate percent, rising linearly to 100% at
// Full; at Full and above every new one is dropped (random early drop).
// "N" alone means N:100:N. The zero value means DefaultMaxStartups.
type MaxStartups struct {
	Start, Rate, Full int
}

// DefaultMaxStartups lets a CI fan-out or a NAT through (200 logins at
// once from one address) while bounding what silent connections hold:
// 300 pending connections before any is dropped, none beyond 1000.
// OpenSSH's own default, 10:30:100, is for a host with a few users.
var DefaultMaxStartups = MaxStartups{Start: 300, Rate: 30, Full: 1000}

// DefaultPerSourceMaxStartups is the default cap on unauthenticated
// connections from one source (OpenSSH's PerSourceMaxStartups, which
// defaults to none): above the 200 concurrent logins of a CI fan-out, and
// below DefaultMaxStartups' start, so that one address alone never makes
// the bridge drop other addresses' connections.
const DefaultPerSourceMaxStartups = 250

// maxStartupsLimit bounds the counts: far more connections than a process
// can hold open.
const maxStartupsLimit = 1_000_000

// IsZero reports whether m is the zero value (use the default).
func (m MaxStartups) IsZero() bool { return m == MaxStartups{} }

// ParseMaxStartups reads OpenSSH's MaxStartups syntax: "start:rate:full"
// or "N". Start and full are from 1 to 1,000,000 and start is at most
// full; rate is a percentage from 1 to 100.
func ParseMaxStartups(s string) (MaxStartups, error) {
	const want = `want "start:rate:full" (as 300:30:1000) or one number`
	parts := strings.Split(strings.TrimSpace(s), ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return MaxStartups{}, errors.New(want)
		}
		nums[i] = n
	}
	var m MaxStartups
	switch len(nums) {
	case 1:
		m = MaxStartups{Start: nums[0], Rate: 100, Full: nums[0]}
	case 3:
		m = MaxStartups{Start: nums[0], Rate: nums[1], Full: nums[2]}
	default:
		return MaxStartups{}, errors.New(want)
	}
	if err := m.Validate(); err != nil {
		return MaxStartups{}, err
	}
	return m, nil
}

// Validate checks the ranges ParseMaxStartups documents.
func (m MaxStartups) Validate() error {
	switch {
	case m.Start < 1 || m.Full < 1:
		return errors.New("start and full must be more than 0")
	case m.Full > maxStartupsLimit:
		return fmt.Errorf("full must be at most %d", maxStartupsLimit)
	case m.Start > m.Full:
		return errors.New("start must not be more than full")
	case m.Rate < 1 || m.Rate > 100:
		return errors.New("rate must be a percentage from 1 to 100")
	}
	return nil
}

// String gives m in the syntax ParseMaxStartups reads.
func (m MaxStartups) String() string {
	if m.Start == m.Full && m.Rate == 100 {
		return strconv.Itoa(m.Full)
	}
	return fmt.Sprintf("%d:%d:%d", m.Start, m.Rate, m.Full)
}

// drop says whether a new connection is dropped while pending others are
// unauthenticated; roll returns a number from 0 to 99 at random.
func (m MaxStartups) drop(pending int, roll func() int) bool {
	switch {
	case pending < m.Start:
		return false
	case pending >= m.Full:
		return true
	}
	// From Rate% at Start to 100% at Full.
	p := m.Rate + (100-m.Rate)*(pending-m.Start)/(m.Full-m.Start)
	return roll() < p
}
