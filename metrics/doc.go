// Package metrics serves the bridge's operations endpoint: Prometheus
// metrics (GET /metrics), liveness (GET /healthz) and readiness
// (GET /readyz), on their own listener (--metrics-listen).
//
// Metrics is a bridge.Observer: it counts what the bridge reports, with
// labels only from small fixed sets (a kind, an outcome, a phase), never
// an address, a user, a key or an app, so that the number of series does
// not grow with the traffic.
package metrics
