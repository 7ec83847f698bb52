package devmode

import (
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// buildConfig is dev mode's configuration: the fake as the Clerk instance,
// "/public" public and everything else required, in front of the demo.
func buildConfig(listen, adminListen, gateOrigin, demoURL string, fake *clerktest.Instance, lifetime time.Duration) *config.Config {
	cfg := config.Defaults()
	cfg.Listen = listen
	cfg.AdminListen = adminListen
	cfg.Clerk.Issuer = fake.Issuer()
	// The fake as a production (or, --instance development, a development)
	// instance: the publishable key names it as the Frontend API (cookie
	// suffix, issuer host) and proxy_url sends the handshake redirect to it
	// over http.
	cfg.Clerk.PublishableKey = fake.PublishableKey()
	cfg.Clerk.ProxyURL = fake.URL()
	cfg.Clerk.SecretKey = config.Secret(fake.SecretKey())
	cfg.Clerk.APIURL = fake.APIURL()
	cfg.Clerk.AuthorizedParties = []string{gateOrigin}
	cfg.SignInURL = fake.URL() + clerktest.SignInPath // the gate sets redirect_url
	cfg.PublicOrigin = gateOrigin
	cfg.Upstream = demoURL
	cfg.Routes = []config.Route{
		{Path: "/public", Auth: config.AuthPublic},
		{Path: "/api", Auth: config.AuthRequired, Accepts: []string{"session_token", "api_key"}},
		{Path: "/", Auth: config.AuthRequired},
	}
	cfg.Log.Level = "info"
	cfg.Server.ShutdownTimeout = config.Duration(shutdownTimeout)
	// A revocation must outlive the tokens it revokes; dev tokens live long.
	if ttl := config.Duration(lifetime + time.Minute); ttl > cfg.Revocation.TTL {
		cfg.Revocation.TTL = ttl
	}
	cfg.Normalize()
	return &cfg
}
