package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/admin"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/templatetoken"
	"github.com/sessiongate/sessiongate/webhook"
)

// backendMetrics counts Backend API calls by endpoint template and status.
func (m *metrics) backendCounter() func(endpoint string, status int) {
	if m.backendCalls == nil {
		m.backendCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_backend_api_requests_total",
			Help: "Backend API calls by endpoint and HTTP status (0: network error).",
		}, []string{"endpoint", "status"})
		m.reg.MustRegister(m.backendCalls)
	}
	calls := m.backendCalls
	return func(endpoint string, status int) {
		calls.WithLabelValues(endpoint, fmt.Sprint(status)).Inc()
	}
}

func (m *metrics) registerSessionChecks(svc *sessioncheck.Service) {
	stat := func(f func(sessioncheck.Stats) float64) func() float64 {
		return func() float64 { return f(svc.Stats()) }
	}
	m.reg.MustRegister(
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

// setupSessions builds the Backend API client (with a secret key), the deny
// list and the session-status service.
func (a *App) setupSessions(cfg *config.Config, opts Options, now func() time.Time) error {
	a.deny = sessioncheck.NewDenyList(cfg.Revocation.TTL.D(), 0, opts.Now)
	if err := a.setupRedis(cfg, opts); err != nil {
		return err
	}
	if sk := cfg.Clerk.SecretKey.Reveal(); sk != "" {
		onResp := a.metrics.backendCounter()
		c, err := clerkapi.New(clerkapi.Config{
			SecretKey:  sk,
			APIURL:     cfg.Clerk.APIURL,
			HTTPClient: opts.HTTPClient,
			// One retry: a request waits on a status lookup, and the breaker
			// and the route's on_session_check_error decide the rest.
			MaxRetries:     1,
			Logger:         a.log.Named("clerkapi"),
			TracerProvider: a.tracerProvider(),
			OnResponse:     onResp,
		})
		if err != nil {
			return fmt.Errorf("clerk.secret_key: %w", err)
		}
		a.api = c
	}
	scfg := sessioncheck.Config{
		DenyList:  a.deny,
		CacheSize: cfg.Cache.Sessions,
		TTL:       cfg.Cache.SessionTTL.D(),
		Now:       opts.Now,
		Logger:    a.log.Named("sessioncheck"),
	}
	if a.api != nil {
		scfg.Lookup = sessioncheck.ClerkLookup(a.api)
		scfg.CachedLookup = a.sharedStatus(cfg, scfg.Lookup)
	}
	svc, err := sessioncheck.New(scfg)
	if err != nil {
		return err
	}
	a.sessions = svc
	a.metrics.registerSessionChecks(svc)
	return nil
}

// templateSource returns the (shared) template-token source for a template.
func (a *App) templateSource(cfg *config.Config, name string) (*templatetoken.Source, error) {
	a.templatesMu.Lock()
	defer a.templatesMu.Unlock()
	if s, ok := a.templates[name]; ok {
		return s, nil
	}
	if a.api == nil {
		return nil, errors.New("token_template needs clerk.secret_key")
	}
	s, err := templatetoken.New(templatetoken.Config{Minter: templatetoken.ClerkMinter(a.api), Template: name, Size: cfg.Cache.Sessions})
	if err != nil {
		return nil, err
	}
	a.templates[name] = s
	return s, nil
}

// revokeLocally denies a session locally at once and drops what is cached
// for it; ctx is the revoking request's (its request_id goes on the log
// lines the revocation writes).
func (a *App) revokeLocally(ctx context.Context, sid string) time.Time {
	until := a.deny.DenyContext(ctx, sid)
	a.templatesMu.Lock()
	defer a.templatesMu.Unlock()
	for _, s := range a.templates {
		s.Forget(sid)
	}
	return until
}

func (a *App) webhookHandler(cfg *config.Config) (http.Handler, error) {
	secret := cfg.Clerk.WebhookSecret.Reveal()
	if secret == "" {
		return nil, nil
	}
	v, err := webhook.NewVerifier(secret, nil)
	if err != nil {
		return nil, fmt.Errorf("clerk.webhook_secret: %w", err)
	}
	return &webhook.Handler{
		Verifier:      v,
		RevokeContext: func(ctx context.Context, sid string) { a.revokeLocally(ctx, sid) },
		Seen:          a.webhookSeen(),
		Logger:        a.log.Named("webhook"),
		// The same bound as the other reserved paths (netutil.BoundBodies in New).
		ReadTimeout: a.reservedReadTimeout,
	}, nil
}

// adminSessions is the admin session API's server side (internal/admin),
// given the App's deny list, template caches and Backend API client.
func (a *App) adminSessions() *admin.Server {
	srv := &admin.Server{DenyLocally: a.revokeLocally, Logger: a.log}
	if a.api != nil { // a nil *clerkapi.Client must stay a nil interface
		srv.Clerk = a.api
	}
	return srv
}
