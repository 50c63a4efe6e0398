package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
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

func TestParseMaxStartups(t *testing.T) {
	tests := []struct {
		in   string
		want MaxStartups
		err  string
	}{
		{in: "10:30:100", want: MaxStartups{10, 30, 100}},
		{in: "300:30:1000", want: MaxStartups{300, 30, 1000}},
		{in: "50", want: MaxStartups{50, 100, 50}},
		{in: " 5:100:5 ", want: MaxStartups{5, 100, 5}},
		{in: "1:1:1", want: MaxStartups{1, 1, 1}},
		{in: "", err: "want"},
		{in: "10:30", err: "want"},
		{in: "10:30:100:1", err: "want"},
		{in: "a:30:100", err: "want"},
		{in: "-1:30:100", err: "want"},
		{in: "0", err: "more than 0"},
		{in: "1:30:1000001", err: "at most 1000000"},
		{in: "0:30:100", err: "more than 0"},
		{in: "100:30:10", err: "start must not be more than full"},
		{in: "10:0:100", err: "percentage"},
		{in: "10:101:100", err: "percentage"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMaxStartups(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			if back, err := ParseMaxStartups(got.String()); err != nil || back != got {
				t.Fatalf("String %q reads back as %v, %v", got.String(), back, err)
			}
		})
	}
}

// The random early drop: never below start, always at full, and in
// between a probability from rate% rising linearly to 100%.
func TestMaxStartupsDrop(t *testing.T) {
	m := MaxStartups{Start: 10, Rate: 30, Full: 20}
	tests := []struct {
		pending, roll int
		drop          bool
	}{
		{0, 0, false},
		{9, 0, false},
		{10, 29, true},  // 30% at start
		{10, 30, false}, // a roll of 30 and above passes
		{15, 64, true},  // 65% half way
		{15, 65, false},
		{19, 92, true}, // 93% just below full
		{19, 93, false},
		{20, 99, true},
		{500, 99, true},
	}
	for _, tt := range tests {
		if got := m.drop(tt.pending, func() int { return tt.roll }); got != tt.drop {
			t.Errorf("%d pending, roll %d: drop %v, want %v", tt.pending, tt.roll, got, tt.drop)
		}
	}
}

func TestParseSSHTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{"0", 0, true},
		{"30s", 30 * time.Second, true},
		{"2m", 2 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1m30s", 90 * time.Second, true},
		{"1d", 24 * time.Hour, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"10M", 10 * time.Minute, true},
		{"", 0, false},
		{"s", 0, false},
		{"1m30", 0, false},
		{"1.5s", 0, false},
		{"-5s", 0, false},
		{"5ms", 0, false},
		{"5x", 0, false},
		{"9999999999s", 0, false},
		{"60w", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSSHTime(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSSHTime(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParsePenalties(t *testing.T) {
	d := DefaultPenalties
	with := func(edit func(p *Penalties)) Penalties {
		p := d
		edit(&p)
		return p
	}
	tests := []struct {
		in   string
		want Penalties
		err  string
	}{
		{in: "yes", want: d},
		{in: "YES", want: d},
		{in: "no", want: Penalties{Off: true}},
		{in: "authfail:2s", want: with(func(p *Penalties) { p.AuthFail = 2 * time.Second })},
		{in: "authfail:2 min:4 max:6", want: with(func(p *Penalties) { p.AuthFail, p.Min, p.Max = 2*time.Second, 4*time.Second, 6*time.Second })},
		{in: "noauth:0s,grace-exceeded:1m", want: with(func(p *Penalties) { p.NoAuth, p.GraceExceeded = 0, time.Minute })},
		{in: "App-Denied:30s", want: with(func(p *Penalties) { p.AppDenied = 30 * time.Second })},
		{in: "max-sources4:10 max-sources6:20 overflow:deny-all overflow6:permissive", want: with(func(p *Penalties) {
			p.MaxSources4, p.MaxSources6, p.OverflowDenyAll4 = 10, 20, true
		})},
		{in: "", err: "empty"},
		{in: "crash:90s", err: "unknown keyword"},
		{in: "authfail", err: "no keyword:value"},
		{in: "authfail:", err: "no keyword:value"},
		{in: "authfail:soon", err: "want a time"},
		{in: "min:20m", err: "must not be more than max"},
		{in: "max:0", err: "max must be more than 0"},
		{in: "max-sources4:0", err: "at least 1"},
		{in: "overflow:maybe", err: "permissive or deny-all"},
		{in: "yes no", err: "no keyword:value"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePenalties(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if back, err := ParsePenalties(got.String()); err != nil || back != got {
				t.Fatalf("String %q reads back as %+v, %v", got.String(), back, err)
			}
		})
	}
	if s := DefaultPenalties.String(); s != "authfail:5s noauth:1s grace-exceeded:10s app-denied:5s max:10m min:15s" {
		t.Fatalf("defaults say %q", s)
	}
}

func TestParseExemptList(t *testing.T) {
	l, err := ParseExemptList("10.0.0.0/8,192.0.2.7,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "192.0.2.7": true, "192.0.2.8": false, "2001:db8:1::1": true,
		"2001:db9::1": false, "::ffff:10.0.0.1": true,
	} {
		a, _ := addrOf(tcp("[" + addr + "]:1"))
		if got := l.contains(a); got != want {
			t.Errorf("%s: exempt %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.1/8", "!10.0.0.0/8", "10.*", "example.com"} {
		if _, err := ParseExemptList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// newAdmission makes an Admission on a settable clock with the given
// penalties and a roll that never drops below full.
func newAdmission(t *testing.T, cfg AdmissionConfig) (*Admission, *testClock, *syncBuffer) {
	t.Helper()
	clock := &testClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	logs := &syncBuffer{}
	cfg.Now = clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Roll == nil {
		cfg.Roll = func() int { return 99 }
	}
	a, err := NewAdmission(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, clock, logs
}

// connect admits one connection from remote and ends it with e.
func connect(t *testing.T, a *Admission, remote string, e Event) *Startup {
	t.Helper()
	s, err := a.Admit(tcp(remote))
	if err != nil {
		t.Fatalf("%s dropped: %v", remote, err)
	}
	s.End(e)
	return s
}

func penalised(t *testing.T, a *Admission, remote string) bool {
	t.Helper()
	s, err := a.Admit(tcp(remote))
	if err != nil {
		t.Fatalf("%s dropped: %v", remote, err)
	}
	defer s.End(EventNone)
	return s.Penalised()
}

// Penalties add up from what is left, up to max; a source is penalised
// once its penalty reaches min and until it runs out; other sources and
// exempt ones are not affected.
func TestAdmissionPenalties(t *testing.T) {
	exempt, _ := ParseExemptList("192.0.2.9")
	a, clock, logs := newAdmission(t, AdmissionConfig{
		Penalties:  Penalties{AuthFail: 5 * time.Second, NoAuth: time.Second, GraceExceeded: 10 * time.Second, AppDenied: 3 * time.Second, Max: 30 * time.Second, Min: 15 * time.Second},
		ExemptList: exempt,
	})
	src, other := "192.0.2.1:1000", "192.0.2.2:1000"

	connect(t, a, src, EventAuthFail) // 5 s
	connect(t, a, src, EventAuthFail) // 10 s
	connect(t, a, src, EventNone)     // an authorized login adds nothing
	if penalised(t, a, src) {
		t.Fatal("penalised below min")
	}
	connect(t, a, src, EventAuthFail) // 15 s: min
	if !penalised(t, a, src) {
		t.Fatal("not penalised at min")
	}
	if penalised(t, a, other) {
		t.Fatal("another source penalised")
	}
	if !strings.Contains(logs.String(), "source penalised") || !strings.Contains(logs.String(), "source=192.0.2.1 ") {
		t.Fatalf("penalty not logged:\n%s", logs)
	}

	// It runs out as time passes: 15 s left, 14 s later still penalised.
	clock.Add(14 * time.Second)
	if !penalised(t, a, src) {
		t.Fatal("penalty ran out early")
	}
	clock.Add(time.Second)
	if penalised(t, a, src) {
		t.Fatal("penalty did not run out")
	}

	// Max caps it: ten grace timeouts hold 30 s, not 100 s.
	for range 10 {
		connect(t, a, src, EventGraceExceeded)
	}
	clock.Add(29 * time.Second)
	if !penalised(t, a, src) {
		t.Fatal("not penalised within max")
	}
	clock.Add(time.Second)
	if penalised(t, a, src) {
		t.Fatal("penalised beyond max")
	}

	// Once run out, it must reach min again: noauth (1 s) and app-denied
	// (3 s) add up from zero.
	for range 3 {
		connect(t, a, src, EventAppDenied) // 9 s
	}
	for range 5 {
		connect(t, a, src, EventNoAuth) // 14 s
	}
	if penalised(t, a, src) {
		t.Fatal("penalised below min after running out")
	}
	connect(t, a, src, EventNoAuth)
	if !penalised(t, a, src) {
		t.Fatal("app-denied and noauth do not add up")
	}

	// An exempt source is never penalised.
	for range 20 {
		connect(t, a, "192.0.2.9:1", EventAuthFail)
	}
	if penalised(t, a, "192.0.2.9:2") {
		t.Fatal("exempt source penalised")
	}
}

// A connection admitted as exempt (a balancer's health check) adds no
// penalty, is not served as penalised, and counts against the caps.
func TestAdmissionExempt(t *testing.T) {
	a, _, _ := newAdmission(t, AdmissionConfig{
		PerSourceMaxStartups: 1,
		Penalties:            Penalties{NoAuth: 10 * time.Second, AuthFail: 10 * time.Second, Max: time.Minute, Min: 10 * time.Second},
	})
	for range 5 {
		s, err := a.AdmitExempt(tcp("192.0.2.1:1"))
		if err != nil {
			t.Fatal(err)
		}
		s.End(EventNoAuth)
	}
	if penalised(t, a, "192.0.2.1:1") {
		t.Fatal("exempt connections penalised their source")
	}
	connect(t, a, "192.0.2.1:1", EventNoAuth)
	s, err := a.AdmitExempt(tcp("192.0.2.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Penalised() {
		t.Fatal("an exempt connection served as penalised")
	}
	if _, err := a.AdmitExempt(tcp("192.0.2.1:2")); !errors.Is(err, ErrDropped) {
		t.Fatalf("an exempt connection over the per-source cap: %v, want dropped", err)
	}
	s.End(EventNone)
	if !penalised(t, a, "192.0.2.1:1") {
		t.Fatal("the control connection did not penalise")
	}
}

func TestAdmissionPenaltiesIPv6PerSlash64(t *testing.T) {
	a, _, _ := newAdmission(t, AdmissionConfig{Penalties: Penalties{AuthFail: 10 * time.Second, Max: time.Minute, Min: 10 * time.Second}})
	connect(t, a, "[2001:db8:1:2::1]:1", EventAuthFail)
	if !penalised(t, a, "[2001:db8:1:2::ffff]:1") {
		t.Fatal("another address of the same /64 not penalised")
	}
	if penalised(t, a, "[2001:db8:1:3::1]:1") {
		t.Fatal("another /64 penalised")
	}
}

func TestAdmissionPenaltiesOff(t *testing.T) {
	a, _, _ := newAdmission(t, AdmissionConfig{Penalties: Penalties{Off: true}})
	for range 100 {
		connect(t, a, "192.0.2.1:1", EventAuthFail)
	}
	if penalised(t, a, "192.0.2.1:1") {
		t.Fatal("penalised with penalties off")
	}
}

// The table of sources is bounded; beyond it, new sources go unpenalised
// (permissive) or are all penalised (deny-all), until entries run out.
func TestAdmissionPenaltiesOverflow(t *testing.T) {
	for _, deny := range []bool{false, true} {
		t.Run(fmt.Sprintf("deny-all=%v", deny), func(t *testing.T) {
			a, clock, _ := newAdmission(t, AdmissionConfig{Penalties: Penalties{
				AuthFail: 20 * time.Second, Max: time.Minute, Min: 20 * time.Second,
				MaxSources4: 2, OverflowDenyAll4: deny,
			}})
			connect(t, a, "192.0.2.1:1", EventAuthFail)
			connect(t, a, "192.0.2.2:1", EventAuthFail)
			connect(t, a, "192.0.2.3:1", EventAuthFail) // not tracked
			if got := penalised(t, a, "192.0.2.3:1"); got != deny {
				t.Fatalf("a source beyond the table: penalised %v", got)
			}
			if got := penalised(t, a, "192.0.2.4:1"); got != deny {
				t.Fatalf("a clean source while the table is full: penalised %v", got)
			}
			if len(a.penalty) != 2 {
				t.Fatalf("%d sources tracked", len(a.penalty))
			}
			// IPv6 has its own table.
			connect(t, a, "[2001:db8::1]:1", EventAuthFail)
			if !penalised(t, a, "[2001:db8::1]:1") {
				t.Fatal("IPv6 refused by the IPv4 table")
			}
			clock.Add(20 * time.Second)
			connect(t, a, "192.0.2.3:1", EventAuthFail) // room again
			if !penalised(t, a, "192.0.2.3:1") || penalised(t, a, "192.0.2.4:1") {
				t.Fatal("the table did not make room once penalties ran out")
			}
		})
	}
}

// Unauthenticated connections are capped per source and in total;
// authenticating or ending frees the place.
func TestAdmissionStartups(t *testing.T) {
	roll := 99
	a, _, logs := newAdmission(t, AdmissionConfig{
		MaxStartups:          MaxStartups{Start: 4, Rate: 50, Full: 6},
		PerSourceMaxStartups: 3,
		Roll:                 func() int { return roll },
	})
	var held []*Startup
	admit := func(remote string) error {
		s, err := a.Admit(tcp(remote))
		if err == nil {
			held = append(held, s)
		}
		return err
	}
	for i := range 3 {
		if err := admit("192.0.2.1:1"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	err := admit("192.0.2.1:1")
	if !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "per-source") {
		t.Fatalf("the 4th from one source: %v", err)
	}
	if !strings.Contains(logs.String(), "connections dropped before authentication") {
		t.Fatalf("drop not logged:\n%s", logs)
	}
	// Authenticated: no longer counted.
	held[0].Authenticated()
	held[0].Authenticated()
	if err := admit("192.0.2.1:1"); err != nil {
		t.Fatalf("after one authenticated: %v", err)
	}
	// Ended: no longer counted.
	held[1].End(EventNoAuth)
	held[1].End(EventNoAuth)
	held[0].End(EventNone)
	if err := admit("192.0.2.1:1"); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	// 3 pending from .1; .2 brings it to start (4), then the drop is random.
	if err := admit("192.0.2.2:1"); err != nil {
		t.Fatalf("below start: %v", err)
	}
	roll = 49
	if err := admit("192.0.2.3:1"); !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "max startups 4:50:6") {
		t.Fatalf("at start, a low roll: %v", err)
	}
	roll = 50
	if err := admit("192.0.2.3:1"); err != nil {
		t.Fatalf("at start, a high roll: %v", err)
	}
	roll = 99
	if err := admit("192.0.2.4:1"); err != nil {
		t.Fatalf("below full: %v", err)
	}
	if err := admit("192.0.2.5:1"); !errors.Is(err, ErrDropped) {
		t.Fatalf("at full: %v", err)
	}
	for _, s := range held {
		s.End(EventNone)
	}
	if a.pending != 0 || len(a.bySource) != 0 {
		t.Fatalf("after all ended: %d pending, %v", a.pending, a.bySource)
	}
}

// A penalised source's connections get the shorter login grace.
func TestAdmissionGrace(t *testing.T) {
	a, _, _ := newAdmission(t, AdmissionConfig{LoginGrace: time.Minute, Penalties: Penalties{AuthFail: 10 * time.Second, Max: time.Minute, Min: 10 * time.Second}})
	s, _ := a.Admit(tcp("192.0.2.1:1"))
	if s.Grace() != time.Minute {
		t.Fatalf("grace %v", s.Grace())
	}
	s.End(EventAuthFail)
	s, _ = a.Admit(tcp("192.0.2.1:1"))
	if !s.Penalised() || s.Grace() != PenaltyLoginGrace || s.PenalisedUntil().IsZero() {
		t.Fatalf("penalised %v, grace %v, until %v", s.Penalised(), s.Grace(), s.PenalisedUntil())
	}
	s.End(EventNone)
	a, _, _ = newAdmission(t, AdmissionConfig{LoginGrace: 2 * time.Second, Penalties: Penalties{AuthFail: 10 * time.Second, Max: time.Minute, Min: 10 * time.Second}})
	connect(t, a, "192.0.2.1:1", EventAuthFail)
	s, _ = a.Admit(tcp("192.0.2.1:1"))
	if s.Grace() != 2*time.Second {
		t.Fatalf("a shorter configured grace: %v", s.Grace())
	}
}

// The README's example of the defaults: four failed logins within 5 s
// penalise a source; three a second apart do not.
func TestAdmissionDefaultPenalties(t *testing.T) {
	a, clock, _ := newAdmission(t, AdmissionConfig{})
	for i := range 4 {
		if i > 0 {
			clock.Add(5 * time.Second / 3)
		}
		connect(t, a, "192.0.2.1:1", EventAuthFail)
	}
	if !penalised(t, a, "192.0.2.1:1") {
		t.Fatal("four failures within 5 s: not penalised")
	}
	for range 3 {
		connect(t, a, "192.0.2.2:1", EventAuthFail)
		clock.Add(time.Second)
	}
	if penalised(t, a, "192.0.2.2:1") {
		t.Fatal("three failures a second apart: penalised")
	}
}
