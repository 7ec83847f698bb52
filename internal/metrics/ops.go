package metrics

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/internal/buildinfo"
	"github.com/sessiongate/sessiongate/proxy"
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

func (s *Set) registerOps() {
	bi := buildinfo.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessiongate_build_info",
		Help: "Always 1; the labels name the running build (the version `sessiongate version` prints).",
	}, []string{"version", "goversion"})
	build.WithLabelValues(bi.Version, bi.GoVersion).Set(1)
	o := &s.ops
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
	s.reg.MustRegister(build, o.upstreamErrors, o.reloads, o.reloadOK, o.inFlight, o.conns)
}

// ObserveReload counts a configuration reload attempt by result (ReloadOK,
// ReloadInvalid, ReloadRestartNeeded) and records whether the running
// configuration is the one last asked for.
func (s *Set) ObserveReload(result string) {
	s.ops.reloads.WithLabelValues(result).Inc()
	if result == ReloadOK {
		s.ops.reloadOK.Set(1)
	} else {
		s.ops.reloadOK.Set(0)
	}
}

// observeUpstreamError counts a failed upstream round trip.
func (s *Set) observeUpstreamError(route, kind string) {
	s.ops.upstreamErrors.WithLabelValues(route, kind).Inc()
}

// Track wraps the proxy listener's handler: it counts the requests in
// flight.
func (s *Set) Track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ops.inFlight.Inc()
		defer s.ops.inFlight.Dec()
		next.ServeHTTP(w, r)
	})
}

// ConnState is the proxy server's http.Server.ConnState hook: it counts
// open client connections. A hijacked connection (a WebSocket) is no longer
// the server's and leaves the count.
func (s *Set) ConnState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.ops.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		s.ops.conns.Dec()
	}
}

func (s *Set) registerClaims() {
	s.claimsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_claim_headers_dropped_total",
		Help: "Mapped claims (headers.claims) the token had but that were not sent upstream, by header and reason (control-character, too-long).",
	}, []string{"header", "reason"})
	s.reg.MustRegister(s.claimsDropped)
}

// ClaimHeaderDropped implements proxy.ClaimHeaderObserver.
func (s *Set) ClaimHeaderDropped(header, reason string) {
	s.claimsDropped.WithLabelValues(header, reason).Inc()
}

// registerConnections registers the long-lived connection series, every
// kind and reason at 0 from the start. (sessiongate_connections_open
// counts client TCP connections; a WebSocket leaves it when it is hijacked
// and is counted here.)
func (s *Set) registerConnections() {
	s.connOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessiongate_long_lived_connections_open",
		Help: "WebSockets (kind websocket) and streamed responses (kind stream: server-sent events, bodies without a length) open through the proxy.",
	}, []string{"kind"})
	s.connClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_long_lived_connections_closed_total",
		Help: "Long-lived connections closed, by kind and reason (session-revoked, max-lifetime, shutdown: closed by sessiongate; client, upstream: by that side).",
	}, []string{"kind", "reason"})
	for _, k := range proxy.ConnectionKinds() {
		s.connOpen.WithLabelValues(k)
		for _, r := range proxy.CloseReasons() {
			s.connClosed.WithLabelValues(k, r)
		}
	}
	s.reg.MustRegister(s.connOpen, s.connClosed)
}

// ConnectionOpened implements proxy.ConnectionObserver.
func (s *Set) ConnectionOpened(kind string) { s.connOpen.WithLabelValues(kind).Inc() }

// ConnectionClosed implements proxy.ConnectionObserver.
func (s *Set) ConnectionClosed(kind, reason string, _ time.Duration) {
	s.connOpen.WithLabelValues(kind).Dec()
	s.connClosed.WithLabelValues(kind, reason).Inc()
}
