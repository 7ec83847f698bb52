package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/redisstore"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/webhook"
)

// Scaling out (docs/scaling.md): with revocation.store: redis the
// deny list is shared through Redis; with cache.shared: true session
// statuses are too. Both need revocation.redis_url; webhook de-duplication
// comes with either. Nothing here is on the request path: the deny list
// stays local, and Redis is reached from background goroutines, status
// lookups (already a network call) and webhook deliveries, each with a
// short bound and a local fallback.

// setupRedis connects the App to Redis when the configuration asks for it.
// It runs after the deny list exists and before the status service and the
// webhook handler are built.
func (a *App) setupRedis(cfg *config.Config, opts Options) error {
	rv := cfg.Revocation
	if rv.RedisURL == "" {
		return nil
	}
	share := rv.Store == "redis"
	if !share && !cfg.Cache.Shared { // and not required: config validation refuses that
		a.log.Warn("revocation.redis_url is set but unused: revocation.store is memory and cache.shared is false")
		return nil
	}
	propagation := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessiongate_redis_revocation_propagation_seconds",
		Help:    "Time from a revocation on another replica to its arrival here over pub/sub (by the other replica's clock).",
		Buckets: latencyBuckets,
	})
	st, err := redisstore.New(redisstore.Config{
		URL:              rv.RedisURL.Reveal(),
		DenyList:         a.deny,
		ShareRevocations: share,
		TTL:              rv.TTL.D(),
		Required:         rv.Required,
		OnRemote:         func(_ string, d time.Duration) { propagation.Observe(d.Seconds()) },
		Now:              opts.Now,
		Logger:           a.log.Named("redis"),
	})
	if err != nil {
		return &config.ValidationError{Problems: []config.Problem{{Key: "revocation.redis_url", Msg: err.Error()}}}
	}
	a.redis = st
	a.metrics.registerRedis(st, propagation)
	a.log.Info("sharing through Redis", zap.Bool("revocations", share), zap.Bool("session_statuses", cfg.Cache.Shared), zap.Bool("required", rv.Required))
	return nil
}

// sharedStatus wraps the Backend API lookup in the shared status cache when
// cache.shared is on. Only cached mode uses it: strict mode asks Clerk on
// every request.
func (a *App) sharedStatus(cfg *config.Config, l sessioncheck.StatusLookup) sessioncheck.StatusLookup {
	if a.redis == nil || !cfg.Cache.Shared {
		return l
	}
	return a.redis.StatusLookup(l, cfg.Cache.SessionTTL.D())
}

// webhookSeen is the webhook handler's de-duplication: shared when Redis is
// configured, nil (the handler's own in-memory one) otherwise.
func (a *App) webhookSeen() webhook.Seen {
	if a.redis == nil {
		return nil
	}
	return a.redis.Seen(nil)
}

// redisNotReady is why Redis keeps the App from being ready, or "".
func (a *App) redisNotReady() string {
	if a.redis == nil {
		return ""
	}
	return a.redis.NotReady()
}

func (a *App) closeRedis() {
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

func (m *metrics) registerRedis(st *redisstore.Store, propagation prometheus.Histogram) {
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
	m.reg.MustRegister(
		propagation,
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
