// Package templatetoken mints Clerk JWT-template tokens for upstreams: a
// route with token_template sends its upstream "Authorization: Bearer
// <template JWT>" minted through the Backend API
// (POST /v1/sessions/{sid}/tokens/{template}) for the request's session,
// instead of the session token.
//
// Tokens are cached per session until Margin before their exp, and
// concurrent requests for one session share one mint.
package templatetoken

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/sessiongate/sessiongate/middleware"
)

// Minter creates a template token for a session (clerkapi.Client.CreateToken
// through an adapter).
type Minter interface {
	CreateToken(ctx context.Context, sessionID, template string) (string, error)
}

// Config configures a Source.
type Config struct {
	// Minter mints. Required.
	Minter Minter
	// Template is the JWT template name. Required.
	Template string
	// Size bounds the cache. Zero means 100,000.
	Size int
	// Margin is how long before exp a cached token is replaced. Zero means
	// 10 s (a template token often lives 60 s).
	Margin time.Duration
	// Timeout bounds one mint. Zero means 5 s.
	Timeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Source hands out template tokens. It is safe for concurrent use.
type Source struct {
	minter   Minter
	template string
	margin   time.Duration
	timeout  time.Duration
	now      func() time.Time
	cache    *lru.Cache[string, cached]
	group    singleflight.Group
}

type cached struct {
	jwt     string
	refresh time.Time // exp - margin
}

// New builds a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Minter == nil || cfg.Template == "" {
		return nil, errors.New("templatetoken: Minter and Template are required")
	}
	size := cfg.Size
	if size <= 0 {
		size = 100_000
	}
	c, err := lru.New[string, cached](size)
	if err != nil {
		return nil, err
	}
	s := &Source{minter: cfg.Minter, template: cfg.Template, margin: cfg.Margin, timeout: cfg.Timeout, now: cfg.Now, cache: c}
	if s.margin <= 0 {
		s.margin = 10 * time.Second
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// UpstreamToken returns a template token for the session of c.
func (s *Source) UpstreamToken(ctx context.Context, c *middleware.Claims) (string, error) {
	sid := c.SessionID
	if e, ok := s.cache.Get(sid); ok && s.now().Before(e.refresh) {
		return e.jwt, nil
	}
	ch := s.group.DoChan(sid, func() (any, error) {
		// A request that missed the cache just before a previous flight
		// ended finds its token here instead of minting again.
		if e, ok := s.cache.Get(sid); ok && s.now().Before(e.refresh) {
			return e.jwt, nil
		}
		mctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		jwt, err := s.minter.CreateToken(mctx, sid, s.template)
		if err != nil {
			return "", err
		}
		if exp, ok := expiry(jwt); ok {
			if refresh := exp.Add(-s.margin); s.now().Before(refresh) {
				s.cache.Add(sid, cached{jwt: jwt, refresh: refresh})
			}
		}
		return jwt, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Forget drops the cached token of a session (revocation).
func (s *Source) Forget(sid string) { s.cache.Remove(sid) }

// expiry reads exp from a JWT minted by Clerk through an authenticated
// Backend API call. It is not verified: the token is only forwarded, and a
// bad exp only makes it be re-minted sooner or not cached.
func expiry(jwt string) (time.Time, bool) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	return time.Unix(*claims.Exp, 0), true
}
