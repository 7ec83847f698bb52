package handshake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/middleware"
)

// Cookie names of Clerk's browser SDK and Frontend API.
const (
	SessionCookie        = "__session"
	ClientUATCookie      = "__client_uat"
	RefreshCookie        = "__refresh"
	DevBrowserCookie     = "__clerk_db_jwt"
	HandshakeCookie      = "__clerk_handshake"
	HandshakeNonceCookie = "__clerk_handshake_nonce"
	RedirectCountCookie  = "__clerk_redirect_count"
)

// HandshakePath is the Frontend API endpoint the redirect goes to, relative
// to the handshake base URL.
const HandshakePath = "/v1/client/handshake"

// APIVersion is the Clerk API version sessiongate implements; it is sent as
// __clerk_api_version on the redirect.
const APIVersion = "2026-05-12"

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

// Clerk's refresh-error suffixes of session-token-expired-refresh-<x>
// (sessiongate does not implement the __refresh flow).
const (
	refreshNonEligibleNonGet   = "non-eligible-non-get"
	refreshNonEligibleNoCookie = "non-eligible-no-refresh-cookie"
)

// Exchanger fetches the directives Clerk stored under a handshake nonce:
// Backend API GET /v1/clients/handshake_payload?nonce=…. *clerkapi.Client
// implements it.
type Exchanger interface {
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
	// Production must be true (a pk_live_ key): development instances need
	// the dev-browser flow, which is not implemented.
	Production bool
	// BaseURL is where the redirect goes: clerk.proxy_url, or empty for
	// "https://" + FrontendAPI. A path prefix is kept
	// (https://app.example.com/__clerk/v1/client/handshake).
	BaseURL string
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
	// returning handshakes need. Zero: DefaultNonceClientRate,
	// DefaultNonceClientBurst.
	NonceClientRate  float64
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

// Handshaker runs the cookie path for one Clerk production instance. It is
// safe for concurrent use.
type Handshaker struct {
	gate         *middleware.Gate
	fapi         string
	suffix       string
	base         string // no trailing slash
	nonces       *nonces
	cookieDomain string
	log          *zap.Logger
}

// New validates cfg and builds a Handshaker.
func New(cfg Config) (*Handshaker, error) {
	if cfg.Gate == nil {
		return nil, errors.New("handshake: Config.Gate is required")
	}
	if !cfg.Production {
		return nil, errors.New("handshake: development instances (pk_test_ keys) are not supported yet: their handshake needs Clerk's dev-browser flow")
	}
	if cfg.FrontendAPI == "" || strings.ContainsAny(cfg.FrontendAPI, "/?#@ \t\r\n") {
		return nil, fmt.Errorf("handshake: Config.FrontendAPI %q is not a host", cfg.FrontendAPI)
	}
	if len(cfg.CookieSuffix) != 8 || !validCookieName(cfg.CookieSuffix) {
		return nil, fmt.Errorf("handshake: Config.CookieSuffix %q is not 8 cookie-name characters", cfg.CookieSuffix)
	}
	h := &Handshaker{
		gate:         cfg.Gate,
		fapi:         cfg.FrontendAPI,
		suffix:       cfg.CookieSuffix,
		cookieDomain: strings.TrimPrefix(cfg.CookieDomain, "."),
		log:          cfg.Logger,
	}
	base := cfg.BaseURL
	if base == "" {
		base = "https://" + cfg.FrontendAPI
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("handshake: Config.BaseURL %q is not an http(s) URL without query or fragment", base)
	}
	h.base = strings.TrimRight(base, "/")
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
		Ignored: n.ignored.Load(),
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
)

func (s Status) String() string {
	switch s {
	case SignedIn:
		return "signed-in"
	case SignedOut:
		return "signed-out"
	case Redirect:
		return "handshake"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Outcome is the decision for one request.
type Outcome struct {
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
// no-store, the cookies, X-Clerk-Auth-Status: handshake and
// X-Clerk-Auth-Reason, and an empty body.
func (o *Outcome) WriteRedirect(w http.ResponseWriter) {
	h := w.Header()
	o.AddCookies(h)
	h.Set("Location", o.Location)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Clerk-Auth-Status", "handshake")
	h.Set("X-Clerk-Auth-Reason", o.ClerkReason)
	h.Del("Content-Type")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// Authenticate decides r (a request without an Authorization Bearer token)
// under policy p. publicURL returns the URL the browser asked for, as seen
// from outside (the redirect_url); it is called only for a redirect.
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
}

func (q *request) run() *Outcome {
	r := q.r
	// 1. Read state. Handshake token and nonce: cookies only (production).
	hsToken := cookie(r, HandshakeCookie)
	hsNonce := cookie(r, HandshakeNonceCookie)
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
		return q.finish(&Outcome{Status: SignedIn, Claims: claims})
	}
	e := asError(err)
	switch e.Reason {
	case middleware.ReasonTokenExpired:
		return q.maybeHandshake(q.expiredReason(), e)
	case middleware.ReasonTokenNotActiveYet:
		return q.maybeHandshake(ReasonSessionTokenNBF, e)
	case middleware.ReasonTokenIatInTheFuture:
		return q.maybeHandshake(ReasonSessionTokenIATInTheFuture, e)
	}
	return q.finish(&Outcome{Status: SignedOut, Err: e})
}

// expiredReason is Clerk's session-token-expired-refresh-<refresh error>.
// sessiongate never refreshes through __refresh_<suffix>; when that cookie is
// there on a GET (JS would try a refresh), the reason has no suffix.
func (q *request) expiredReason() string {
	switch {
	case q.r.Method != http.MethodGet:
		return ReasonSessionTokenExpired + "-refresh-" + refreshNonEligibleNonGet
	case cookie(q.r, q.h.suffixedName(RefreshCookie)) == "":
		return ReasonSessionTokenExpired + "-refresh-" + refreshNonEligibleNoCookie
	}
	return ReasonSessionTokenExpired
}

// maybeHandshake is the cookie path's last step: a redirect for an
// eligible navigation below the loop bound, else signed-out with fallback.
func (q *request) maybeHandshake(reason string, fallback *middleware.Error) *Outcome {
	if !q.mayRedirect || !middleware.IsBrowserNavigation(q.r) {
		return q.signedOut("", "", reason, fallback)
	}
	count := redirectCount(q.r)
	if count >= MaxRedirects {
		q.h.log.Warn("Clerk handshake: redirect loop, ending signed-out (do the publishable key, the secret key and the Frontend API belong to the same instance?)",
			zap.String("reason", reason), zap.Int("redirects", count))
		return q.signedOut("", "", reason, fallback)
	}
	o := &Outcome{Status: Redirect, ClerkReason: reason, Location: q.h.location(q.publicURL(), reason, q.suffixed, q.session)}
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

// location builds the handshake URL as Clerk's buildRedirectToHandshake does.
func (h *Handshaker) location(publicURL, reason string, suffixed bool, session string) string {
	q := url.Values{}
	q.Set("redirect_url", stripQueryParams(publicURL, DevBrowserCookie, "__dev_session"))
	q.Set("__clerk_api_version", APIVersion)
	q.Set("suffixed_cookies", strconv.FormatBool(suffixed))
	q.Set("__clerk_hs_reason", reason)
	q.Set("format", "nonce")
	if session != "" {
		q.Set("__session", session)
	}
	return h.base + HandshakePath + "?" + q.Encode()
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
