package app

import (
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/internal/buildinfo"
)

// Results of a configuration reload (sessiongate_config_reloads_total).
const (
	// ReloadOK: the new configuration was applied.
	ReloadOK = "ok"
	// ReloadInvalid: the new configuration was refused (it does not load
	// or validate); the running one stays.
	ReloadInvalid = "invalid"
	// ReloadRestartNeeded: the new configuration changes a key that only a
	// restart applies (listeners, the Redis URL); the running one stays.
	ReloadRestartNeeded = "restart_needed"
)

// opsMetrics are the process-level series: the build, upstream failures by
// kind, configuration reloads, and the proxy listener's load.
type opsMetrics struct {
	upstreamErrors *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	inFlight       prometheus.Gauge
	conns          prometheus.Gauge
}

func (m *metrics) registerOps() {
	bi := buildinfo.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessiongate_build_info",
		Help: "Always 1; the labels name the running build (the version `sessiongate version` prints).",
	}, []string{"version", "goversion"})
	build.WithLabelValues(bi.Version, bi.GoVersion).Set(1)
	o := &m.ops
	o.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_upstream_errors_total",
		Help: "Failed upstream round trips by route and kind (dial, timeout, reset, tls, canceled: the client left first, other).",
	}, []string{"route", "kind"})
	o.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_config_reloads_total",
		Help: "Configuration reloads by result (ok, invalid, restart_needed).",
	}, []string{"result"})
	for _, r := range []string{ReloadOK, ReloadInvalid, ReloadRestartNeeded} {
		o.reloads.WithLabelValues(r) // every result exists from the start, at 0
	}
	o.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sessiongate_config_last_reload_successful",
		Help: "1 when the last configuration reload was applied (or none was tried), 0 when it was refused.",
	})
	o.reloadOK.Set(1)
	o.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sessiongate_requests_in_flight",
		Help: "Requests on the proxy listener being served now (open WebSocket and SSE streams included).",
	})
	o.conns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sessiongate_connections_open",
		Help: "Client connections open on the proxy listener (a connection upgraded to a WebSocket leaves the count; its request stays in flight).",
	})
	m.reg.MustRegister(build, o.upstreamErrors, o.reloads, o.reloadOK, o.inFlight, o.conns)
}

// ObserveReload counts a configuration reload attempt by result (ReloadOK,
// ReloadInvalid, ReloadRestartNeeded) and records whether the running
// configuration is the one last asked for.
func (m *metrics) ObserveReload(result string) {
	m.ops.reloads.WithLabelValues(result).Inc()
	if result == ReloadOK {
		m.ops.reloadOK.Set(1)
	} else {
		m.ops.reloadOK.Set(0)
	}
}

// observeUpstreamError counts a failed upstream round trip.
func (m *metrics) observeUpstreamError(route, kind string) {
	m.ops.upstreamErrors.WithLabelValues(route, kind).Inc()
}

// track counts the requests in flight on the proxy listener.
func (m *metrics) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.ops.inFlight.Inc()
		defer m.ops.inFlight.Dec()
		next.ServeHTTP(w, r)
	})
}

// connState is the proxy server's ConnState hook: it counts open client
// connections. A hijacked connection (a WebSocket) is no longer the
// server's and leaves the count.
func (m *metrics) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		m.ops.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		m.ops.conns.Dec()
	}
}
