package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sshbridge/bridge"
)

// DefaultReadyCache is how long a readiness answer is reused: probes
// from several balancers then cost the platform one call per period.
const DefaultReadyCache = 5 * time.Second

// readyTimeout bounds one check of the platform.
const readyTimeout = 3 * time.Second

// Health answers /healthz and /readyz.
//
// Live (/healthz): the process answers HTTP. Ready (/readyz): the bridge
// is not draining, the platform answers (Platform returns nil) and the
// staging area is writable (Staging returns nil).
// The platform and staging checks run at most once per Cache, whatever
// the number of probes; draining counts at once.
type Health struct {
	// Platform asks the platform whether it answers (oneoff.Client.Ping);
	// nil skips the check.
	Platform func(ctx context.Context) error
	// Staging says whether the staging area can take a new upload
	// (uploads.Store.CheckWritable: a file created and removed); nil
	// skips the check.
	Staging func() error
	// Cache is how long a check's result is reused. Zero:
	// DefaultReadyCache.
	Cache time.Duration
	// Logger, when not nil, gets a line for each check that fails, with
	// its whole error (the answer says only its kind).
	Logger *slog.Logger

	draining atomic.Bool

	mu      sync.Mutex
	checked time.Time
	err     error
}

// SetDraining makes readiness fail from now on: the bridge is stopping,
// and balancers should send new connections elsewhere. Safe to call from
// any goroutine, more than once.
func (h *Health) SetDraining() { h.draining.Store(true) }

// Draining says whether SetDraining was called.
func (h *Health) Draining() bool { return h.draining.Load() }

// errDraining is readiness's answer once a drain began.
var errDraining = errors.New("draining: the bridge is stopping")

// Ready returns nil when the bridge is ready for new connections, else
// why not.
func (h *Health) Ready(ctx context.Context) error {
	if h.Draining() {
		return errDraining
	}
	cache := h.Cache
	if cache == 0 {
		cache = DefaultReadyCache
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked.IsZero() && time.Since(h.checked) < cache {
		return h.err
	}
	h.err = h.check(ctx)
	h.checked = time.Now()
	return h.err
}

func (h *Health) check(ctx context.Context) error {
	if h.Staging != nil {
		if err := h.Staging(); err != nil {
			if h.Logger != nil {
				h.Logger.Warn("not ready: the staging area is not writable", "err", err)
			}
			return errors.New("staging area not writable")
		}
	}
	if h.Platform != nil {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := h.Platform(ctx); err != nil {
			if h.Logger != nil {
				h.Logger.Warn("not ready: the platform does not answer", "err", err)
			}
			kind := bridge.PlatformErrorKind(err)
			if kind == "" {
				kind = "no answer"
			}
			// The kind only: the error may hold the platform's URLs.
			return fmt.Errorf("platform: %s", kind)
		}
	}
	return nil
}

// Handler serves GET /metrics (m's registry, in Prometheus's text or
// protobuf format), /healthz (200 "ok") and /readyz (200 "ready", or 503
// with the reason on one line). m or h may be nil: their paths answer
// 404.
func Handler(m *Metrics, h *Health) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	}
	if h != nil {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if err := h.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, "not ready:", err)
				return
			}
			fmt.Fprintln(w, "ready")
		})
	}
	return mux
}
