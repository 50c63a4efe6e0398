package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// summary is what a run prints (-json: this object).
type summary struct {
	Seconds float64 `json:"seconds"`
	// Sessions counts the sessions that came through, Exec and Shell
	// by kind.
	Sessions int `json:"sessions"`
	Exec     int `json:"exec"`
	Shell    int `json:"shell"`
	// PeakInFlight is the most sessions under way at once, from the dial
	// to the close.
	PeakInFlight int `json:"peak_in_flight"`
	// PeakOpen is the most sessions open at once, from the first byte of
	// output to the close.
	PeakOpen int `json:"peak_open"`
	// Uploads counts the files uploaded and found intact in their one-off,
	// UploadedBytes their bytes.
	Uploads       int   `json:"uploads"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	// Failures counts the sessions and uploads that failed, Reasons them
	// by step and error.
	Failures int            `json:"failures"`
	Reasons  map[string]int `json:"reasons,omitempty"`
	// Set-up time of the sessions that came through, from the dial to the
	// first byte of output, in milliseconds.
	SetupP50Ms float64 `json:"setup_p50_ms"`
	SetupP99Ms float64 `json:"setup_p99_ms"`
	SetupMaxMs float64 `json:"setup_max_ms"`
}

func (l *load) summarise(elapsed time.Duration) summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := summary{
		Seconds:       elapsed.Seconds(),
		Sessions:      l.execs + l.shells,
		Exec:          l.execs,
		Shell:         l.shells,
		PeakInFlight:  int(l.peakInFlight.Load()),
		PeakOpen:      int(l.peakOpen.Load()),
		Uploads:       l.uploads,
		UploadedBytes: l.bytes,
		Failures:      l.failures,
		Reasons:       l.reasons,
	}
	setups := slices.Clone(l.setups)
	slices.Sort(setups)
	s.SetupP50Ms = ms(percentile(setups, 50))
	s.SetupP99Ms = ms(percentile(setups, 99))
	if len(setups) > 0 {
		s.SetupMaxMs = ms(setups[len(setups)-1])
	}
	return s
}

// percentile is the p-th percentile of sorted by the nearest rank; 0 of
// none.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s summary) write(w io.Writer) {
	fmt.Fprintf(w, "%.1f s: %d sessions (%d exec, %d shell), at most %d under way and %d open at once; %d uploads (%d MiB) intact; %d failed\n",
		s.Seconds, s.Sessions, s.Exec, s.Shell, s.PeakInFlight, s.PeakOpen, s.Uploads, s.UploadedBytes>>20, s.Failures)
	fmt.Fprintf(w, "session set-up (dial to first output): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", s.SetupP50Ms, s.SetupP99Ms, s.SetupMaxMs)
	reasons := make([]string, 0, len(s.Reasons))
	for r := range s.Reasons {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return s.Reasons[reasons[i]] > s.Reasons[reasons[j]] })
	for _, r := range reasons {
		fmt.Fprintf(w, "  %d x %s\n", s.Reasons[r], r)
	}
}
