package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
)

// notifyHUP catches SIGHUP, whose default action would end the process
// (supervisors and log-rotation tools send it routinely).
func notifyHUP() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reloadOptions makes opts re-read the configuration from src, the sources
// serve started with (the same file, environment and flags), and watch that
// file for watch_config.
func reloadOptions(opts app.Options, src config.Sources) app.Options {
	opts.Reload = func() (*config.Config, error) { return config.Load(src) }
	opts.ConfigFile = src.File
	if opts.ConfigFile == "" {
		opts.ConfigFile = os.Getenv("SESSIONGATE_CONFIG")
	}
	return opts
}

// reloadOnHUP reloads the configuration on each SIGHUP until ctx is done.
// The App logs and counts each outcome; a refused configuration leaves the
// running one in place.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, a *app.App) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = a.Reload("SIGHUP")
		}
	}
}
