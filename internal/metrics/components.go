package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/internal/certreload"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/machine"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/redisstore"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// The series of the components the binary assembles, read from their Stats
// at scrape time. Each Register method is called once per Set, with the
// component built.

// KeyStats is what the key sources (jwks.Remote, jwks.Static) export.
type KeyStats interface{ Stats() jwks.Stats }

// RegisterKeys exports the key source's fetches and key set; now is the
// clock the key set's age is measured by.
func (s *Set) RegisterKeys(keys KeyStats, now func() time.Time) {
	s.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_jwks_fetches_total", Help: "JWKS fetch attempts.",
		}, func() float64 { return float64(keys.Stats().Fetches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_jwks_fetch_failures_total", Help: "Failed JWKS fetches.",
		}, func() float64 { return float64(keys.Stats().Failures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_jwks_keys", Help: "Keys in the current key set.",
		}, func() float64 { return float64(keys.Stats().Keys) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_jwks_key_age_seconds",
			Help: "Seconds since the key set was last fetched successfully (-1: never).",
		}, func() float64 {
			last := keys.Stats().LastSuccess
			if last.IsZero() {
				return -1
			}
			return now().Sub(last).Seconds()
		}),
	)
}

// RegisterGate exports the Gate's verified-token cache and its networkless
// machine-JWT verifications.
func (s *Set) RegisterGate(gate *middleware.Gate) {
	s.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_token_cache_hits_total", Help: "Verified-token cache hits.",
		}, func() float64 { return float64(gate.Stats().CacheHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sessiongate_token_cache_misses_total", Help: "Verified-token cache misses.",
		}, func() float64 { return float64(gate.Stats().CacheMisses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_token_cache_entries", Help: "Tokens in the verified-token cache.",
		}, func() float64 { return float64(gate.Stats().CacheSize) }),
		newOutcomeCounter("sessiongate_machine_jwt_verifications_total",
			"Networkless M2M and OAuth JWT verifications by kind and outcome (valid, invalid, expired, unavailable).",
			middleware.MachineJWTOutcomes[:], func(add func(middleware.TokenType, []uint64)) {
				for kind, row := range gate.Stats().MachineJWTs {
					add(kind, row[:])
				}
			}),
	)
}

// RegisterMachines exports the opaque machine-credential verifier's cache
// and verifications.
func (s *Set) RegisterMachines(v *machine.Verifier) {
	s.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_machine_cache_hits_total", Help: "Machine-credential verification cache hits."},
			func() float64 { return float64(v.Stats().CacheHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_machine_cache_misses_total", Help: "Machine-credential verification cache misses."},
			func() float64 { return float64(v.Stats().CacheMisses) }),
		newOutcomeCounter("sessiongate_machine_verifications_total",
			"Opaque machine-credential verifications by kind and outcome (valid, invalid, revoked, expired, rate_limited, unavailable), cache hits included.",
			machine.OutcomeNames[:], func(add func(middleware.TokenType, []uint64)) {
				for kind, row := range v.Stats().Verifications {
					add(kind, row[:])
				}
			}),
	)
}

// RegisterHandshake exports the nonce counters: exchanges spend the
// instance's Backend API rate limit, and a rising rate_limited count means
// browsers are answered 503 for want of one (client_rate_limited: one
// client, or one address, over its budget; the rest: the process's cap).
func (s *Set) RegisterHandshake(h *handshake.Handshaker) {
	counter := func(name, help string, v func(handshake.NonceStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(h.NonceStats())) })
	}
	s.reg.MustRegister(
		counter("sessiongate_handshake_nonce_exchanges_total", "Backend API handshake_payload calls made for __clerk_handshake_nonce cookies.",
			func(s handshake.NonceStats) uint64 { return s.Exchanges }),
		counter("sessiongate_handshake_nonce_exchange_failures_total", "Nonce exchanges that failed.",
			func(s handshake.NonceStats) uint64 { return s.ExchangeFailures }),
		counter("sessiongate_handshake_nonce_cached_failures_total", "Nonces refused without a call because their exchange failed moments ago.",
			func(s handshake.NonceStats) uint64 { return s.CachedFailures }),
		counter("sessiongate_handshake_nonce_rate_limited_total", "Nonces refused without a call by the exchange rate limits (answered 503, the nonce kept for a retry).",
			func(s handshake.NonceStats) uint64 { return s.RateLimited }),
		counter("sessiongate_handshake_nonce_client_rate_limited_total", "Of the rate-limited nonces, those whose client had spent its own budget while the process was down to its reserve.",
			func(s handshake.NonceStats) uint64 { return s.RateLimitedClient }),
		counter("sessiongate_handshake_nonce_ignored_total", "Nonce cookies ignored on requests that are not navigations.",
			func(s handshake.NonceStats) uint64 { return s.Ignored }),
		counter("sessiongate_handshake_refreshes_total", "Backend API session refreshes made for expired sessions with a __refresh cookie.",
			func(s handshake.NonceStats) uint64 { return s.Refreshes }),
		counter("sessiongate_handshake_refresh_failures_total", "Session refreshes that failed (the handshake ran instead).",
			func(s handshake.NonceStats) uint64 { return s.RefreshFailures }),
		counter("sessiongate_handshake_refresh_rate_limited_total", "Session refreshes held back by the Backend API budget shared with nonce exchanges (the handshake ran instead).",
			func(s handshake.NonceStats) uint64 { return s.RefreshRateLimited }),
	)
}

// ObserveRevocationPropagation is redisstore.Config.OnRemote: it records how
// long a revocation took to arrive from another replica. The histogram is
// exported with the Redis series (RegisterRedis).
func (s *Set) ObserveRevocationPropagation(_ string, d time.Duration) {
	s.propagation.Observe(d.Seconds())
}

// RegisterRedis exports the Redis store's connection, resyncs, shared
// revocations, shared status cache and webhook de-duplication, and the
// propagation of revocations (ObserveRevocationPropagation).
func (s *Set) RegisterRedis(st *redisstore.Store) {
	stat := func(f func(redisstore.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(st.Stats())) }
	}
	flag := func(f func(redisstore.Stats) bool) func() float64 {
		return func() float64 {
			if f(st.Stats()) {
				return 1
			}
			return 0
		}
	}
	counter := func(name, help string, f func(redisstore.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, stat(f))
	}
	s.reg.MustRegister(
		s.propagation,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sessiongate_redis_connected", Help: "1 while the Redis subscription is up."},
			flag(func(s redisstore.Stats) bool { return s.Connected })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sessiongate_redis_synced", Help: "1 while in step with Redis: subscribed and resynced since."},
			flag(func(s redisstore.Stats) bool { return s.Synced })),
		counter("sessiongate_redis_resyncs_total", "Completed resyncs with Redis (write-back, then reload), one per (re)connection.",
			func(s redisstore.Stats) uint64 { return s.Resyncs }),
		counter("sessiongate_redis_resync_errors_total", "Failed resync attempts (retried).",
			func(s redisstore.Stats) uint64 { return s.ResyncErrors }),
		counter("sessiongate_redis_disconnects_total", "Redis subscriptions lost.",
			func(s redisstore.Stats) uint64 { return s.Disconnects }),
		counter("sessiongate_redis_revocations_published_total", "Revocations written to Redis and published.",
			func(s redisstore.Stats) uint64 { return s.Published }),
		counter("sessiongate_redis_publish_errors_total", "Revocations whose write to Redis failed (written back later).",
			func(s redisstore.Stats) uint64 { return s.PublishErrors }),
		counter("sessiongate_redis_publish_dropped_total", "Revocations not queued for Redis because the queue was full (written back later).",
			func(s redisstore.Stats) uint64 { return s.PublishDropped }),
		counter("sessiongate_redis_revocations_received_total", "Revocations from other replicas applied from pub/sub.",
			func(s redisstore.Stats) uint64 { return s.Received }),
		counter("sessiongate_redis_revocations_loaded_total", "Revocations applied by reloads of the shared set.",
			func(s redisstore.Stats) uint64 { return s.Loaded }),
		counter("sessiongate_redis_revocations_written_back_total", "Local revocations a resync found missing from Redis and wrote back.",
			func(s redisstore.Stats) uint64 { return s.WrittenBack }),
		counter("sessiongate_redis_status_cache_hits_total", "Session statuses read from the shared cache.",
			func(s redisstore.Stats) uint64 { return s.CacheHits }),
		counter("sessiongate_redis_status_cache_misses_total", "Session statuses this replica looked up for the shared cache.",
			func(s redisstore.Stats) uint64 { return s.CacheMisses }),
		counter("sessiongate_redis_status_cache_waits_total", "Lookups that waited for another replica's answer.",
			func(s redisstore.Stats) uint64 { return s.CacheWaits }),
		counter("sessiongate_redis_status_cache_fallbacks_total", "Lookups made without the shared cache (Redis error or away, lock not released in time).",
			func(s redisstore.Stats) uint64 { return s.CacheFallbacks }),
		counter("sessiongate_redis_webhook_duplicates_total", "Webhook deliveries already processed by another replica.",
			func(s redisstore.Stats) uint64 { return s.WebhookDuplicates }),
		counter("sessiongate_redis_webhook_fallbacks_total", "Webhook deliveries de-duplicated locally because Redis was unavailable.",
			func(s redisstore.Stats) uint64 { return s.WebhookFallbacks }),
	)
}

// BackendCounter is clerkapi.Config.OnResponse: it counts Backend API calls
// by endpoint template and status. Every client of the process shares the
// series, registered with the first call.
func (s *Set) BackendCounter() func(endpoint string, status int) {
	if s.backendCalls == nil {
		s.backendCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_backend_api_requests_total",
			Help: "Backend API calls by endpoint and HTTP status (0: network error).",
		}, []string{"endpoint", "status"})
		s.reg.MustRegister(s.backendCalls)
	}
	calls := s.backendCalls
	return func(endpoint string, status int) {
		calls.WithLabelValues(endpoint, fmt.Sprint(status)).Inc()
	}
}

// RegisterSessionChecks exports the session-status service's lookups,
// cache, deny list and circuit breaker.
func (s *Set) RegisterSessionChecks(svc *sessioncheck.Service) {
	stat := func(f func(sessioncheck.Stats) float64) func() float64 {
		return func() float64 { return f(svc.Stats()) }
	}
	s.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_session_lookups_total", Help: "Session status lookups at the Backend API."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.Lookups) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_session_lookup_errors_total", Help: "Failed session status lookups (breaker refusals included)."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.LookupErrors) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_session_status_cache_hits_total", Help: "Session status cache hits."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.CacheHits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_session_checks_allowed_on_error_total", Help: "Requests let through because the status was unavailable and the route allows it."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.AllowedOnError) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_deny_list_hits_total", Help: "Requests refused by the deny list."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.Denied) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_deny_list_evictions_total", Help: "Live revocations dropped because the deny list was full."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.DenyListEvictions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sessiongate_session_checks_abandoned_total", Help: "Requests whose client went away before their session status was known (not lookup errors)."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.Abandoned) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sessiongate_deny_list_entries", Help: "Sessions on the deny list."},
			stat(func(s sessioncheck.Stats) float64 { return float64(s.DenyListSize) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sessiongate_session_breaker_open", Help: "1 while the Backend API circuit breaker is open."},
			stat(func(s sessioncheck.Stats) float64 {
				if s.BreakerOpen {
					return 1
				}
				return 0
			})),
	)
}

// RegisterTLS exports when the served certificate expires, for an alert
// well before it does. Nil (no tls): nothing.
func (s *Set) RegisterTLS(c *certreload.Reloader) {
	if c == nil {
		return
	}
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sessiongate_tls_certificate_expiry_timestamp_seconds",
		Help: "When the proxy listener's current TLS certificate expires (Unix time); it follows certificate reloads.",
	}, func() float64 {
		if leaf := c.Leaf(); leaf != nil {
			return float64(leaf.NotAfter.Unix())
		}
		return 0
	}))
}
