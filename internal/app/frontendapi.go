package app

import (
	"fmt"
	"net/url"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/proxy"
)

// setupFrontendAPI builds what the clerk keys give the proxy, once: the
// Frontend API proxy when sessiongate serves clerk.proxy_url (a path, or a
// URL on public_origin), and the satellite's sign-in sync. Both are
// restart-only (clerk.* is not reloadable), so buildProxy reads them from
// the App.
func (a *App) setupFrontendAPI(cfg *config.Config) error {
	a.satellite = cfg.Clerk.IsSatellite
	prefix, absolute, ok := cfg.ServesFrontendAPI()
	if !ok {
		if cfg.Clerk.ProxyURL != "" && cfg.PublicOrigin == "" {
			a.log.Info("clerk.proxy_url is a URL and public_origin is not set: sessiongate does not serve it (give a path such as /__clerk, or set public_origin, to have it served)",
				zap.String("proxy_url", cfg.Clerk.ProxyURL))
		}
		return nil
	}
	f := &proxy.FrontendAPI{
		Path:      prefix,
		ProxyURL:  absolute,
		SecretKey: cfg.Clerk.SecretKey.Reveal(),
		Transport: a.transport,
	}
	target := cfg.Clerk.FrontendAPIURL
	if target == "" {
		target = proxy.DefaultFrontendAPIURL
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("clerk.frontend_api_url: %w", err)
	}
	f.Target = u
	a.fapi = f
	a.log.Info("serving Clerk's Frontend API proxy", zap.String("path", prefix), zap.String("frontend_api", u.Redacted()))
	return nil
}
