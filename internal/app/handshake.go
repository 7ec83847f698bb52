package app

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
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
	hc := handshake.Config{
		Gate:         a.gate,
		FrontendAPI:  pk.FrontendAPI,
		CookieSuffix: pk.CookieSuffix,
		Production:   pk.Live,
		BaseURL:      cfg.Clerk.ProxyURL,
		CookieDomain: cookieDomain(pk.FrontendAPI, cfg.PublicOrigin),
		Logger:       a.log.Named("handshake"),
		// The nonce limits: the process's cap, and each client's budget.
		NonceRate:        cmp.Or(cfg.Clerk.HandshakeNonceRate, handshake.DefaultNonceRate),
		NonceBurst:       cmp.Or(cfg.Clerk.HandshakeNonceBurst, handshake.DefaultNonceBurst),
		NonceClientRate:  handshake.DefaultNonceClientRate,
		NonceClientBurst: handshake.DefaultNonceClientBurst,
		ClientKey:        a.handshakeClientKey(),
	}
	if a.api != nil {
		hc.Exchanger = a.api
	} else {
		a.log.Warn("Clerk handshake without clerk.secret_key: payloads Clerk sends by nonce (over 2 KiB) cannot be exchanged and end signed-out")
	}
	h, err := handshake.New(hc)
	if err != nil {
		return nil, err
	}
	a.hs = h
	if a.metrics != nil {
		a.metrics.registerHandshake(h)
	}
	a.log.Info("Clerk handshake on", zap.Strings("routes", handshakeRoutes(cfg)),
		zap.String("frontend_api", pk.FrontendAPI), zap.String("handshake_base", strings.TrimRight(orDefault(cfg.Clerk.ProxyURL, "https://"+pk.FrontendAPI), "/")))
	return h, nil
}

// handshakeClientKey is the handshake's Config.ClientKey: the client
// address by the trusted_proxies of the running configuration, an IPv6
// client by its /64 (proxy.ClientAddr, proxy.ClientKey). The Handshaker
// lives as long as the App, and a reload may change trusted_proxies: the
// prefixes are parsed again, once, when the running configuration changes.
func (a *App) handshakeClientKey() func(*http.Request) string {
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

// registerHandshake exports the nonce counters: exchanges spend the
// instance's Backend API rate limit, and a rising rate_limited count means
// browsers are answered 503 for want of one (client_rate_limited: one
// client, or one address, over its budget; the rest: the process's cap).
func (m *metrics) registerHandshake(h *handshake.Handshaker) {
	counter := func(name, help string, v func(handshake.NonceStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(h.NonceStats())) })
	}
	m.reg.MustRegister(
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
	)
}
