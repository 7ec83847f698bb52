package middleware

import (
	"context"
	"crypto"
	"crypto/rsa"
	_ "crypto/sha256" // RS256
	_ "crypto/sha512" // RS384, RS512
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/jwks"
)

// KeySource resolves a token's key id to a verification key. The jwks package
// provides a remote JWKS source, a static PEM source and an in-memory one.
//
// Key MUST return an error wrapping jwks.ErrKeyNotFound for an unknown kid
// (after whatever refetch the source allows itself) and one wrapping
// jwks.ErrUnavailable when it has no usable key set. It MUST NOT trust
// anything from the token but the kid.
type KeySource interface {
	// Key returns the verification key whose key id is kid.
	Key(ctx context.Context, kid string) (*jwks.Key, error)
}

// SessionChecker is step 6 of the pipeline: is the session of a verified
// token still alive? It runs on every request, cache hits included, after
// the token has been fully verified. It returns nil for a live session, an
// *Error (session-revoked, session-status-unavailable) otherwise; any other
// error is treated as session-status-unavailable (fail closed).
type SessionChecker interface {
	// CheckSession reports whether the session claims.SessionID names is
	// alive: nil if it is.
	CheckSession(ctx context.Context, claims *Claims) error
}

// DefaultClockSkew is the leeway applied to exp, nbf and iat, as in Clerk's
// JavaScript SDK.
const DefaultClockSkew = 5 * time.Second

// DefaultTokenCacheSize is the number of verified tokens kept by default.
const DefaultTokenCacheSize = 100_000

// Config configures a Gate. It is validated once, by New.
type Config struct {
	// Issuer is the exact iss every token must carry: the instance's Frontend
	// API URL (https://clerk.example.com) or its proxy URL. Required. It must
	// not end in "/": Clerk's iss claim never does.
	Issuer string
	// Keys resolves kids to keys. Required.
	Keys KeySource
	// AuthorizedParties, when not empty, is the list of origins allowed in
	// azp; a token without azp is then rejected. Empty: azp is not checked.
	AuthorizedParties []string
	// Algorithms is the alg allowlist. Empty means RS256 only; RS384 and
	// RS512 may be added. The key's own alg must match the header in any case.
	Algorithms []string
	// ClockSkew is the leeway on exp, nbf and iat. Zero means
	// DefaultClockSkew (5 s); it may not be negative or over 5 minutes.
	ClockSkew time.Duration
	// AllowPending lets sessions with sts "pending" through Require and
	// Verify. Default false: pending is signed-out (session-pending).
	AllowPending bool
	// Sessions, if set, checks session status after verification (step 6).
	Sessions SessionChecker
	// TokenCacheSize bounds the verified-token cache. Zero means
	// DefaultTokenCacheSize; negative disables the cache.
	TokenCacheSize int
	// Realm is the realm of WWW-Authenticate. Empty means "sessiongate".
	Realm string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives debug lines for rejections (reason, kid, sub; never a
	// token). Nil means zap.NewNop().
	Logger *zap.Logger
	// Machines verifies opaque machine credentials (ak_, mt_, oat_) for
	// policies that accept them (package machine). Nil: such credentials
	// are 503 machine-token-verification-unavailable. M2M and OAuth JWTs
	// are verified by the Gate itself, against Keys.
	Machines MachineVerifier
	// ClientKey identifies a request's client for per-client limits (the
	// MachineVerifier's rate limit). Nil: the peer address.
	ClientKey func(*http.Request) string
	// TracerProvider, when set, makes Require, Optional and their With
	// forms record a span around the request they wrap (tracing.go): a
	// child of the span already in the request's context (an otelhttp
	// server span, say), else a server span continuing the caller's trace
	// from the request headers (Propagator). Its attributes are the
	// credential kind, the reason code and the user id; never a token or a
	// cookie. Nil: tracing off, at no cost.
	TracerProvider trace.TracerProvider
	// Propagator reads the caller's trace context when the request's
	// context has no span. Nil: W3C Trace Context. Unused without
	// TracerProvider.
	Propagator propagation.TextMapPropagator
}

// Gate verifies Clerk session tokens. It is safe for concurrent use.
type Gate struct {
	issuer       string
	keys         KeySource
	parties      map[string]struct{}
	algs         [3]string // allowlist; unused entries are ""
	skew         time.Duration
	allowPending bool
	sessions     SessionChecker
	cache        *tokenCache
	realm        string
	now          func() time.Time
	log          *zap.Logger
	intern       *interner

	hits, misses stripedCounter

	machines    MachineVerifier
	clientKeyFn func(*http.Request) string
	// machineJWTs counts M2M (0) and OAuth (1) JWT verifications by
	// outcome (machine.go).
	machineJWTs [2][numJWTOutcomes]atomic.Uint64

	tracer trace.Tracer // nil: tracing off (tracing.go)
	prop   propagation.TextMapPropagator
}

// Stats are the Gate's counters, for metrics.
type Stats struct {
	// CacheHits and CacheMisses count verified-token cache lookups.
	CacheHits, CacheMisses uint64
	// CacheSize is the number of cached tokens.
	CacheSize int
	// MachineJWTs counts the networkless verifications of M2M and OAuth
	// JWTs, by kind (M2MToken, OAuthToken) and outcome, indexed as
	// MachineJWTOutcomes. A JWT of a kind the policy does not accept is not
	// verified, so not counted.
	MachineJWTs map[TokenType][numJWTOutcomes]uint64
}

// Stats returns the Gate's counters.
func (g *Gate) Stats() Stats {
	s := Stats{CacheHits: g.hits.load(), CacheMisses: g.misses.load(), MachineJWTs: map[TokenType][numJWTOutcomes]uint64{}}
	for k, kind := range [2]TokenType{M2MToken, OAuthToken} {
		var row [numJWTOutcomes]uint64
		for o := range row {
			row[o] = g.machineJWTs[k][o].Load()
		}
		s.MachineJWTs[kind] = row
	}
	if g.cache != nil {
		s.CacheSize = g.cache.Len()
	}
	return s
}

// New validates cfg and builds a Gate.
func New(cfg Config) (*Gate, error) {
	g := &Gate{
		keys:         cfg.Keys,
		skew:         cfg.ClockSkew,
		allowPending: cfg.AllowPending,
		sessions:     cfg.Sessions,
		realm:        cfg.Realm,
		now:          cfg.Now,
		log:          cfg.Logger,
		intern:       newInterner(),
		machines:     cfg.Machines,
		clientKeyFn:  cfg.ClientKey,
	}
	g.setupTracing(cfg.TracerProvider, cfg.Propagator)
	if err := validateIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	g.issuer = cfg.Issuer
	if cfg.Keys == nil {
		return nil, errors.New("middleware: Config.Keys is required")
	}
	if len(cfg.AuthorizedParties) > 0 {
		g.parties = make(map[string]struct{}, len(cfg.AuthorizedParties))
		for _, p := range cfg.AuthorizedParties {
			if err := validateParty(p); err != nil {
				return nil, err
			}
			g.parties[p] = struct{}{}
		}
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{jwks.RS256}
	}
	for i, a := range algs {
		switch a {
		case jwks.RS256, jwks.RS384, jwks.RS512:
		default:
			return nil, fmt.Errorf("middleware: Config.Algorithms: %q is not one of RS256, RS384, RS512", a)
		}
		if i >= len(g.algs) {
			return nil, errors.New("middleware: Config.Algorithms: too many entries")
		}
		g.algs[i] = a
	}
	switch {
	case g.skew < 0:
		return nil, errors.New("middleware: Config.ClockSkew must not be negative")
	case g.skew == 0:
		g.skew = DefaultClockSkew
	case g.skew > 5*time.Minute:
		return nil, errors.New("middleware: Config.ClockSkew must not exceed 5m")
	}
	if g.realm == "" {
		g.realm = "sessiongate"
	}
	if strings.ContainsAny(g.realm, "\"\\\r\n") {
		return nil, errors.New("middleware: Config.Realm must not contain quotes, backslashes or line breaks")
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	size := cfg.TokenCacheSize
	if size == 0 {
		size = DefaultTokenCacheSize
	}
	if size > 0 {
		c, err := newTokenCache(size, g.intern)
		if err != nil {
			return nil, fmt.Errorf("middleware: token cache: %w", err)
		}
		g.cache = c
	}
	return g, nil
}

func validateIssuer(iss string) error {
	if iss == "" {
		return errors.New("middleware: Config.Issuer is required")
	}
	u, err := url.Parse(iss)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("middleware: Config.Issuer %q is not an http(s) URL without query or fragment", iss)
	}
	if strings.HasSuffix(iss, "/") {
		return fmt.Errorf("middleware: Config.Issuer %q must not end with \"/\" (Clerk's iss claim never does)", iss)
	}
	return nil
}

func validateParty(p string) error {
	u, err := url.Parse(p)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(p, "/") {
		return fmt.Errorf("middleware: Config.AuthorizedParties: %q is not an origin (scheme://host[:port])", p)
	}
	return nil
}

// Verify runs the whole pipeline on a raw token with the Gate's own policy
// (Config.AllowPending, Config.Sessions) and returns the claims or an *Error.
// It is for callers outside HTTP handlers (WebSocket upgrades, gRPC, jobs).
func (g *Gate) Verify(ctx context.Context, token string) (*Claims, error) {
	return g.VerifyWith(ctx, token, g.DefaultPolicy())
}

// Policy is what a caller asks of a token beyond the Gate's own checks. The
// proxy builds one per route.
type Policy struct {
	// AllowPending lets sts "pending" sessions through.
	AllowPending bool
	// Sessions checks session status (step 6); nil skips the check.
	Sessions SessionChecker
	// Require is checked last, on a verified, active session: organization,
	// role, permissions, features, plans, reverification (403s); and on a
	// machine credential: its scopes.
	Require Requirements
	// Accepts lists the credential kinds accepted (AuthenticateAny). Nil or
	// empty: session tokens only. A credential of another kind is 401
	// token-type-not-accepted, with no Backend API call.
	Accepts []TokenType
}

// DefaultPolicy is the policy from the Gate's Config.
func (g *Gate) DefaultPolicy() Policy {
	return Policy{AllowPending: g.allowPending, Sessions: g.sessions}
}

// VerifyWith is Verify with an explicit policy.
func (g *Gate) VerifyWith(ctx context.Context, token string, p Policy) (*Claims, error) {
	if token == "" {
		return nil, reject(ReasonSessionTokenMissing, "no session token was presented")
	}
	c, e := g.verifyToken(ctx, token)
	if e != nil {
		return nil, e
	}
	if err := g.applyPolicy(ctx, c, p); err != nil {
		return nil, err
	}
	return c, nil
}

func (g *Gate) applyPolicy(ctx context.Context, c *Claims, p Policy) error {
	if c.SessionStatus == "pending" && !p.AllowPending {
		return reject(ReasonSessionPending, "the session is pending: it has tasks to complete before it is active")
	}
	if p.Sessions != nil {
		if err := p.Sessions.CheckSession(ctx, c); err != nil {
			var e *Error
			if errors.As(err, &e) {
				return e
			}
			return rejectErr(ReasonSessionStatusUnavailable, "the session status could not be checked", err)
		}
	}
	if e := p.Require.Check(c); e != nil {
		return e
	}
	return nil
}

// verifyToken is steps 2–5 for a session token: cache, parse, key,
// signature, claims. A token of another kind (a machine JWT) is refused.
func (g *Gate) verifyToken(ctx context.Context, token string) (*Claims, *Error) {
	now := g.now()
	c, ck, hit, e := g.cachedSession(token, now)
	if hit || e != nil {
		return c, e
	}
	p, e := parseToken(token)
	if e != nil {
		return nil, g.rejected(ctx, e, "", nil)
	}
	if p.kind != kindSession {
		return nil, g.rejected(ctx, p.notSession(), p.header.kid, nil)
	}
	return g.finishSession(ctx, p, ck, now)
}

// cachedSession looks token up in the verified-token cache. hit means c is
// the answer (or e, for a cached token that has expired since); otherwise ck
// is the key finishSession caches the token under.
func (g *Gate) cachedSession(token string, now time.Time) (c *Claims, ck cacheKey, hit bool, e *Error) {
	if g.cache == nil {
		return nil, ck, false, nil
	}
	ck = g.cache.keyOf(token)
	// get drops an entry whose key has been retired: a miss.
	if c, ok := g.cache.get(ck); ok {
		g.hits.add(ck)
		if e := g.checkTimes(c, now); e != nil {
			if e.Reason == ReasonTokenExpired {
				g.cache.remove(ck)
			}
			return nil, ck, true, e
		}
		return c, ck, true, nil
	}
	g.misses.add(ck)
	return nil, ck, false, nil
}

// finishSession verifies a parsed session token (steps 3–5 after parsing)
// and caches it under ck.
func (g *Gate) finishSession(ctx context.Context, p *parsedToken, ck cacheKey, now time.Time) (*Claims, *Error) {
	h := &p.header
	if e := g.checkHeader(ctx, h, "session token"); e != nil {
		return nil, e
	}
	// Every claim check runs before the key lookup, which is the only step
	// that can cause a network fetch (an unknown kid): a token with bad claims
	// never costs a JWKS request.
	if e := g.checkClaims(p.claims, now); e != nil {
		return nil, g.rejected(ctx, e, h.kid, &p.claims.Claims)
	}
	key, e := g.checkSignature(ctx, p, "session token", &p.claims.Claims)
	if e != nil {
		return nil, e
	}
	// Only now, with the payload known to be Clerk's: what a forged token
	// could make expensive is expanded after the signature check.
	if err := p.claims.expandPermissions(); err != nil {
		return nil, g.rejected(ctx, rejectErr(ReasonTokenInvalid, "the session token grants more organization permissions than sessiongate accepts", err), h.kid, &p.claims.Claims)
	}

	c := new(Claims)
	g.compact(c, &p.claims.Claims)
	if g.cache != nil {
		g.cache.add(ck, key, c)
	}
	return c, nil
}

// checkHeader is the header step every JWT the Gate verifies shares: the
// algorithm allowlist and a kid. what names the token in messages.
func (g *Gate) checkHeader(ctx context.Context, h *header, what string) *Error {
	if !g.algAllowed(h.alg) {
		return g.rejected(ctx, reject(ReasonTokenInvalidAlgorithm, "the "+what+" algorithm "+sanitize(h.alg)+" is not allowed"), h.kid, nil)
	}
	if !h.hasKid || h.kid == "" {
		return g.rejected(ctx, reject(ReasonTokenInvalid, "the "+what+" has no kid header"), "", nil)
	}
	return nil
}

// checkSignature is the key step every JWT the Gate verifies shares: the
// key of the kid (the only step that may fetch), the algorithm pinned to
// the key, and the signature. c, when known, is logged with a rejection.
func (g *Gate) checkSignature(ctx context.Context, p *parsedToken, what string, c *Claims) (*jwks.Key, *Error) {
	h := &p.header
	key, err := g.keys.Key(ctx, h.kid)
	if err != nil {
		var e *Error
		switch {
		case errors.Is(err, jwks.ErrKeyNotFound):
			e = rejectErr(ReasonKidMismatch, "the "+what+" was signed by an unknown key", err)
		default:
			e = rejectErr(ReasonKeysUnavailable, "no signing keys are available to verify the "+what, err)
		}
		return nil, g.rejected(ctx, e, h.kid, c)
	}
	if key.Algorithm != h.alg {
		return nil, g.rejected(ctx, reject(ReasonTokenInvalidAlgorithm, "the "+what+" algorithm does not match its key"), h.kid, c)
	}
	if err := verifySignature(key, p.signingInput, p.signature); err != nil {
		return nil, g.rejected(ctx, rejectErr(ReasonTokenInvalidSignature, "the "+what+" signature is invalid", err), h.kid, c)
	}
	return key, nil
}

func (g *Gate) algAllowed(alg string) bool {
	for _, a := range g.algs {
		if a != "" && a == alg {
			return true
		}
	}
	return false
}

// checkClaims runs every claim check that needs no key, in the order of
// docs/reason-codes.md ("Order of checks").
func (g *Gate) checkClaims(c *rawClaims, now time.Time) *Error {
	if !c.hasExp {
		return reject(ReasonTokenInvalid, "the session token has no exp claim")
	}
	if e := g.checkTimes(&c.Claims, now); e != nil {
		return e
	}
	if c.Issuer != g.issuer {
		return reject(ReasonTokenInvalidIssuer, "the session token was issued by another instance")
	}
	if c.Subject == "" {
		return reject(ReasonTokenInvalid, "the session token has no sub claim")
	}
	if !strings.HasPrefix(c.Subject, "user_") || len(c.Subject) == len("user_") {
		return reject(ReasonTokenTypeMismatch, "the token subject is not a user")
	}
	if !clerkwire.ValidSessionID(c.SessionID) {
		return reject(ReasonTokenTypeMismatch, "the token has no session id: it is not a session token")
	}
	if g.parties != nil {
		if c.AuthorizedParty == "" {
			return reject(ReasonTokenInvalidParties, "the session token has no azp claim")
		}
		if _, ok := g.parties[c.AuthorizedParty]; !ok {
			return reject(ReasonTokenInvalidParties, "the session token was minted for another origin")
		}
	}
	switch {
	case !c.hasSts, c.SessionStatus == "active", c.SessionStatus == "pending":
	default:
		// Clerk only emits active and pending; an unknown status fails closed.
		return reject(ReasonTokenInvalid, "the session token has an unknown session status")
	}
	return nil
}

// checkTimes applies exp, nbf and iat with the skew: the token is valid
// while now < exp+skew, nbf-skew <= now and iat-skew <= now. It runs on
// every verification, cache hits included. A zero NotBefore or IssuedAt
// means the claim was absent (year 1 is in the past anyway).
func (g *Gate) checkTimes(c *Claims, now time.Time) *Error {
	if !now.Before(c.Expiry.Add(g.skew)) {
		return reject(ReasonTokenExpired, "the session token has expired")
	}
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-g.skew)) {
		return reject(ReasonTokenNotActiveYet, "the session token is not valid yet")
	}
	if !c.IssuedAt.IsZero() && now.Before(c.IssuedAt.Add(-g.skew)) {
		return reject(ReasonTokenIatInTheFuture, "the session token was issued in the future")
	}
	return nil
}

// verifySignature checks an RSASSA-PKCS1-v1_5 signature with crypto/rsa.
//
// Why not jwx here: jwx's RSA verifier is this same hash + VerifyPKCS1v15
// behind an interface conversion and a re-parse of the compact form; the
// token is already split and decoded once above, and the project keeps every
// jwx import in one adapter file (jwks/jwx.go). Strictness is unchanged: the
// key's algorithm was pinned by the caller and the signature length must
// equal the modulus length.
func verifySignature(key *jwks.Key, signingInput, sig []byte) error {
	var h crypto.Hash
	switch key.Algorithm {
	case jwks.RS256:
		h = crypto.SHA256
	case jwks.RS384:
		h = crypto.SHA384
	case jwks.RS512:
		h = crypto.SHA512
	default:
		return errors.New("unsupported key algorithm")
	}
	if len(sig) != key.Public.Size() {
		return rsa.ErrVerification
	}
	hasher := h.New()
	hasher.Write(signingInput)
	var sum [64]byte
	return rsa.VerifyPKCS1v15(key.Public, h, hasher.Sum(sum[:0]), sig)
}

// rejected logs a rejection at debug level. Never the token: only the
// reason, a bounded kid and, when the claims were decoded, sub and sid;
// and the request id of ctx (internal/logctx).
func (g *Gate) rejected(ctx context.Context, e *Error, kid string, c *Claims) *Error {
	if ce := g.log.Check(zap.DebugLevel, "session token rejected"); ce != nil {
		fields := []zap.Field{zap.String("reason", string(e.Reason))}
		if kid != "" {
			fields = append(fields, zap.String("kid", sanitize(kid)))
		}
		if c != nil && c.Subject != "" {
			fields = append(fields, zap.String("sub", sanitize(c.Subject)), zap.String("sid", sanitize(c.SessionID)))
		}
		ce.Write(append(fields, logctx.Field(ctx))...)
	}
	return e
}
