package app

import (
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
	st, err := redisstore.New(redisstore.Config{
		URL:              rv.RedisURL.Reveal(),
		DenyList:         a.deny,
		ShareRevocations: share,
		TTL:              rv.TTL.D(),
		Required:         rv.Required,
		OnRemote:         a.metrics.ObserveRevocationPropagation,
		Now:              opts.Now,
		Logger:           a.log.Named("redis"),
	})
	if err != nil {
		return &config.ValidationError{Problems: []config.Problem{{Key: "revocation.redis_url", Msg: err.Error()}}}
	}
	a.redis = st
	a.metrics.RegisterRedis(st)
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
