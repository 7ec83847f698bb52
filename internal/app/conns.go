package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Long-lived connections (docs/sessions.md#long-lived-connections):
// one Watcher, subscribed to the deny list (which every revocation reaches:
// admin, webhook, inactive status, and Redis pub/sub from other replicas
// through DenyList.Apply), and one registry of the WebSockets and streams,
// both shared by every proxy a reload builds.

// maxCloseGrace bounds how long a WebSocket close waits for the client's
// answer before the TCP connections are cut; a short recheck_interval
// shortens it, so that a connection is always gone within the interval
// after a revocation reaches this replica.
const maxCloseGrace = time.Second

// setupConnections builds the Watcher and the registry; it runs after the
// deny list exists.
func (a *App) setupConnections(cfg *config.Config) error {
	cn := cfg.Connections
	w, err := middleware.NewWatcher(middleware.WatcherConfig{
		Revocations: a.deny,
		Interval:    cn.RecheckInterval.D(),
		Logger:      a.log.Named("connections"),
	})
	if err != nil {
		return err
	}
	a.watcher = w
	c, err := proxy.NewConnections(proxy.ConnectionsConfig{
		Watcher:     w,
		MaxLifetime: cn.MaxLifetime.D(),
		CloseGrace:  closeGrace(cn),
		Observer:    a.metrics,
		Logger:      a.log.Named("connections"),
	})
	if err != nil {
		return err
	}
	a.conns = c
	return nil
}

func closeGrace(cn config.Connections) time.Duration {
	return min(maxCloseGrace, cn.RecheckInterval.D())
}

// applyConnections applies a reloaded connections block: the interval from
// the next re-check, max_lifetime to the connections opened from now on.
// (The close grace stays: it was fixed at start.)
func (a *App) applyConnections(cfg *config.Config) {
	a.watcher.SetInterval(cfg.Connections.RecheckInterval.D())
	a.conns.SetMaxLifetime(cfg.Connections.MaxLifetime.D())
}

// shutdownConnections closes the WebSockets (1001) and event streams, and
// waits for them within the drain bound.
func (a *App) shutdownConnections(ctx context.Context) {
	if a.conns == nil {
		return
	}
	n := a.conns.Len()
	if err := a.conns.Shutdown(ctx); err != nil {
		a.log.Warn("drain bound reached with long-lived connections still closing", zap.Int("open", a.conns.Len()), zap.Error(err))
		return
	}
	if n > 0 {
		a.log.Info("long-lived connections closed for shutdown", zap.Int("connections", n))
	}
}

func (a *App) closeConnections() {
	if a.watcher != nil {
		a.watcher.Close()
	}
}
