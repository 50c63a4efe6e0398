package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"sshbridge/audit"
	"sshbridge/bridge"
	"sshbridge/metrics"
	"sshbridge/oneoff"
	"sshbridge/uploads"
)

// Values of --log-format.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// checkLogFormat refuses a --log-format other than text or json.
func checkLogFormat(p *string) func() error {
	return func() error {
		if *p != logFormatText && *p != logFormatJSON {
			return fmt.Errorf("want %s or %s", logFormatText, logFormatJSON)
		}
		return nil
	}
}

// newBridgeLogger is the bridge's logger: slog's text handler, or its
// JSON handler (one object per line) with --log-format json.
func newBridgeLogger(cfg *bridgeFlags, w io.Writer) *slog.Logger {
	if cfg.logFormat == logFormatJSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.logLevel}))
	}
	return newLogger(cfg.logLevel, w)
}

// operations are the bridge's metrics, health endpoints and audit
// stream, as the flags ask for them.
type operations struct {
	// Observer is what the bridge reports to: the metrics and the audit
	// stream; nil when neither is on.
	Observer bridge.Observer
	health   *metrics.Health
	audit    *audit.Log
	srv      *http.Server
	served   chan struct{}
}

// startOperations opens the audit stream (--audit-log) and starts the
// operations listener (--metrics-listen: /metrics, /healthz, /readyz);
// the staging area's events and counts reach them both.
func startOperations(cfg *bridgeFlags, log *slog.Logger, client *oneoff.Client, store *uploads.Store) (*operations, error) {
	ops := &operations{health: &metrics.Health{
		Platform: client.Ping,
		Staging:  store.CheckWritable,
		Logger:   log.With("component", "health"),
	}}
	var observers bridge.Observers
	if cfg.auditLog != "" {
		a, err := audit.Open(cfg.auditLog)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.setting("audit-log"), err)
		}
		ops.audit = a
		observers = append(observers, a)
	}
	if cfg.metricsListen != "" {
		ln, err := listen(cfg.metricsListen, "--metrics-listen", "BRIDGE_METRICS_LISTEN")
		if err != nil {
			ops.Close()
			return nil, err
		}
		m := metrics.New(buildVersion(), store.Pending)
		observers = append(observers, m)
		ops.srv = &http.Server{Handler: metrics.Handler(m, ops.health), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		ops.served = make(chan struct{})
		go func() {
			defer close(ops.served)
			if err := ops.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener stopped", "err", err)
			}
		}()
		log.Info("metrics listening", "addr", ln.Addr().String())
	}
	switch len(observers) {
	case 0:
	case 1:
		ops.Observer = observers[0]
	default:
		ops.Observer = observers
	}
	if ops.Observer != nil {
		obs := ops.Observer
		store.Observe(func(e uploads.Event) {
			obs.Upload(bridge.UploadEvent{Event: e.Kind, User: e.User, App: e.App, Name: e.Name, Size: e.Size, Reason: e.Reason})
		})
	}
	return ops, nil
}

// SetDraining turns readiness to 503: the bridge is stopping.
func (ops *operations) SetDraining() { ops.health.SetDraining() }

// Close stops the operations listener and closes the audit stream.
func (ops *operations) Close() {
	if ops.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ops.srv.Shutdown(ctx)
		<-ops.served
	}
	if ops.audit != nil {
		ops.audit.Close()
	}
}

// buildVersion is the version for the build_info metric: the release, or
// what the toolchain stamped, or "(devel)".
func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
