package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"sshbridge/audit"
	"sshbridge/bridge"
	"sshbridge/debugserver"
	"sshbridge/metrics"
	"sshbridge/oneoff"
	"sshbridge/staging"
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
	// endpoints are the HTTP listeners: metrics and health, debug; the
	// ones that are on.
	endpoints []*endpoint
	stopOnce  sync.Once
}

// endpoint is one HTTP listener of the operations, with the name under
// which a handover passes it on.
type endpoint struct {
	name   string
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
}

// serveEndpoint serves h on ln in the background as the endpoint called
// name ("metrics", "debug"), and logs its start and its failure.
func (ops *operations) serveEndpoint(name string, ln net.Listener, h http.Handler, log *slog.Logger) {
	e := &endpoint{name: name, ln: ln, served: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	ops.endpoints = append(ops.endpoints, e)
	go func() {
		defer close(e.served)
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" listener stopped", "err", err)
		}
	}()
	log.Info(name+" listening", "addr", ln.Addr().String())
}

// startOperations opens the audit stream (--audit-log) and starts the
// operations listener (--metrics-listen: /metrics, /healthz, /readyz) and
// the debug listener (--debug-listen: debugserver), each on the listener
// a handover or socket activation passed on under its name ("metrics",
// "debug") in inherited, else on a new socket; the staging area's events
// and counts reach the audit stream and the metrics, from when its store
// is open.
func startOperations(cfg *bridgeFlags, log *slog.Logger, client *oneoff.Client, area *staging.Area, inherited map[string]net.Listener) (*operations, error) {
	ops := &operations{health: &metrics.Health{
		Platform: client.Ping,
		Staging: func() error {
			if store := area.Store(); store != nil {
				return store.CheckWritable()
			}
			// A new process of a handover: its store opens once the old
			// one lets it go, and until then its sessions wait for it.
			// The directory is what must be writable.
			return canCreateIn(filepath.Join(cfg.dataDir, "uploads"))
		},
		Logger: log.With("component", "health"),
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
	if ln := inherited["metrics"]; cfg.metricsListen != "" || ln != nil {
		if ln == nil {
			var err error
			if ln, err = listen(cfg.metricsListen, "--metrics-listen", "BRIDGE_METRICS_LISTEN"); err != nil {
				ops.Close()
				return nil, err
			}
		}
		m := metrics.New(buildVersion(), func() (int, int64) {
			if store := area.Store(); store != nil {
				return store.Pending()
			}
			return 0, 0
		})
		observers = append(observers, m)
		ops.serveEndpoint("metrics", ln, metrics.Handler(m, ops.health), log)
	}
	if ln := inherited["debug"]; cfg.debugListen != "" || ln != nil {
		if ln == nil {
			var err error
			if ln, err = listen(cfg.debugListen, "--debug-listen", "BRIDGE_DEBUG_LISTEN"); err != nil {
				ops.Close()
				return nil, err
			}
		}
		if ip, ok := ln.Addr().(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
			log.Warn("the debug listener is not on loopback: anyone who reaches it reads the process's memory profiles", "addr", ln.Addr().String())
		}
		ops.serveEndpoint("debug", ln, debugserver.Handler(), log)
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
		area.Observe(func(e uploads.Event) {
			obs.Upload(bridge.UploadEvent{Event: e.Kind, User: e.User, App: e.App, Name: e.Name, Size: e.Size, Reason: e.Reason})
		})
	}
	return ops, nil
}

// canCreateIn creates a file in dir and removes it.
func canCreateIn(dir string) error {
	f, err := os.CreateTemp(dir, ".ready-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// SetDraining turns readiness to 503: the bridge is stopping.
func (ops *operations) SetDraining() { ops.health.SetDraining() }

// listeners are what a handover passes on to the new process besides the
// SSH socket: the operations listener, named "metrics", and the debug
// listener, named "debug".
func (ops *operations) listeners() []namedListener {
	var out []namedListener
	for _, e := range ops.endpoints {
		out = append(out, namedListener{e.name, e.ln})
	}
	return out
}

// stopServing stops the operations and debug listeners: after a handover
// the new process answers on them. The audit stream stays open for the
// sessions still running.
func (ops *operations) stopServing() {
	ops.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, e := range ops.endpoints {
			e.srv.Shutdown(ctx)
			<-e.served
		}
	})
}

// Close stops the operations and debug listeners and closes the audit
// stream.
func (ops *operations) Close() {
	ops.stopServing()
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
