package app

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// metrics holds the series of docs/metrics.md on a registry of the App's own (no
// global default registry: two Apps in one test process do not collide).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	verify   prometheus.Histogram
	upstream *prometheus.HistogramVec
	ops      opsMetrics // opsmetrics.go
	// claimsDropped counts mapped claims not sent (claimmetrics.go).
	claimsDropped *prometheus.CounterVec
	// backendCalls counts Backend API calls of every client (sessions.go).
	backendCalls *prometheus.CounterVec

	// Observe's series, resolved once per label set: WithLabelValues
	// hashes the labels and takes the vector's lock on every call, which
	// costs more than the increment itself on the request path. The keys
	// are the vectors' own label sets, so these maps hold no more entries
	// than the vectors do.
	requestSeries sync.Map // requestLabels → prometheus.Counter
	routeSeries   sync.Map // route name → *routeObservers
}

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

// statsSource is what the key sources export.
type statsSource interface{ Stats() jwks.Stats }

func newMetrics(keys any, now func() time.Time) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_requests_total",
		Help: "Requests by route, status and outcome reason (empty reason: allowed).",
	}, []string{"route", "status", "reason"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessiongate_request_duration_seconds",
		Help:    "Time from request to response, by route.",
		Buckets: latencyBuckets,
	}, []string{"route"})
	m.verify = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessiongate_verification_duration_seconds",
		Help:    "Time spent verifying session tokens (cache hits included).",
		Buckets: latencyBuckets,
	})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessiongate_upstream_duration_seconds",
		Help:    "Time spent in the upstream round trip, body included, by route.",
		Buckets: latencyBuckets,
	}, []string{"route"})
	m.reg.MustRegister(m.requests, m.duration, m.verify, m.upstream)
	if ss, ok := keys.(statsSource); ok {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "sessiongate_jwks_fetches_total", Help: "JWKS fetch attempts.",
			}, func() float64 { return float64(ss.Stats().Fetches) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "sessiongate_jwks_fetch_failures_total", Help: "Failed JWKS fetches.",
			}, func() float64 { return float64(ss.Stats().Failures) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sessiongate_jwks_keys", Help: "Keys in the current key set.",
			}, func() float64 { return float64(ss.Stats().Keys) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sessiongate_jwks_key_age_seconds",
				Help: "Seconds since the key set was last fetched successfully (-1: never).",
			}, func() float64 {
				last := ss.Stats().LastSuccess
				if last.IsZero() {
					return -1
				}
				return now().Sub(last).Seconds()
			}),
		)
	}
	m.registerOps()
	m.registerClaims()
	m.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) registerGate(gate *middleware.Gate) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_token_cache_hits_total", Help: "Verified-token cache hits.",
		}, func() float64 { return float64(gate.Stats().CacheHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_token_cache_misses_total", Help: "Verified-token cache misses.",
		}, func() float64 { return float64(gate.Stats().CacheMisses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_token_cache_entries", Help: "Tokens in the verified-token cache.",
		}, func() float64 { return float64(gate.Stats().CacheSize) }),
		&machineJWTCollector{gate: gate, desc: prometheus.NewDesc("sessiongate_machine_jwt_verifications_total",
			"Networkless M2M and OAuth JWT verifications by kind and outcome (valid, invalid, expired, unavailable).",
			[]string{"kind", "outcome"}, nil)},
	)
}

// machineJWTCollector exports the Gate's machine-JWT counters.
type machineJWTCollector struct {
	gate *middleware.Gate
	desc *prometheus.Desc
}

func (c *machineJWTCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *machineJWTCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, row := range c.gate.Stats().MachineJWTs {
		for o, n := range row {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), string(kind), middleware.MachineJWTOutcomes[o])
		}
	}
}

// Observe implements proxy.Observer.
func (m *metrics) Observe(ev proxy.Event) {
	route := ev.Route
	m.requestCounter(requestLabels{route, ev.Status, ev.Reason}).Inc()
	ro := m.routeObservers(route)
	ro.duration.Observe(ev.Duration.Seconds())
	if ev.Verify > 0 {
		m.verify.Observe(ev.Verify.Seconds())
	}
	if ev.Upstream > 0 {
		ro.upstream.Observe(ev.Upstream.Seconds())
	}
	if ev.UpstreamError != "" {
		m.observeUpstreamError(route, ev.UpstreamError)
	}
}

// requestCounter is the sessiongate_requests_total series of l.
func (m *metrics) requestCounter(l requestLabels) prometheus.Counter {
	if c, ok := m.requestSeries.Load(l); ok {
		return c.(prometheus.Counter)
	}
	c := m.requests.WithLabelValues(l.route, strconv.Itoa(l.status), string(l.reason))
	m.requestSeries.Store(l, c)
	return c
}

// routeObservers are the duration histograms of route.
func (m *metrics) routeObservers(route string) *routeObservers {
	if ro, ok := m.routeSeries.Load(route); ok {
		return ro.(*routeObservers)
	}
	ro := &routeObservers{duration: m.duration.WithLabelValues(route), upstream: m.upstream.WithLabelValues(route)}
	m.routeSeries.Store(route, ro)
	return ro
}
