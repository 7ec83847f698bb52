// Package metrics holds sessiongate's Prometheus series (docs/metrics.md)
// on a registry of their own: the request series the proxy reports
// (Set.Observe), the process series (build, reloads, load on the proxy
// listener), and the series read at scrape time from the components the
// binary assembles (key source, Gate, session checks, machine verifier,
// handshake, Redis, TLS certificate). internal/app builds one Set per App
// and registers each component as it builds it.
package metrics

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Set is the series of one sessiongate process, on a registry of its own
// (no global default registry: two Apps in one test process do not
// collide). It implements proxy.Observer, proxy.ClaimHeaderObserver and
// proxy.ConnectionObserver.
type Set struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	verify   prometheus.Histogram
	upstream *prometheus.HistogramVec
	ops      opsMetrics // ops.go
	// claimsDropped counts mapped claims not sent (ops.go).
	claimsDropped *prometheus.CounterVec
	// connOpen and connClosed are the long-lived connection series (ops.go).
	connOpen   *prometheus.GaugeVec
	connClosed *prometheus.CounterVec
	// backendCalls counts Backend API calls of every client (components.go).
	backendCalls *prometheus.CounterVec
	// propagation is registered with the Redis series (components.go).
	propagation prometheus.Histogram

	// Observe's series, resolved once per label set: WithLabelValues
	// hashes the labels and takes the vector's lock on every call, which
	// costs more than the increment itself on the request path. The keys
	// are the vectors' own label sets, so these maps hold no more entries
	// than the vectors do.
	requestSeries sync.Map // requestLabels → prometheus.Counter
	routeSeries   sync.Map // route name → *routeObservers
}

var (
	_ proxy.Observer            = (*Set)(nil)
	_ proxy.ClaimHeaderObserver = (*Set)(nil)
	_ proxy.ConnectionObserver  = (*Set)(nil)
)

// requestLabels are sessiongate_requests_total's labels.
type requestLabels struct {
	route  string
	status int
	reason middleware.Reason
}

// routeObservers are the per-route histograms of one route.
type routeObservers struct {
	duration, upstream prometheus.Observer
}

// latencyBuckets cover 50 µs (a cache hit) to 10 s (a slow upstream).
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New registers the series every process has: requests, the process
// series, claim headers dropped, long-lived connections, and the Go
// runtime's and the process's collectors. The components' series come with
// the Register methods.
func New() *Set {
	s := &Set{reg: prometheus.NewRegistry()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_requests_total",
		Help: "Requests by route, status and outcome reason (empty reason: allowed).",
	}, []string{"route", "status", "reason"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessiongate_request_duration_seconds",
		Help:    "Time from request to response, by route.",
		Buckets: latencyBuckets,
	}, []string{"route"})
	s.verify = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessiongate_verification_duration_seconds",
		Help:    "Time spent verifying session tokens (cache hits included).",
		Buckets: latencyBuckets,
	})
	s.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessiongate_upstream_duration_seconds",
		Help:    "Time spent in the upstream round trip, body included, by route.",
		Buckets: latencyBuckets,
	}, []string{"route"})
	s.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessiongate_redis_revocation_propagation_seconds",
		Help:    "Time from a revocation on another replica to its arrival here over pub/sub (by the other replica's clock).",
		Buckets: latencyBuckets,
	})
	s.reg.MustRegister(s.requests, s.duration, s.verify, s.upstream)
	s.registerOps()
	s.registerClaims()
	s.registerConnections()
	s.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return s
}

// Handler serves the series in the Prometheus exposition formats, for GET
// /metrics.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Observe implements proxy.Observer.
func (s *Set) Observe(ev proxy.Event) {
	route := ev.Route
	s.requestCounter(requestLabels{route, ev.Status, ev.Reason}).Inc()
	ro := s.routeObservers(route)
	ro.duration.Observe(ev.Duration.Seconds())
	if ev.Verify > 0 {
		s.verify.Observe(ev.Verify.Seconds())
	}
	if ev.Upstream > 0 {
		ro.upstream.Observe(ev.Upstream.Seconds())
	}
	if ev.UpstreamError != "" {
		s.observeUpstreamError(route, ev.UpstreamError)
	}
}

// requestCounter is the sessiongate_requests_total series of l.
func (s *Set) requestCounter(l requestLabels) prometheus.Counter {
	if c, ok := s.requestSeries.Load(l); ok {
		return c.(prometheus.Counter)
	}
	c := s.requests.WithLabelValues(l.route, strconv.Itoa(l.status), string(l.reason))
	s.requestSeries.Store(l, c)
	return c
}

// routeObservers are the duration histograms of route.
func (s *Set) routeObservers(route string) *routeObservers {
	if ro, ok := s.routeSeries.Load(route); ok {
		return ro.(*routeObservers)
	}
	ro := &routeObservers{duration: s.duration.WithLabelValues(route), upstream: s.upstream.WithLabelValues(route)}
	s.routeSeries.Store(route, ro)
	return ro
}

// outcomeCounter is a counter vector by credential kind and outcome, read
// at scrape time: table calls add with each kind's counts, indexed like
// outcomes.
type outcomeCounter struct {
	desc     *prometheus.Desc
	outcomes []string
	table    func(add func(kind middleware.TokenType, counts []uint64))
}

func newOutcomeCounter(name, help string, outcomes []string, table func(add func(middleware.TokenType, []uint64))) *outcomeCounter {
	return &outcomeCounter{desc: prometheus.NewDesc(name, help, []string{"kind", "outcome"}, nil), outcomes: outcomes, table: table}
}

func (c *outcomeCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *outcomeCounter) Collect(ch chan<- prometheus.Metric) {
	c.table(func(kind middleware.TokenType, counts []uint64) {
		for o, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), string(kind), c.outcomes[o])
		}
	})
}
