package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrDropped is wrapped by Admit's error for a connection it turns away.
var ErrDropped = errors.New("connection dropped")

// AdmissionConfig configures an Admission. The zero value of each field
// means the default documented beside it.
type AdmissionConfig struct {
	// MaxStartups caps unauthenticated connections in total (OpenSSH's
	// MaxStartups). Zero: DefaultMaxStartups.
	MaxStartups MaxStartups
	// PerSourceMaxStartups caps unauthenticated connections from one
	// source (OpenSSH's PerSourceMaxStartups). 0: DefaultPerSourceMaxStartups.
	PerSourceMaxStartups int
	// Penalties are the per-source penalties (OpenSSH's
	// PerSourcePenalties). Zero: DefaultPenalties.
	Penalties Penalties
	// ExemptList names the sources that are never penalised (OpenSSH's
	// PerSourcePenaltyExemptList). Nil: none.
	ExemptList ExemptList
	// LoginGrace is the login grace time of connections from sources that
	// are not penalised, for Startup.Grace. 0: 30 s.
	LoginGrace time.Duration
	// Logger receives a line when a source becomes penalised and, at most
	// once a second, one that counts dropped connections. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Roll returns a number from 0 to 99 for MaxStartups' random early
	// drop; nil: math/rand/v2.
	Roll func() int
}

// Admission decides which new connections may go on to authenticate, and
// keeps each source address's penalty. A source is an IPv4 address, or an
// IPv6 /64 (the usual allocation to one host or site). It is safe for
// concurrent use.
type Admission struct {
	cfg AdmissionConfig
	log *slog.Logger

	mu        sync.Mutex
	pending   int                   // unauthenticated connections
	bySource  map[netip.Addr]int    // unauthenticated connections per source; no zero entries
	penalty   map[netip.Addr]*entry // sources with a penalty, possibly run out
	count4    int                   // IPv4 entries of penalty
	dropped   int                   // drops not yet logged
	lastDrop  time.Time             // when a drop was last logged
	lastSweep time.Time             // when run-out penalties were last dropped
}

// entry is one source's penalty.
type entry struct {
	until  time.Time // the penalty runs out then
	active bool      // it reached Min since it last ran out
}

// NewAdmission checks cfg and fills in its defaults.
func NewAdmission(cfg AdmissionConfig) (*Admission, error) {
	if cfg.MaxStartups.IsZero() {
		cfg.MaxStartups = DefaultMaxStartups
	}
	if err := cfg.MaxStartups.Validate(); err != nil {
		return nil, fmt.Errorf("max startups: %w", err)
	}
	if cfg.PerSourceMaxStartups == 0 {
		cfg.PerSourceMaxStartups = DefaultPerSourceMaxStartups
	}
	if cfg.PerSourceMaxStartups < 0 {
		return nil, errors.New("per-source max startups must be more than 0")
	}
	if cfg.Penalties.IsZero() {
		cfg.Penalties = DefaultPenalties
	}
	if err := cfg.Penalties.Validate(); err != nil {
		return nil, fmt.Errorf("per-source penalties: %w", err)
	}
	if cfg.Penalties.MaxSources4 == 0 {
		cfg.Penalties.MaxSources4 = defaultMaxSources
	}
	if cfg.Penalties.MaxSources6 == 0 {
		cfg.Penalties.MaxSources6 = defaultMaxSources
	}
	if cfg.LoginGrace <= 0 {
		cfg.LoginGrace = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Roll == nil {
		cfg.Roll = func() int { return rand.IntN(100) }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Admission{cfg: cfg, log: log, bySource: map[netip.Addr]int{}, penalty: map[netip.Addr]*entry{}}, nil
}

// Startup is one admitted connection until it authenticates or ends.
type Startup struct {
	a         *Admission
	source    netip.Addr // invalid: unknown source
	exempt    bool       // the address is on the exempt list
	penalised bool
	until     time.Time // when the source's penalty runs out, if penalised

	mu     sync.Mutex
	counts bool // still counted as unauthenticated
	ended  bool
}

// Event is how a connection ended, for its source's penalty.
type Event int

const (
	// EventNone: the connection authenticated and may use its app.
	EventNone Event = iota
	// EventAuthFail: it tried to authenticate and failed (authfail).
	EventAuthFail
	// EventNoAuth: it ended without trying to authenticate (noauth).
	EventNoAuth
	// EventGraceExceeded: it was closed at the login grace time (grace-exceeded).
	EventGraceExceeded
	// EventAppDenied: its key authenticated but may not use the app (app-denied).
	EventAppDenied
)

func (e Event) String() string {
	return [...]string{"none", "authfail", "noauth", "grace-exceeded", "app-denied"}[e]
}

// Admit is asked for each new connection before the key exchange. It
// returns an error wrapping ErrDropped, saying which limit, when the
// connection must be closed at once: its source already holds
// PerSourceMaxStartups unauthenticated connections, or MaxStartups'
// random early drop picked it. A penalty never drops a connection.
func (a *Admission) Admit(remote net.Addr) (*Startup, error) {
	return a.admit(remote, false)
}

// AdmitExempt is Admit for a connection that never earns its source a
// penalty and is never served as penalised, as if its address were on the
// exempt list: a load balancer's own connection (a PROXY protocol v2
// LOCAL health check), whose address every client behind it shares. It
// counts against the caps as any other.
func (a *Admission) AdmitExempt(remote net.Addr) (*Startup, error) {
	return a.admit(remote, true)
}

func (a *Admission) admit(remote net.Addr, exempt bool) (*Startup, error) {
	addr, known := addrOf(remote)
	source := sourceOf(addr)
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var why string
	switch {
	case known && a.bySource[source] >= a.cfg.PerSourceMaxStartups:
		why = fmt.Sprintf("its source already has %d unauthenticated connections (per-source max startups)", a.bySource[source])
	case a.cfg.MaxStartups.drop(a.pending, a.cfg.Roll):
		why = fmt.Sprintf("%d unauthenticated connections (max startups %s)", a.pending, a.cfg.MaxStartups)
	}
	if why != "" {
		a.noteDropLocked(remote, why, now)
		return nil, fmt.Errorf("%w: %s", ErrDropped, why)
	}
	a.pending++
	s := &Startup{a: a, counts: true}
	if known {
		a.bySource[source]++
		s.source = source
		s.exempt = exempt || a.cfg.ExemptList.contains(addr)
		if !s.exempt {
			s.penalised, s.until = a.penalisedLocked(source, now)
		}
	}
	return s, nil
}

// noteDropLocked logs dropped connections, at most one line a second, so
// that a flood cannot flood the log too.
func (a *Admission) noteDropLocked(remote net.Addr, why string, now time.Time) {
	a.dropped++
	if now.Sub(a.lastDrop) < time.Second {
		return
	}
	a.log.Warn("connections dropped before authentication", "count", a.dropped, "last_remote", addrString(remote), "reason", why)
	a.dropped, a.lastDrop = 0, now
}

// Penalised reports whether the connection's source was penalised when it
// was admitted; the penalty then holds for the whole connection.
func (s *Startup) Penalised() bool { return s.penalised }

// PenalisedUntil is when the source's penalty ran out as of admission;
// zero when not penalised.
func (s *Startup) PenalisedUntil() time.Time { return s.until }

// Grace is the connection's login grace time: PenaltyLoginGrace (or the
// configured grace, when shorter) for a penalised source.
func (s *Startup) Grace() time.Duration {
	if s.penalised && PenaltyLoginGrace < s.a.cfg.LoginGrace {
		return PenaltyLoginGrace
	}
	return s.a.cfg.LoginGrace
}

// Authenticated stops counting the connection as unauthenticated.
func (s *Startup) Authenticated() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *Startup) releaseLocked() {
	if !s.counts {
		return
	}
	s.counts = false
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if s.source.IsValid() {
		if a.bySource[s.source]--; a.bySource[s.source] <= 0 {
			delete(a.bySource, s.source)
		}
	}
}

// End is called once the connection ended, with how; only the first call
// counts. It releases the connection's place and adds the event's penalty
// to its source.
func (s *Startup) End(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	s.releaseLocked()
	if s.source.IsValid() && !s.exempt {
		s.a.penalise(s.source, e)
	}
}

// duration is the penalty of an event.
func (p *Penalties) duration(e Event) time.Duration {
	switch e {
	case EventAuthFail:
		return p.AuthFail
	case EventNoAuth:
		return p.NoAuth
	case EventGraceExceeded:
		return p.GraceExceeded
	case EventAppDenied:
		return p.AppDenied
	}
	return 0
}

// penalise adds the event's penalty to source: the penalty grows from
// what is left of it (or from now), up to Max; the source becomes
// penalised once it reaches Min, and stays so until it runs out.
func (a *Admission) penalise(source netip.Addr, e Event) {
	p := &a.cfg.Penalties
	d := p.duration(e)
	if p.Off || d <= 0 {
		return
	}
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	en := a.penalty[source]
	if en == nil {
		if !a.roomLocked(source, now) {
			return
		}
		en = &entry{}
		a.penalty[source] = en
		if source.Is4() {
			a.count4++
		}
	}
	if !now.Before(en.until) {
		en.until, en.active = now, false
	}
	en.until = en.until.Add(d)
	if en.until.Sub(now) > p.Max {
		en.until = now.Add(p.Max)
	}
	if !en.active && en.until.Sub(now) >= p.Min {
		en.active = true
		// Its connections are still served: see Penalties.
		a.log.Warn("source penalised", "source", sourceString(source), "event", e.String(),
			"for", en.until.Sub(now).Round(time.Second).String(), "until", en.until.Format(time.RFC3339))
	}
}

// roomLocked says whether a new source may be tracked, first dropping the
// penalties that ran out when its table is full (at most once a second:
// a full table is what a flood of new sources makes).
func (a *Admission) roomLocked(source netip.Addr, now time.Time) bool {
	if !a.fullLocked(source) {
		return true
	}
	if now.Sub(a.lastSweep) < time.Second {
		return false
	}
	a.lastSweep = now
	for k, en := range a.penalty {
		if !now.Before(en.until) {
			delete(a.penalty, k)
			if k.Is4() {
				a.count4--
			}
		}
	}
	return !a.fullLocked(source)
}

func (a *Admission) fullLocked(source netip.Addr) bool {
	p := &a.cfg.Penalties
	if source.Is4() {
		return a.count4 >= p.MaxSources4
	}
	return len(a.penalty)-a.count4 >= p.MaxSources6
}

// penalisedLocked says whether source is penalised at now, and until when.
// A source not tracked because its table is full is penalised when the
// overflow mode is deny-all.
func (a *Admission) penalisedLocked(source netip.Addr, now time.Time) (bool, time.Time) {
	p := &a.cfg.Penalties
	if p.Off {
		return false, time.Time{}
	}
	en := a.penalty[source]
	if en == nil {
		deny := p.OverflowDenyAll6
		if source.Is4() {
			deny = p.OverflowDenyAll4
		}
		if deny && a.fullLocked(source) && !a.roomLocked(source, now) {
			return true, now.Add(p.Min)
		}
		return false, time.Time{}
	}
	if en.active && now.Before(en.until) {
		return true, en.until
	}
	return false, time.Time{}
}

// sourceOf maps an address to its source: the IPv4 address, or the /64
// of an IPv6 one.
func sourceOf(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func sourceString(source netip.Addr) string {
	if source.Is6() {
		return source.String() + "/64"
	}
	return source.String()
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

// ExemptList is a list of addresses and CIDR blocks whose sources are never
// penalised (OpenSSH's PerSourcePenaltyExemptList).
type ExemptList struct{ l addrList }

// ParseExemptList reads a comma-separated list of addresses and CIDR
// blocks ("10.0.0.0/8,192.0.2.7,2001:db8::/32"). A block with host bits
// set, a wildcard or a negation is an error.
func ParseExemptList(s string) (ExemptList, error) {
	l, err := parseAddrList(strings.TrimSpace(s), true)
	if err != nil {
		return ExemptList{}, err
	}
	return ExemptList{l: l}, nil
}

// contains reports whether the address is exempt.
func (e ExemptList) contains(a netip.Addr) bool {
	return e.l != nil && e.l.allows(a)
}

// String gives the list as ParseExemptList reads it.
func (e ExemptList) String() string {
	parts := make([]string, len(e.l))
	for i, p := range e.l {
		parts[i] = p.prefix.String()
	}
	return strings.Join(parts, ",")
}
