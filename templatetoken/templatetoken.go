// Package templatetoken mints Clerk JWT-template tokens for upstreams: a
// route with token_template sends its upstream "Authorization: Bearer
// <template JWT>" minted through the Backend API
// (POST /v1/sessions/{sid}/tokens/{template}) for the request's session,
// instead of the session token.
//
// Tokens are cached until Margin before their exp, per session and per
// scope: what the verified session token says about the session that a
// template can read (see Scope). Clerk mints from the session's state at
// Clerk, so a token minted for one organization MUST NOT reach a request
// made in another: after an organization switch, a role or permission
// change, or an impersonation, the request's session token carries other
// claims and gets a token of its own. Concurrent requests for one session
// and scope share one mint.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package templatetoken

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sessiongate/sessiongate/internal/flight"
	"github.com/sessiongate/sessiongate/middleware"
)

// Minter creates a template token for a session (clerkapi.Client.CreateToken
// through an adapter).
type Minter interface {
	// CreateToken mints, for session sessionID, a token of the JWT
	// template named template.
	CreateToken(ctx context.Context, sessionID, template string) (string, error)
}

// Config configures a Source.
type Config struct {
	// Minter mints. Required.
	Minter Minter
	// Template is the JWT template name. Required.
	Template string
	// Size bounds the number of sessions cached (each with at most four
	// scopes). Zero means 100,000.
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
	flights  flight.Group[string] // one mint per session and scope

	// cache maps a sid to its tokens. Its values are never changed in
	// place: a new token replaces the slice.
	cache *lru.Cache[string, []cached]
	mu    sync.Mutex // serializes replacing a sid's tokens, so none is lost
}

// maxScopes bounds the tokens kept per session: the scopes it was used in
// last (a few tabs on different organizations). A session cycling through
// more scopes than this gets a mint per request, as a strict route would.
const maxScopes = 4

type cached struct {
	scope   scope
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
	c, err := lru.New[string, []cached](size)
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

// UpstreamToken returns a template token for the session of c, minted for
// the scope c describes.
func (s *Source) UpstreamToken(ctx context.Context, c *middleware.Claims) (string, error) {
	sid := c.SessionID
	sc := scopeOf(c)
	if jwt, ok := s.lookup(sid, &sc); ok {
		return jwt, nil
	}
	return s.mint(ctx, sid, sc.clone())
}

// mint mints a token for sid in scope sc, once for every request waiting
// for it, and caches it. sc is kept: it must not share c's slices.
func (s *Source) mint(ctx context.Context, sid string, sc scope) (string, error) {
	return s.flights.Do(ctx, sc.key(sid), s.timeout, func(mctx context.Context) (string, error) {
		// A request that missed the cache just before a previous flight
		// ended finds its token here instead of minting again.
		if jwt, ok := s.lookup(sid, &sc); ok {
			return jwt, nil
		}
		jwt, err := s.minter.CreateToken(mctx, sid, s.template)
		if err != nil {
			return "", err
		}
		if exp, ok := expiry(jwt); ok {
			if refresh := exp.Add(-s.margin); s.now().Before(refresh) {
				s.store(sid, cached{scope: sc, jwt: jwt, refresh: refresh})
			}
		}
		return jwt, nil
	})
}

func (s *Source) lookup(sid string, sc *scope) (string, bool) {
	tokens, ok := s.cache.Get(sid)
	if !ok {
		return "", false
	}
	now := s.now()
	for i := range tokens {
		if tokens[i].scope.equal(sc) && now.Before(tokens[i].refresh) {
			return tokens[i].jwt, true
		}
	}
	return "", false
}

// store makes t the first of its session's tokens, replacing one of the
// same scope and dropping those due for refresh and those past maxScopes.
func (s *Source) store(sid string, t cached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, _ := s.cache.Peek(sid)
	tokens := make([]cached, 1, min(len(old)+1, maxScopes))
	tokens[0] = t
	now := s.now()
	for _, o := range old {
		if len(tokens) == maxScopes {
			break
		}
		if !o.scope.equal(&t.scope) && now.Before(o.refresh) {
			tokens = append(tokens, o)
		}
	}
	s.cache.Add(sid, tokens)
}

// Forget drops the cached tokens of a session, in every scope (revocation).
func (s *Source) Forget(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.Remove(sid)
}

// scope is what a template token may depend on that the request's
// verified session token tells: the claims that describe the session's
// state at Clerk (user, active organization with its slug, role and
// permissions, impersonator, status, plan and features). A token is reused
// only for a request whose claims match all of them exactly.
//
// Left out: the times, jti and azp (they change with every session token
// and no template reads them: keying on them would mint once per session
// token, defeating the cache for long-lived templates) and fva (minutes
// since verification, which changes every minute for the same reason).
// State at Clerk that no session-token claim reflects (metadata, a name)
// is as fresh as the cached token: at most its lifetime minus Margin, as
// with Clerk's own frontend cache.
type scope struct {
	sub, orgID, orgSlug, orgRole, sts, plan string
	perms, features                         []string
	actor                                   middleware.Actor
	impersonated                            bool
}

// scopeOf reads the scope of c. Its slices are c's: clone before keeping.
func scopeOf(c *middleware.Claims) scope {
	sc := scope{
		sub: c.Subject, orgID: c.OrgID, orgSlug: c.OrgSlug, orgRole: c.OrgRole, sts: c.SessionStatus, plan: c.Plan,
		perms: c.OrgPermissions, features: c.Features,
	}
	if c.Actor != nil {
		sc.actor, sc.impersonated = *c.Actor, true
	}
	return sc
}

func (a *scope) equal(b *scope) bool {
	return a.sub == b.sub && a.orgID == b.orgID && a.orgSlug == b.orgSlug && a.orgRole == b.orgRole &&
		a.sts == b.sts && a.plan == b.plan && a.actor == b.actor && a.impersonated == b.impersonated &&
		slices.Equal(a.perms, b.perms) && slices.Equal(a.features, b.features)
}

func (a *scope) clone() scope {
	c := *a
	c.perms, c.features = slices.Clone(a.perms), slices.Clone(a.features)
	return c
}

// key is an unambiguous encoding of sid and the scope, naming a mint in
// flight.
func (a *scope) key(sid string) string {
	b := make([]byte, 0, 256)
	field := func(s string) []byte {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	for _, s := range []string{sid, a.sub, a.orgID, a.orgSlug, a.orgRole, a.sts, a.plan} {
		b = field(s)
	}
	for _, l := range [][]string{a.perms, a.features} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = field(s)
		}
	}
	if a.impersonated {
		b = append(b, 1)
		for _, s := range []string{a.actor.Issuer, a.actor.SessionID, a.actor.Subject, a.actor.Type} {
			b = field(s)
		}
	}
	return string(b)
}

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
