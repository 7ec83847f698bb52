package handshake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/middleware"
)

// Cookie names of Clerk's browser SDK and Frontend API: "__session",
// "__client_uat", "__refresh", "__clerk_db_jwt", "__clerk_handshake",
// "__clerk_handshake_nonce" and "__clerk_redirect_count".
const (
	SessionCookie        = clerkwire.SessionCookie
	ClientUATCookie      = clerkwire.ClientUATCookie
	RefreshCookie        = clerkwire.RefreshCookie
	DevBrowserCookie     = clerkwire.DevBrowserCookie
	HandshakeCookie      = clerkwire.HandshakeCookie
	HandshakeNonceCookie = clerkwire.HandshakeNonceCookie
	RedirectCountCookie  = "__clerk_redirect_count"
)

// HandshakePath is the Frontend API endpoint the redirect goes to, relative
// to the handshake base URL.
const HandshakePath = "/v1/client/handshake"

// APIVersion is the Clerk API version sessiongate implements
// ("2026-05-12", clerkapi.DefaultAPIVersion); it is sent as
// __clerk_api_version on the redirect.
const APIVersion = clerkwire.APIVersion

// MaxRedirects is the redirect-loop guard: with __clerk_redirect_count at
// this value the request ends signed-out instead of redirecting again.
const MaxRedirects = 3

// DefaultExchangeTimeout bounds the Backend API nonce exchange.
const DefaultExchangeTimeout = 5 * time.Second

// Clerk's reason strings (x-clerk-auth-reason, __clerk_hs_reason).
const (
	ReasonSessionTokenAndUATMissing      = "session-token-and-uat-missing"
	ReasonSessionTokenButNoClientUAT     = "session-token-but-no-client-uat"
	ReasonClientUATButNoSessionToken     = "client-uat-but-no-session-token"
	ReasonSessionTokenIATBeforeClientUAT = "session-token-iat-before-client-uat"
	ReasonSessionTokenExpired            = "session-token-expired"
	ReasonSessionTokenNBF                = "session-token-nbf"
	ReasonSessionTokenIATInTheFuture     = "session-token-iat-in-the-future"
	ReasonSessionTokenMissing            = "session-token-missing"
)

// Clerk's refresh-error suffixes of session-token-expired-refresh-<x> for
// requests not eligible for the __refresh flow (refresh.go has the others).
const (
	refreshNonEligibleNonGet   = "non-eligible-non-get"
	refreshNonEligibleNoCookie = "non-eligible-no-refresh-cookie"
)

// Exchanger fetches the directives Clerk stored under a handshake nonce:
// Backend API GET /v1/clients/handshake_payload?nonce=…. *clerkapi.Client
// implements it.
type Exchanger interface {
	// GetHandshakePayload returns the Set-Cookie directives stored under
	// nonce as Clerk has them; the Handshaker filters them and verifies
	// the session token among them.
	GetHandshakePayload(ctx context.Context, nonce string) ([]string, error)
}

// ExchangerFunc adapts a function to Exchanger.
type ExchangerFunc func(ctx context.Context, nonce string) ([]string, error)

// GetHandshakePayload calls f.
func (f ExchangerFunc) GetHandshakePayload(ctx context.Context, nonce string) ([]string, error) {
	return f(ctx, nonce)
}

// Config configures a Handshaker.
type Config struct {
	// Gate verifies session tokens and the handshake JWT (VerifyJWS).
	// Required.
	Gate *middleware.Gate
	// FrontendAPI is the instance's Frontend API host from the publishable
	// key ("clerk.example.com"), without scheme. Required. A session cookie
	// whose iss is another host belongs to another app on the same domain
	// (Clerk's suffixed-cookie rule 2).
	FrontendAPI string
	// CookieSuffix is the publishable key's cookie suffix ("__session_<x>").
	// Required.
	CookieSuffix string
	// Production is true for a production instance (a pk_live_ key), false
	// for a development one (pk_test_), which runs Clerk's dev-browser flow
	// (dev.go): the __clerk_db_jwt token, payloads read from the URL too, a
	// redirect to the cleaned URL once a payload is applied, and a 500 for
	// a payload that fails verification.
	Production bool
	// GateAt builds a Gate like Gate (same issuer, keys, parties and
	// algorithms, no token cache) whose clock stands at now. It verifies an
	// expired session token, but for its times, before a refresh is asked
	// for it (refresh.go); and on a development instance a returning
	// handshake whose new session token fails as expired or not yet valid
	// is verified again with it, at the instant of the token's validity
	// nearest to the real time if that is within a day (Clerk's one-day
	// clock-skew retry). Nil: neither.
	GateAt func(now time.Time) (*middleware.Gate, error)
	// Refresher renews an expired session through the browser's
	// __refresh_<suffix> cookie without a redirect, as Clerk's SDK tries
	// before a handshake (refresh.go); it needs GateAt. The calls share the
	// nonce exchanges' budget and ExchangeTimeout. Nil: no refresh (the
	// handshake reason says missing-api-client).
	Refresher Refresher
	// BaseURL is where the redirect goes: clerk.proxy_url, or empty for
	// "https://" + FrontendAPI. A path prefix is kept
	// (https://app.example.com/__clerk/v1/client/handshake). A path alone
	// ("/__clerk") is resolved per request against the page's public
	// origin, as Clerk's SDK resolves a relative proxyUrl.
	BaseURL string
	// Satellite marks an application on a satellite domain (Clerk's
	// isSatellite): its navigations without Clerk cookies sync the session
	// of the primary domain (satellite.go). With a production instance
	// BaseURL is then the satellite's own Frontend API
	// (https://clerk.<domain>) or its proxy URL.
	Satellite bool
	// SatelliteAutoSync syncs a satellite's first navigation without Clerk
	// cookies; false (Clerk's default) leaves it signed out until the
	// browser comes back from signing in with __clerk_synced=false.
	SatelliteAutoSync bool
	// SignInURL is Clerk's signInUrl: the primary domain's sign-in page,
	// an absolute URL on another origin. A development satellite syncs by
	// sending the browser there (with __clerk_redirect_url); required for
	// a development satellite, unused otherwise.
	SignInURL string
	// SyncOrigins are the origins (scheme://host[:port]) a development
	// primary sends a satellite's sync request back to, with its
	// dev-browser token (__clerk_redirect_url). Clerk's SDK sends it to
	// any URL; an origin not listed is ignored. Empty: never.
	SyncOrigins []string
	// CrossOriginSync runs Clerk's primary-domain-cross-origin-sync on a
	// primary domain: a signed-in document navigation whose Referer is
	// another origin, and not Clerk's own, takes one handshake so a session
	// ended on a satellite is noticed. Ignored on a satellite.
	CrossOriginSync bool
	// Exchanger exchanges nonces. Nil: a nonce payload gives no directives
	// (the request ends signed-out), as when Clerk's Backend API fails.
	Exchanger Exchanger
	// ExchangeTimeout bounds one exchange. Zero: DefaultExchangeTimeout.
	ExchangeTimeout time.Duration
	// NonceRate is the most nonce exchanges per second, sustained, over
	// all requests: the cap on what nonces cost the Backend API. An
	// exchange over a limit (this one or a client's) is not attempted: the
	// request is signed-out with session-status-unavailable (503 with
	// Retry-After) and its nonce cookie is kept, for the browser to retry.
	// Zero: DefaultNonceRate.
	NonceRate float64
	// NonceBurst is how many exchanges may run back to back before
	// NonceRate applies. Half of it is a reserve that only a client within
	// its own budget may spend. Zero: DefaultNonceBurst.
	NonceBurst int
	// NonceClientRate and NonceClientBurst are each client's own budget
	// (clients told apart by ClientKey). A client within it may spend any
	// of the process's exchanges; a client over it only those above the
	// reserve, so that no single client can use up what other clients'
	// returning handshakes need. NonceClientRate is the exchanges per
	// second, sustained. Zero: DefaultNonceClientRate.
	NonceClientRate float64
	// NonceClientBurst is how many exchanges one client may run back to
	// back before NonceClientRate applies. Zero: DefaultNonceClientBurst.
	NonceClientBurst int
	// ClientKey names the client r comes from, for its budget; it is
	// called only for a request about to start an exchange. Every distinct
	// key is a fresh budget, so it MUST NOT return anything a client picks
	// freely, such as a forwarding header from a peer nobody trusts.
	// Keys are cut to 64 bytes and the 4,096 most recent are remembered.
	// Nil: the IP address of r.RemoteAddr. sessiongate sets it to
	// proxy.ClientKey(proxy.ClientAddr(r, trusted_proxies)).
	ClientKey func(r *http.Request) string
	// NonceFailureTTL is how long a nonce whose exchange failed is refused
	// without another call. Zero: DefaultNonceFailureTTL.
	NonceFailureTTL time.Duration
	// CookieDomain, when set, is the Domain of sessiongate's own cookie
	// deletions (a consumed nonce, a rejected handshake token), sent besides
	// the host-only deletion: Clerk's Frontend API sets those cookies on the
	// registrable domain.
	CookieDomain string
	// Logger receives failed resolutions and redirect loops (never a token
	// or a cookie value). Nil: zap.NewNop().
	Logger *zap.Logger
	// Now is the clock of the nonce limits (the Gate has its own for
	// tokens). Nil: time.Now.
	Now func() time.Time
}

// Handshaker runs the cookie path for one Clerk instance. It is safe for
// concurrent use.
type Handshaker struct {
	gate         *middleware.Gate
	fapi         string
	suffix       string
	base         string // no trailing slash; a path alone ("/__clerk") when relative
	relative     bool   // base is a path, resolved against each request's public origin
	nonces       *nonces
	cookieDomain string
	log          *zap.Logger
	now          func() time.Time

	production bool
	gateAt     func(time.Time) (*middleware.Gate, error)
	refresher  Refresher   // refresh.go
	multi      multiDomain // satellite.go
}

// New validates cfg and builds a Handshaker.
func New(cfg Config) (*Handshaker, error) {
	if cfg.Gate == nil {
		return nil, errors.New("handshake: Config.Gate is required")
	}
	if cfg.FrontendAPI == "" || strings.ContainsAny(cfg.FrontendAPI, "/?#@ \t\r\n") {
		return nil, fmt.Errorf("handshake: Config.FrontendAPI %q is not a host", cfg.FrontendAPI)
	}
	if len(cfg.CookieSuffix) != 8 || !netutil.IsToken(cfg.CookieSuffix) {
		return nil, fmt.Errorf("handshake: Config.CookieSuffix %q is not 8 cookie-name characters", cfg.CookieSuffix)
	}
	h := &Handshaker{
		gate:         cfg.Gate,
		fapi:         cfg.FrontendAPI,
		suffix:       cfg.CookieSuffix,
		cookieDomain: strings.TrimPrefix(cfg.CookieDomain, "."),
		log:          cfg.Logger,
		now:          cfg.Now,
		production:   cfg.Production,
		gateAt:       cfg.GateAt,
		refresher:    cfg.Refresher,
	}
	if h.now == nil {
		h.now = time.Now
	}
	base := cfg.BaseURL
	if base == "" {
		base = "https://" + cfg.FrontendAPI
	}
	var err error
	if h.base, h.relative, err = parseBase(base); err != nil {
		return nil, err
	}
	if h.multi, err = newMultiDomain(cfg); err != nil {
		return nil, err
	}
	if h.cookieDomain != "" && (!validDomain(h.cookieDomain)) {
		return nil, fmt.Errorf("handshake: Config.CookieDomain %q is not a domain name", cfg.CookieDomain)
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.nonces, err = newNonces(cfg, h.log); err != nil {
		return nil, err
	}
	return h, nil
}

func newNonces(cfg Config, log *zap.Logger) (*nonces, error) {
	if cfg.NonceRate < 0 || cfg.NonceBurst < 0 || cfg.NonceClientRate < 0 || cfg.NonceClientBurst < 0 || cfg.NonceFailureTTL < 0 {
		return nil, errors.New("handshake: Config.NonceRate, NonceBurst, NonceClientRate, NonceClientBurst and NonceFailureTTL must not be negative")
	}
	failed, err := lru.New[string, time.Time](nonceFailureCacheSize)
	if err != nil {
		return nil, err
	}
	n := &nonces{
		x:         cfg.Exchanger,
		timeout:   cfg.ExchangeTimeout,
		ttl:       cmp.Or(cfg.NonceFailureTTL, DefaultNonceFailureTTL),
		now:       cfg.Now,
		log:       log,
		clientKey: cfg.ClientKey,
		failed:    failed,
		limit: newLimiter(cmp.Or(cfg.NonceRate, DefaultNonceRate), cmp.Or(cfg.NonceBurst, DefaultNonceBurst),
			cmp.Or(cfg.NonceClientRate, DefaultNonceClientRate), cmp.Or(cfg.NonceClientBurst, DefaultNonceClientBurst)),
	}
	if n.timeout <= 0 {
		n.timeout = DefaultExchangeTimeout
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.clientKey == nil {
		n.clientKey = peerIP
	}
	return n, nil
}

// NonceStats returns the counters of nonce exchanges, for metrics.
func (h *Handshaker) NonceStats() NonceStats {
	n := h.nonces
	return NonceStats{
		Exchanges: n.exchanges.Load(), ExchangeFailures: n.exchangeFailures.Load(),
		CachedFailures: n.cachedFailures.Load(), RateLimited: n.rateLimited.Load(), RateLimitedClient: n.rateLimitedClient.Load(),
		Ignored:   n.ignored.Load(),
		Refreshes: n.refreshes.Load(), RefreshFailures: n.refreshFailures.Load(), RefreshRateLimited: n.refreshLimited.Load(),
	}
}

// Status is the kind of an Outcome.
type Status int

// Outcome kinds.
const (
	// SignedIn: Claims are verified; serve the request with them.
	SignedIn Status = iota + 1
	// SignedOut: Err says why; apply the route's policy (401, the sign-in
	// redirect, or anonymous on an optional route).
	SignedOut
	// Redirect: answer 307 to Location (the handshake); see WriteRedirect.
	Redirect
	// Failed: a development instance's handshake payload failed
	// verification; answer 500 with Err's message (Clerk's SDK throws: the
	// payload comes from the URL there, so a bad one means switched keys,
	// not another app's cookie) and the cookies.
	Failed
)

// String names the status as logs and metrics label it: "signed-in",
// "signed-out", "handshake" (Redirect) or "failed".
func (s Status) String() string {
	switch s {
	case SignedIn:
		return "signed-in"
	case SignedOut:
		return "signed-out"
	case Redirect:
		return "handshake"
	case Failed:
		return "failed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Outcome is the decision for one request.
type Outcome struct {
	// Status is the decision: SignedIn, SignedOut, Redirect or Failed.
	Status Status
	// Claims of a SignedIn outcome.
	Claims *middleware.Claims
	// Err of a SignedOut outcome: a *middleware.Error with a sessiongate
	// reason (docs/reason-codes.md); Clerk's own reason is in its message.
	Err *middleware.Error
	// ClerkReason is Clerk's reason string for SignedOut and Redirect
	// (x-clerk-auth-reason of the redirect, __clerk_hs_reason).
	ClerkReason string
	// Location of a Redirect.
	Location string
	// SetCookie lists Set-Cookie values for the response, in order: the
	// handshake's directives, sessiongate's own deletions and, on a
	// Redirect, the loop counter.
	SetCookie []string
	// NoStore: the response must carry Cache-Control: no-store (it sets
	// cookies, or it is a redirect).
	NoStore bool
	// Resolution is set on the Redirect that ends a development handshake
	// (back to the page itself, its payload applied): SignedIn or
	// SignedOut, sent as X-Clerk-Auth-Status. Zero on redirects to Clerk.
	Resolution Status
}

// AddCookies appends o.SetCookie to h, each as its own Set-Cookie header,
// and sets Cache-Control: no-store when o.NoStore.
func (o *Outcome) AddCookies(h http.Header) {
	for _, c := range o.SetCookie {
		h.Add("Set-Cookie", c)
	}
	if o.NoStore {
		h.Set("Cache-Control", "no-store")
	}
}

// WriteRedirect writes a Redirect outcome: 307, Location, Cache-Control:
// no-store, the cookies, X-Clerk-Auth-Status (handshake, or the
// Resolution) and X-Clerk-Auth-Reason, and an empty body.
func (o *Outcome) WriteRedirect(w http.ResponseWriter) {
	h := w.Header()
	o.AddCookies(h)
	h.Set("Location", o.Location)
	h.Set("Cache-Control", "no-store")
	status := "handshake"
	if o.Resolution != 0 {
		status = o.Resolution.String()
	}
	h.Set("X-Clerk-Auth-Status", status)
	if o.ClerkReason != "" {
		h.Set("X-Clerk-Auth-Reason", o.ClerkReason)
	}
	h.Del("Content-Type")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// Authenticate decides r (a request without an Authorization Bearer token)
// under policy p. publicURL returns the URL the browser asked for, as seen
// from outside (the redirect_url); it is called at most once, for a
// redirect or to compare a Referer's origin with the page's.
// mayRedirect false (forward-auth) turns every redirect into signed-out.
// It never panics on client input and never returns nil.
func (h *Handshaker) Authenticate(r *http.Request, p middleware.Policy, publicURL func() string, mayRedirect bool) *Outcome {
	rq := &request{h: h, r: r, policy: p, publicURL: publicURL, mayRedirect: mayRedirect}
	return rq.run()
}

// request is one Authenticate call.
type request struct {
	h           *Handshaker
	r           *http.Request
	policy      middleware.Policy
	publicURL   func() string
	mayRedirect bool

	suffixed  bool
	session   string // the chosen session cookie
	clientUAT int64  // the chosen __client_uat, 0 when absent or garbage
	cleanup   []string

	query     url.Values // r's query, parsed on first use (queryValues)
	publicURI string     // publicURL(), computed on first use (public)
}

func (q *request) run() *Outcome {
	r := q.r
	// 1. Read state. Handshake token and nonce: cookies only in production
	// (a deviation: see docs/browser-sessions.md), the URL first in
	// development, where Clerk's Frontend API returns them there.
	hsToken := cookie(r, HandshakeCookie)
	hsNonce := cookie(r, HandshakeNonceCookie)
	if !q.h.production {
		hsToken, hsNonce = q.devPayload(hsToken, hsNonce)
	}
	if hsNonce != "" && !middleware.IsBrowserNavigation(r) {
		// The return trip of a handshake is the navigation that started it
		// (FAPI's 307 keeps the method and Sec-Fetch-Dest). Anything else
		// with a nonce would only buy a Backend API call: decide it as if
		// the cookie were absent, and leave the cookie to the navigation.
		q.h.nonces.ignored.Add(1)
		hsNonce = ""
	}

	// 2. Resolve a returning handshake.
	if hsToken != "" || hsNonce != "" {
		if o := q.resolve(hsToken, hsNonce); o != nil {
			return o
		}
	}

	q.suffixed = q.h.usesSuffixedCookies(r)
	sessName, uatName := SessionCookie, ClientUATCookie
	if q.suffixed {
		sessName, uatName = q.h.suffixedName(SessionCookie), q.h.suffixedName(ClientUATCookie)
	}
	q.session = cookie(r, sessName)
	q.clientUAT = parseUAT(cookie(r, uatName))

	// 3. Satellite syncs and, in development, the dev-browser token.
	if o := q.multiDomain(); o != nil {
		return o
	}
	if !q.h.production {
		if o := q.devBrowser(); o != nil {
			return o
		}
	}

	// 4–6. Cookie combinations.
	switch {
	case q.clientUAT == 0 && q.session == "":
		return q.signedOut(middleware.ReasonSessionTokenMissing, "no session token was presented", ReasonSessionTokenAndUATMissing, nil)
	case q.clientUAT == 0:
		return q.maybeHandshake(ReasonSessionTokenButNoClientUAT,
			stale("the session cookie comes without __client_uat: the browser's Clerk client is signed out or unknown"))
	case q.session == "":
		return q.maybeHandshake(ReasonClientUATButNoSessionToken,
			&middleware.Error{Reason: middleware.ReasonSessionTokenMissing, Message: "__client_uat says signed in but there is no session cookie"})
	}

	// 7. The unverified token.
	ut, ok := decodeUnverified(q.session)
	if !ok {
		return q.signedOut(middleware.ReasonTokenInvalid, "the session token is malformed", "", nil)
	}
	if ut.machine() {
		return q.signedOut(middleware.ReasonTokenTypeMismatch, "the token is not a session token", "", nil)
	}
	if ut.hasIat && ut.iat < q.clientUAT {
		return q.maybeHandshake(ReasonSessionTokenIATBeforeClientUAT,
			stale("the session token is older than __client_uat: the session changed since it was issued"))
	}

	// 8. Full verification.
	claims, err := q.h.gate.VerifyWith(r.Context(), q.session, q.policy)
	if err == nil {
		if o := q.crossOriginSync(); o != nil {
			return o
		}
		return q.finish(&Outcome{Status: SignedIn, Claims: claims})
	}
	e := asError(err)
	switch e.Reason {
	case middleware.ReasonTokenExpired:
		// The __refresh flow first (refresh.go), then the handshake.
		o, refreshErr := q.refresh()
		if o != nil {
			return o
		}
		return q.maybeHandshake(ReasonSessionTokenExpired+"-refresh-"+refreshErr, e)
	case middleware.ReasonTokenNotActiveYet:
		return q.maybeHandshake(ReasonSessionTokenNBF, e)
	case middleware.ReasonTokenIatInTheFuture:
		return q.maybeHandshake(ReasonSessionTokenIATInTheFuture, e)
	}
	return q.finish(&Outcome{Status: SignedOut, Err: e})
}

// maybeHandshake is the cookie path's last step: a redirect to the Frontend
// API's handshake for an eligible navigation below the loop bound, else
// signed-out with fallback.
func (q *request) maybeHandshake(reason string, fallback *middleware.Error) *Outcome {
	return q.maybeRedirect(reason, fallback, "")
}

// maybeRedirect is maybeHandshake with another Location (a satellite's
// sync through the sign-in page, a primary's answer to it); "" is the
// Frontend API's handshake. The loop guard counts every one of them.
func (q *request) maybeRedirect(reason string, fallback *middleware.Error, location string) *Outcome {
	if !q.mayRedirect || !middleware.IsBrowserNavigation(q.r) {
		return q.signedOut("", "", reason, fallback)
	}
	count := redirectCount(q.r)
	if count >= MaxRedirects {
		msg := "Clerk handshake: redirect loop, ending signed-out (do the publishable key, the secret key and the Frontend API belong to the same instance?)"
		if reason == ReasonSatelliteNeedsSyncing {
			msg = "Clerk handshake: satellite sync redirect loop, ending signed-out (is this domain a satellite of the instance, and clerk.domain or clerk.proxy_url its Frontend API?)"
		}
		q.h.log.Warn(msg, zap.String("reason", reason), zap.Int("redirects", count), logctx.Field(q.r.Context()))
		return q.signedOut("", "", reason, fallback)
	}
	if location == "" {
		location = q.h.location(q.public(), reason, q.suffixed, q.session, q.devToken())
	}
	o := &Outcome{Status: Redirect, ClerkReason: reason, Location: location}
	o.SetCookie = append(o.SetCookie, RedirectCountCookie+"="+strconv.Itoa(count+1)+"; Path=/; Max-Age=2; HttpOnly; SameSite=Lax")
	return q.finish(o)
}

// signedOut builds a SignedOut outcome: fallback when given, else an Error
// of reason with msg. Clerk's reason, when given, goes into the message.
func (q *request) signedOut(reason middleware.Reason, msg, clerkReason string, fallback *middleware.Error) *Outcome {
	e := fallback
	if e == nil {
		e = &middleware.Error{Reason: reason, Message: msg}
	}
	if clerkReason != "" {
		e = &middleware.Error{Reason: e.Reason, Message: e.Message + " (Clerk: " + clerkReason + ")", Err: e.Err}
	}
	return q.finish(&Outcome{Status: SignedOut, Err: e, ClerkReason: clerkReason})
}

// finish appends sessiongate's own deletions and sets NoStore on any
// outcome that sets cookies or redirects.
func (q *request) finish(o *Outcome) *Outcome {
	if len(q.cleanup) > 0 {
		// Deletions first on a redirect: the counter cookie stays last.
		o.SetCookie = append(append([]string{}, q.cleanup...), o.SetCookie...)
	}
	if len(o.SetCookie) > 0 || o.Status == Redirect {
		o.NoStore = true
	}
	return o
}

func stale(msg string) *middleware.Error {
	return &middleware.Error{Reason: middleware.ReasonSessionTokenStale, Message: msg}
}

func asError(err error) *middleware.Error {
	var e *middleware.Error
	if errors.As(err, &e) {
		return e
	}
	return &middleware.Error{Reason: middleware.ReasonTokenInvalid, Message: "the session token could not be verified", Err: err}
}

// location builds the handshake URL as Clerk's buildRedirectToHandshake
// does. devBrowser is the dev-browser token of a development instance.
func (h *Handshaker) location(publicURL, reason string, suffixed bool, session, devBrowser string) string {
	q := url.Values{}
	q.Set("redirect_url", stripQueryParams(publicURL, DevBrowserCookie, legacyDevBrowserParam))
	q.Set("__clerk_api_version", APIVersion)
	q.Set("suffixed_cookies", strconv.FormatBool(suffixed))
	q.Set("__clerk_hs_reason", reason)
	q.Set("format", "nonce")
	if session != "" {
		q.Set(SessionCookie, session)
	}
	if !h.production && devBrowser != "" {
		q.Set(DevBrowserCookie, devBrowser)
	}
	return h.baseFor(publicURL) + HandshakePath + "?" + q.Encode()
}

// baseFor is the handshake base for a page: the configured one, or a
// relative one on the page's origin.
func (h *Handshaker) baseFor(publicURL string) string {
	if !h.relative {
		return h.base
	}
	return originOf(publicURL) + h.base
}

// parseBase checks Config.BaseURL: an absolute http(s) URL without query
// or fragment, or a clean path ("/__clerk"). The result has no trailing
// slash.
func parseBase(base string) (string, bool, error) {
	if strings.HasPrefix(base, "/") {
		p := strings.TrimRight(base, "/")
		if p == "" || strings.HasPrefix(base, "//") || strings.ContainsAny(p, "?#\\ \t\r\n") || path.Clean(p) != p {
			return "", false, fmt.Errorf("handshake: Config.BaseURL %q is not a clean path", base)
		}
		return p, true, nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false, fmt.Errorf("handshake: Config.BaseURL %q is not an http(s) URL without query or fragment", base)
	}
	return strings.TrimRight(base, "/"), false, nil
}

// originOf is scheme://host of an absolute URL ("" when it has none).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + u.Host
}

// public is the page's public URL, computed once per request.
func (q *request) public() string {
	if q.publicURI == "" {
		q.publicURI = q.publicURL()
	}
	return q.publicURI
}

// queryValues is r's query, parsed once (malformed pairs are skipped, as
// URLSearchParams skips nothing but decodes leniently: a parameter Clerk
// would see with a bad escape is simply absent here).
func (q *request) queryValues() url.Values {
	if q.query == nil {
		q.query, _ = url.ParseQuery(q.r.URL.RawQuery)
		if q.query == nil {
			q.query = url.Values{}
		}
	}
	return q.query
}

// stripQueryParams removes the named parameters from raw's query, keeping
// every other byte of it (Clerk's SDK re-serialises the whole query instead).
func stripQueryParams(raw string, names ...string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	frag := ""
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query, frag = query[:i], query[i:]
	}
	parts := strings.Split(query, "&")
	kept := parts[:0]
	for _, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		drop := false
		for _, x := range names {
			if name == x {
				drop = true
				break
			}
		}
		if !drop {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return base + frag
	}
	return base + "?" + strings.Join(kept, "&") + frag
}

// redirectCount reads __clerk_redirect_count as Clerk does (garbage is 0).
func redirectCount(r *http.Request) int {
	n, err := strconv.Atoi(cookie(r, RedirectCountCookie))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
