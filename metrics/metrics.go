package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sshbridge/bridge"
)

// Metrics counts the bridge's events in a registry of its own. Its zero
// value is not usable: call New.
type Metrics struct {
	reg *prometheus.Registry

	connsOpen      prometheus.Gauge
	conns          *prometheus.CounterVec
	auths          *prometheus.CounterVec
	sessionsOpen   prometheus.Gauge
	sessions       *prometheus.CounterVec
	startPhase     *prometheus.HistogramVec
	uploads        *prometheus.CounterVec
	deliverSeconds prometheus.Histogram
	deliverBytes   prometheus.Histogram
	platformErrors *prometheus.CounterVec
	forwards       *prometheus.CounterVec
}

var _ bridge.Observer = (*Metrics)(nil)

// Names of the metrics, as the README lists them.
const namespace = "sshbridge"

// New makes the metrics of a bridge of the given version, with the Go
// runtime's and the process's collectors. pending, when not nil, is read
// at each scrape for the staging area's pending files and bytes
// (uploads.Store.Pending).
func New(version string, pending func() (files int, bytes int64)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1: the version of the bridge and of Go that built it."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	f(build)

	m.connsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "connections_open",
		Help: "SSH connections open now."})
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "connections_total",
		Help: "SSH connections ended, by how their handshake and authentication ended."}, []string{"outcome"})
	m.auths = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "authentications_total",
		Help: "Authentication requests, by result (ok, fail) and reason."}, []string{"result", "reason"})
	m.sessionsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "sessions_open",
		Help: "Sessions (shell, exec, subsystem) running now."})
	m.sessions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sessions_total",
		Help: "Sessions ended, by kind and outcome (command: the command's own exit code; else the bridge's own code's name)."},
		[]string{"kind", "outcome"})
	m.startPhase = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "oneoff_start_seconds",
		Help:    "Time from a one-off's run request to each phase of its start: operation_done, attached, first_byte.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 15)}, []string{"phase"})
	m.uploads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "uploads_total",
		Help: "Staged files, by event: staged, delivered, refused, expired."}, []string{"event"})
	m.deliverSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "upload_delivery_seconds",
		Help: "Time a session waited for one pending file to reach a one-off, from the file before it accepted.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 11)})
	m.deliverBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "upload_delivery_bytes",
		Help: "Size of each pending file sent to a one-off.", Buckets: prometheus.ExponentialBuckets(1024, 4, 12)})
	m.platformErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "platform_errors_total",
		Help: "Failed calls to the one-off API that ended a session, by kind."}, []string{"kind"})
	m.forwards = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "forwards_total",
		Help: "Forwarding channels and requests, by type and outcome (opened, refused)."}, []string{"type", "outcome"})
	for _, c := range []prometheus.Collector{m.connsOpen, m.conns, m.auths, m.sessionsOpen, m.sessions, m.startPhase,
		m.uploads, m.deliverSeconds, m.deliverBytes, m.platformErrors, m.forwards} {
		f(c)
	}
	// The fixed label values up front: a series exists, at 0, before its
	// first event, so that rates and alerts see it.
	for _, o := range []string{"authenticated", "app_denied", "auth_failed", "no_auth", "grace_exceeded", "refused"} {
		m.conns.WithLabelValues(o)
	}
	for _, p := range []string{bridge.PhaseStarted, bridge.PhaseAttached, bridge.PhaseFirstByte} {
		m.startPhase.WithLabelValues(p)
	}
	for _, e := range []string{"staged", "delivered", "refused", "expired"} {
		m.uploads.WithLabelValues(e)
	}
	if pending != nil {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "staged_files",
			Help: "Files pending in the staging area."}, func() float64 { n, _ := pending(); return float64(n) }))
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "staged_bytes",
			Help: "Bytes of the files pending in the staging area."}, func() float64 { _, b := pending(); return float64(b) }))
	}
	return m
}

// Registry is the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Labels come from fixed sets; a value outside one becomes "other", so
// that a peer's input never makes a series.
var (
	sessionKinds   = set("shell", "exec", "subsystem", "intercepted")
	forwardTypes   = set("direct-tcpip", "direct-streamlocal@openssh.com", "tcpip-forward", "streamlocal-forward@openssh.com")
	connOutcomes   = set("authenticated", "app_denied", "auth_failed", "no_auth", "grace_exceeded", "refused")
	authReasons    = set("", "unknown_key", "revoked", "from", "expired", "certificate", "invalid_app_name", "method", "app_denied", "other")
	uploadEvents   = set("staged", "delivered", "refused", "expired")
	forwardResults = set("opened", "refused")
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func only(s map[string]bool, v string) string {
	if s[v] {
		return v
	}
	return "other"
}

// outcomeOf keeps a session outcome to its fixed set: "command",
// "client_gone" and the names of the bridge's exit codes.
func outcomeOf(v string) string {
	if v == "command" || v == "client_gone" {
		return v
	}
	for code := 0; code < 256; code++ {
		if bridge.ExitCodeName(code) == v && v != "" {
			return v
		}
	}
	return "other"
}

// Connection counts connections open and ended.
func (m *Metrics) Connection(e bridge.ConnectionEvent) {
	switch e.Phase {
	case "open":
		m.connsOpen.Inc()
	case "close":
		if e.Outcome != "refused" {
			m.connsOpen.Dec()
		}
		m.conns.WithLabelValues(only(connOutcomes, e.Outcome)).Inc()
	}
}

// Auth counts authentication requests.
func (m *Metrics) Auth(e bridge.AuthEvent) {
	result := "fail"
	if e.OK {
		result = "ok"
	}
	m.auths.WithLabelValues(result, only(authReasons, e.Reason)).Inc()
}

// SessionStart counts a session running.
func (m *Metrics) SessionStart(bridge.SessionEvent) { m.sessionsOpen.Inc() }

// SessionEnd counts a session ended.
func (m *Metrics) SessionEnd(e bridge.SessionEvent) {
	m.sessionsOpen.Dec()
	m.sessions.WithLabelValues(only(sessionKinds, e.Kind), outcomeOf(e.Outcome)).Inc()
}

// StartPhase observes a one-off's start.
func (m *Metrics) StartPhase(phase string, elapsed time.Duration) {
	switch phase {
	case bridge.PhaseStarted, bridge.PhaseAttached, bridge.PhaseFirstByte:
		m.startPhase.WithLabelValues(phase).Observe(elapsed.Seconds())
	}
}

// Upload counts a staged file's step, and observes a delivery.
func (m *Metrics) Upload(e bridge.UploadEvent) {
	m.uploads.WithLabelValues(only(uploadEvents, e.Event)).Inc()
	if e.Event == "delivered" {
		m.deliverSeconds.Observe(e.Duration.Seconds())
		m.deliverBytes.Observe(float64(e.Size))
	}
}

// Forward counts a forward.
func (m *Metrics) Forward(e bridge.ForwardEvent) {
	m.forwards.WithLabelValues(only(forwardTypes, e.Type), only(forwardResults, e.Outcome)).Inc()
}

// PlatformError counts a failed call to the one-off API.
func (m *Metrics) PlatformError(kind string) {
	if kind == "" {
		kind = "other"
	}
	m.platformErrors.WithLabelValues(kind).Inc()
}
