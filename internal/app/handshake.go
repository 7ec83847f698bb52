package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// handshaker returns the App's Clerk handshake (one for every route that has
// it on: the route's policy is passed per request), building it on first
// use.
func (a *App) handshaker(cfg *config.Config) (*handshake.Handshaker, error) {
	if a.hs != nil {
		return a.hs, nil
	}
	if cfg.Clerk.PublishableKey == "" {
		return nil, errors.New("the handshake needs clerk.publishable_key")
	}
	pk, err := config.ParsePublishableKey(cfg.Clerk.PublishableKey)
	if err != nil {
		return nil, err
	}
	// The Frontend API as tokens name it: a production satellite's is
	// clerk.<domain>.
	fapi, _ := cfg.FrontendAPIHost()
	hc := handshake.Config{
		Gate:         a.gate,
		FrontendAPI:  fapi,
		CookieSuffix: pk.CookieSuffix,
		Production:   pk.Live,
		BaseURL:      cfg.Clerk.ProxyURL,
		CookieDomain: cookieDomain(fapi, cfg.PublicOrigin),
		Logger:       a.log.Named("handshake"),
		// Satellites and the cross-origin sync (handshake/satellite.go). A
		// development primary answers satellite syncs only for the
		// authorized parties' origins.
		Satellite:         cfg.Clerk.IsSatellite,
		SatelliteAutoSync: cfg.Clerk.SatelliteAutoSync,
		SignInURL:         cfg.Clerk.SignInURL,
		SyncOrigins:       cfg.Clerk.AuthorizedParties,
		CrossOriginSync:   cfg.Clerk.CrossOriginSyncEnabled(),
		// The nonce limits: the process's cap, and each client's budget.
		NonceRate:        cmp.Or(cfg.Clerk.HandshakeNonceRate, handshake.DefaultNonceRate),
		NonceBurst:       cmp.Or(cfg.Clerk.HandshakeNonceBurst, handshake.DefaultNonceBurst),
		NonceClientRate:  handshake.DefaultNonceClientRate,
		NonceClientBurst: handshake.DefaultNonceClientBurst,
		ClientKey:        a.clientKey(),
	}
	// The Gate factory: the __refresh flow verifies an expired token with
	// it, and a development instance retries a skewed one.
	hc.GateAt = a.gateAt(cfg)
	if a.api != nil {
		hc.Exchanger = a.api
		hc.Refresher = refresher{a.api}
	} else {
		a.log.Warn("Clerk handshake without clerk.secret_key: payloads Clerk sends by nonce (over 2 KiB) cannot be exchanged and end signed-out, and expired sessions are never refreshed through __refresh")
	}
	if !pk.Live {
		a.log.Warn("Clerk handshake of a development instance (pk_test_): handshake payloads are read from the URL, as Clerk's development instances send them, so a link can sign a browser in to someone else's session; never put real users behind development keys")
	}
	h, err := handshake.New(hc)
	if err != nil {
		return nil, err
	}
	a.hs = h
	if a.metrics != nil {
		a.metrics.RegisterHandshake(h)
	}
	a.log.Info("Clerk handshake on", zap.Strings("routes", handshakeRoutes(cfg)), zap.Bool("production", pk.Live),
		zap.Bool("satellite", cfg.Clerk.IsSatellite),
		zap.String("frontend_api", fapi), zap.String("handshake_base", strings.TrimRight(orDefault(cfg.Clerk.ProxyURL, "https://"+fapi), "/")))
	return h, nil
}

// refresher adapts the Backend API client to the handshake's __refresh
// flow: Clerk's refusals become a *handshake.RefreshError with Clerk's code.
type refresher struct{ c *clerkapi.Client }

func (r refresher) RefreshSession(ctx context.Context, sid string, req handshake.RefreshRequest) ([]string, error) {
	p := clerkapi.RefreshParams{
		ExpiredToken: req.ExpiredToken, RefreshToken: req.RefreshToken, RequestOrigin: req.RequestOrigin,
		RequestOriginatingIP: req.ClientIP, SuffixedCookies: req.SuffixedCookies,
	}
	if req.UserAgent != "" {
		p.RequestHeaders = map[string][]string{"User-Agent": {req.UserAgent}}
	}
	cookies, err := r.c.RefreshSession(ctx, sid, p)
	var ae *clerkapi.APIError
	if errors.As(err, &ae) && len(ae.Errors) > 0 {
		return nil, &handshake.RefreshError{Code: ae.Errors[0].Code, Err: err}
	}
	return cookies, err
}

// gateAt is the handshake's Config.GateAt: a Gate that verifies session
// tokens as the App's does (issuer, keys, authorized parties, skew), without
// a token cache, its clock standing at the given instant. A development
// instance's handshake uses it for Clerk's one-day clock-skew retry.
func (a *App) gateAt(cfg *config.Config) func(time.Time) (*middleware.Gate, error) {
	return func(at time.Time) (*middleware.Gate, error) {
		return middleware.New(middleware.Config{
			Issuer:            cfg.Clerk.Issuer,
			Keys:              a.keys,
			AuthorizedParties: cfg.Clerk.AuthorizedParties,
			ClockSkew:         cfg.Clerk.ClockSkew.D(),
			TokenCacheSize:    -1,
			Now:               func() time.Time { return at },
			Logger:            a.log.Named("gate"),
		})
	}
}

// clientKey is the handshake's and the Gate's Config.ClientKey (nonce and
// machine-credential miss budgets): the client
// address by the trusted_proxies of the running configuration, an IPv6
// client by its /64 (proxy.ClientAddr, proxy.ClientKey). The Handshaker
// lives as long as the App, and a reload may change trusted_proxies: the
// prefixes are parsed again, once, when the running configuration changes.
func (a *App) clientKey() func(*http.Request) string {
	type parsed struct {
		f       *front
		trusted []netip.Prefix
	}
	var last atomic.Pointer[parsed]
	return func(r *http.Request) string {
		f := a.front.Load()
		p := last.Load()
		if p == nil || p.f != f {
			p = &parsed{f: f}
			if f != nil {
				for _, s := range f.cfg.TrustedProxies {
					// Validated before the configuration ran.
					if pfx, err := parsePrefix(s); err == nil {
						p.trusted = append(p.trusted, pfx)
					}
				}
			}
			last.Store(p)
		}
		return proxy.ClientKey(proxy.ClientAddr(r, p.trusted))
	}
}

// cookieDomain is the Domain of sessiongate's own cookie deletions: the
// domain Clerk's Frontend API sets the handshake cookies on, which is the
// Frontend API host without its "clerk." label (clerk.example.com →
// example.com), provided the public origin (when configured) is that domain
// or below it. Otherwise "" (host-only deletions only).
func cookieDomain(fapi, publicOrigin string) string {
	d, ok := strings.CutPrefix(strings.ToLower(fapi), "clerk.")
	if !ok || !strings.Contains(d, ".") || strings.Contains(d, ":") {
		return ""
	}
	if publicOrigin != "" {
		u, err := url.Parse(publicOrigin)
		if err != nil {
			return ""
		}
		host := strings.ToLower(u.Hostname())
		if host != d && !strings.HasSuffix(host, "."+d) {
			return ""
		}
	}
	return d
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// routeHandshake is the handshake of route i, nil when it is off.
func (a *App) routeHandshake(cfg *config.Config, i int) (*handshake.Handshaker, error) {
	if !cfg.Routes[i].HandshakeEnabled(cfg) {
		return nil, nil
	}
	h, err := a.handshaker(cfg)
	if err != nil {
		return nil, fmt.Errorf("routes[%d].handshake: %w", i, err)
	}
	return h, nil
}
