package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/admin"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/templatetoken"
	"github.com/sessiongate/sessiongate/webhook"
)

// setupSessions builds the Backend API client (with a secret key), the deny
// list and the session-status service.
func (a *App) setupSessions(cfg *config.Config, opts Options, now func() time.Time) error {
	a.deny = sessioncheck.NewDenyList(cfg.Revocation.TTL.D(), 0, opts.Now)
	if err := a.setupRedis(cfg, opts); err != nil {
		return err
	}
	if sk := cfg.Clerk.SecretKey.Reveal(); sk != "" {
		onResp := a.metrics.BackendCounter()
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
	a.metrics.RegisterSessionChecks(svc)
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
