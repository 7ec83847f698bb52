package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/jsonresp"
	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/middleware"
)

// Reserved paths on the proxy listener (docs/configuration.md).
const (
	ReservedPrefix   = "/_sessiongate/"
	ForwardAuthPath  = "/_sessiongate/auth"
	WebhookClerkPath = "/_sessiongate/webhooks/clerk"
)

// DefaultHeaderPrefix is the prefix of identity headers.
const DefaultHeaderPrefix = "X-Sessiongate-"

// Event is what the proxy reports about each request, for metrics.
type Event struct {
	Route     string            // the route's Name; "" when no route matched
	Status    int               // the HTTP status answered to the client (499: the client went away)
	Reason    middleware.Reason // "" on success
	Duration  time.Duration     // the whole request
	Verify    time.Duration     // token verification (0 when not run)
	Upstream  time.Duration     // time in the upstream round trip (0 when not forwarded)
	UserID    string            // the verified subject (user, or a machine credential's subject); "" when none
	RequestID string            // the request's X-Request-Id, as sent upstream and answered
	// UpstreamError is the kind of a failed upstream round trip (see
	// UpstreamErrorKind): "" when the round trip did not fail.
	UpstreamError string
}

// Observer receives one Event per request. It must be fast and safe for
// concurrent use (a Prometheus adapter, for instance).
type Observer interface {
	// Observe is called once per request, after the response is written
	// and before the access-log line; ev is the request's outcome.
	Observe(ev Event)
}

// Options configures a Proxy.
type Options struct {
	// Gate verifies tokens. Required.
	Gate *middleware.Gate
	// Routes to serve. At least one.
	Routes []Route
	// HeaderPrefix is the identity header prefix. Empty means
	// DefaultHeaderPrefix. Every inbound header starting with it (case and
	// "_"/"-" insensitive) is deleted on every route.
	HeaderPrefix string
	// SignInURL, when set, is where browser navigations that end signed-out
	// on a required route are sent (307, with redirect_url).
	SignInURL *url.URL
	// PublicOrigin is the scheme://host browsers use; it builds redirect_url.
	// Nil: the request's own Host (and X-Forwarded-Host/Proto from
	// TrustedProxies).
	PublicOrigin *url.URL
	// TrustedProxies are the peers whose X-Forwarded-* headers are believed.
	TrustedProxies []netip.Prefix
	// Transport reaches the upstreams. Nil means NewTransport(TransportOptions{}).
	Transport http.RoundTripper
	// Webhooks, when set, serves POST /_sessiongate/webhooks/clerk.
	Webhooks http.Handler
	// Observer receives an Event per request. Nil: none.
	Observer Observer
	// Logger gets one access-log line per request (when AccessLog) and
	// upstream errors. Nil means zap.NewNop().
	Logger *zap.Logger
	// AccessLog enables the access-log line.
	AccessLog bool
	// AccessLogWriter, when set, receives the access-log lines instead of
	// Logger: the proxy encodes each line itself, with one Write per line,
	// about three times cheaper than through zap and without its
	// allocation. The line is byte for byte what a zap JSON core with
	// zap.NewProductionEncoderConfig, TimeKey "ts" and
	// zapcore.ISO8601TimeEncoder writes (the sessiongate binary's logger),
	// with Logger's name as "logger". Lines are written only while Logger is
	// enabled at info level, so a nil Logger (a no-op logger) writes none.
	// It must be safe for concurrent use and must not keep the slice it is
	// given (zap's WriteSyncers qualify). Write errors are dropped: the
	// writer reports its own (the binary's writes to stderr).
	AccessLogWriter io.Writer
	// ClaimHeaders maps upstream header names to claim paths ("X-User-Email":
	// "email", "X-Plan": "public_metadata.plan"), for every route; a route's
	// own Route.ClaimHeaders are added (its entry wins for a header both
	// name). Each mapped name is stripped from every inbound request, on
	// every route, in every spelling, like the identity headers. See
	// ValidateClaimHeader for the names refused.
	ClaimHeaders map[string]string
	// FrontendAPI, when set, serves Clerk's Frontend API under its Path
	// (clerk.proxy_url on the application's origin) by forwarding to Clerk
	// with the secret key (fapi.go). Its paths are never routed.
	FrontendAPI *FrontendAPI
	// SignInSync marks the sign-in redirect's redirect_url with
	// __clerk_synced=false, as Clerk's SDK does on a satellite domain: back
	// from the primary domain's sign-in page, the navigation syncs the new
	// session (handshake.SignInReturnURL).
	SignInSync bool
	// Connections tracks the WebSockets and streamed responses this proxy
	// passes through, to close them when their session is revoked, after
	// their maximum lifetime and at shutdown (conns.go). Share one between
	// the proxies of successive configurations. Nil: none is tracked.
	Connections *Connections
	// TracerProvider, when set, makes a server span per request that
	// continues the caller's trace (Propagator) and is passed upstream as
	// the parent of the upstream's: its attributes are the route, the
	// credential kind, the reason code, the status and the user id; never
	// a token, a cookie, a path or a query (tracing.go,
	// docs/deployment.md#tracing). Nil: tracing off, at no cost: no span,
	// and an inbound traceparent passes upstream untouched, as any other
	// header.
	TracerProvider trace.TracerProvider
	// Propagator reads the caller's trace context from the request headers
	// and writes the server span's into the upstream request (replacing
	// the inbound headers it names). Nil: W3C Trace Context (traceparent,
	// tracestate). Unused without TracerProvider.
	Propagator propagation.TextMapPropagator
}

// Proxy is the reverse proxy and forward-auth handler. It is an http.Handler.
type Proxy struct {
	gate      *middleware.Gate
	routes    []*route
	prefix    string // normalized: lower case, "_" → "-"
	names     identityNames
	signIn    *url.URL
	origin    *url.URL
	trusted   []netip.Prefix
	rp        *httputil.ReverseProxy
	webhooks  http.Handler
	obs       Observer
	log       *zap.Logger
	accessLog bool
	accessOut *accessWriter // nil: access lines through log (accesslog.go)
	ids       *idSource
	// mapped are the claim header names of every route, normalized (lower
	// case, "_" as "-"): stripped from every inbound request.
	mapped []string
	conns  *Connections // nil: long-lived connections are not tracked
	fapi   *fapiProxy   // nil: no Frontend API proxy (fapi.go)
	// signInSync: Options.SignInSync.
	signInSync bool
	// tracer is nil when tracing is off (tracing.go); prop and propFields
	// (its header names, canonical) are set with it.
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	propFields []string
}

// identityNames are the canonical names of the identity headers.
// identityHeaderCount is the number of identity headers (identityNames).
const identityHeaderCount = 13

type identityNames struct {
	userID, sessionID, orgID, orgSlug, orgRole, orgPermissions, actorID string
	tokenType, subject, machineID, tokenID, scopes, clientID            string
}

func (n *identityNames) all() []string {
	return []string{n.userID, n.sessionID, n.orgID, n.orgSlug, n.orgRole, n.orgPermissions, n.actorID,
		n.tokenType, n.subject, n.machineID, n.tokenID, n.scopes, n.clientID}
}

// newIdentityNames are the identity header names under prefix.
func newIdentityNames(prefix string) identityNames {
	canon := func(s string) string { return http.CanonicalHeaderKey(prefix + s) }
	return identityNames{
		userID: canon("User-Id"), sessionID: canon("Session-Id"), orgID: canon("Org-Id"),
		orgSlug: canon("Org-Slug"), orgRole: canon("Org-Role"), orgPermissions: canon("Org-Permissions"),
		actorID: canon("Actor-Id"), tokenType: canon("Token-Type"), subject: canon("Subject"),
		machineID: canon("Machine-Id"), tokenID: canon("Token-Id"), scopes: canon("Scopes"), clientID: canon("Client-Id"),
	}
}

// New validates opts and builds a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Gate == nil {
		return nil, errors.New("proxy: Options.Gate is required")
	}
	if len(opts.Routes) == 0 {
		return nil, errors.New("proxy: at least one route is required")
	}
	routes, err := compileRoutes(opts.Routes)
	if err != nil {
		return nil, err
	}
	prefix := opts.HeaderPrefix
	if prefix == "" {
		prefix = DefaultHeaderPrefix
	}
	if !netutil.IsToken(prefix) {
		return nil, fmt.Errorf("proxy: header prefix %q is not a valid header name", prefix)
	}
	mapped, err := claimHeaderNames(prefix, opts.ClaimHeaders, routes)
	if err != nil {
		return nil, err
	}
	for _, rt := range routes {
		rt.claims = compileClaimHeaders(opts.ClaimHeaders, rt.ClaimHeaders)
	}
	p := &Proxy{
		gate:      opts.Gate,
		routes:    routes,
		prefix:    normalizeHeader(prefix),
		signIn:    opts.SignInURL,
		origin:    opts.PublicOrigin,
		trusted:   opts.TrustedProxies,
		webhooks:  opts.Webhooks,
		obs:       opts.Observer,
		log:       opts.Logger,
		accessLog: opts.AccessLog,
		ids:       newIDSource(),
		mapped:    mapped,
		conns:     opts.Connections,
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if opts.AccessLogWriter != nil {
		p.accessOut = newAccessWriter(opts.AccessLogWriter, p.log.Name())
	}
	p.names = newIdentityNames(prefix)
	p.signInSync = opts.SignInSync
	p.setupTracing(opts.TracerProvider, opts.Propagator) // tracing.go
	if opts.FrontendAPI != nil {
		if p.fapi, err = newFAPIProxy(opts.FrontendAPI, p.log.Named("frontend_api")); err != nil {
			return nil, err
		}
	}
	transport := opts.Transport
	if transport == nil {
		transport = NewTransport(TransportOptions{})
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		ErrorHandler:   p.upstreamError,
		ModifyResponse: p.onResponse, // modifyResponse, then long-lived connections (conns.go)
		ErrorLog:       reverseProxyLog(p.log),
		BufferPool:     newBufferPool(),
	}
	return p, nil
}

// reverseProxyLog is ReverseProxy's ErrorLog: debug lines under
// "reverseproxy". Its one line (an upstream failing mid-body) has no request
// id; forward writes the request's own (conns.go).
func reverseProxyLog(l *zap.Logger) *log.Logger {
	std, err := zap.NewStdLogAt(l.Named("reverseproxy"), zap.DebugLevel)
	if err != nil { // only for a level zap does not know
		return zap.NewStdLog(l.Named("reverseproxy"))
	}
	return std
}

// bufferPool recycles ReverseProxy's body-copy buffers. Without it every
// request allocates 32 KiB, and at sidecar rates the garbage collector, not
// the proxying, becomes the cost.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	bp := &bufferPool{}
	bp.p.New = func() any { return new([32 << 10]byte) }
	return bp
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[32 << 10]byte)[:] }
func (bp *bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		bp.p.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

// TransportOptions tunes NewTransport.
type TransportOptions struct {
	// DialTimeout bounds connecting to an upstream. Zero means 5 s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers. Zero
	// means 60 s.
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per upstream. Zero means 256
	// (Go's default of 2 makes a busy sidecar open a connection per request).
	MaxIdleConnsPerHost int
}

// NewTransport returns the upstream transport: keep-alive with a pool sized
// for sidecar traffic, bounded dial and header waits, and no proxy from the
// environment (an upstream is reached directly).
func NewTransport(o TransportOptions) *http.Transport {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout == 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 256
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4 * o.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	registerH2C(t) // h2c:// upstreams (h2c.go)
	return t
}

// state is carried through one request for the access log and metrics.
// It is one allocation per request for everything the proxy itself keeps:
// the status-recording writer, the backing array of the identity and
// request-id header values, and the context that carries the state to
// ReverseProxy's callbacks (state is that context: it answers stateKey and
// the request id's logctx.Key, and delegates every other lookup to the
// request's own context).
type state struct {
	// The incoming request's context (with tracing on, the server span's);
	// set by ServeHTTP before the state becomes the request's context.
	context.Context

	sw        statusWriter
	route     *route
	reason    middleware.Reason
	claims    *middleware.Claims
	machine   *middleware.MachineIdentity // set instead of claims for a machine credential
	machTok   string                      // the machine credential itself, for a long-lived connection's re-check
	verify    time.Duration
	upstream  time.Duration
	requestID string
	peerTrust bool
	noStore   bool // the handshake set cookies: the upstream answer gets Cache-Control: no-store
	// upstreamErr is the UpstreamErrorKind of a failed round trip.
	upstreamErr string

	// A tracked WebSocket or streamed response (conns.go); aborted: the
	// response was cut midway (ServeHTTP panics http.ErrAbortHandler again
	// after its access-log line).
	ll       *longLived
	upgraded *upgraded
	aborted  bool

	// upstreamAuth replaces the Authorization header sent upstream (a
	// template token), set on the outbound request in rewrite.
	upstreamAuth string
	// forwardedPath is the original request path of a forward-auth
	// decision, for the access log (the path only: a query string may hold
	// a token).
	forwardedPath string

	// vals backs the one-value slices of the headers this request sets
	// (X-Request-Id on the response, the identity headers), so that setting
	// them allocates nothing. Each header gets a full slice expression:
	// appending to one can never overwrite its neighbour.
	vals [1 + identityHeaderCount]string
}

type stateKey struct{}

// Value makes *state the context of the proxied request (see state).
func (s *state) Value(key any) any {
	switch key.(type) {
	case stateKey:
		return s
	case logctx.Key:
		return s.requestID
	}
	return s.Context.Value(key)
}

// stateOf returns the state serve attached to ctx, or nil.
func stateOf(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// ServeHTTP routes the request: reserved paths first, then the longest
// matching route.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &state{requestID: p.requestID(r)}
	st.peerTrust = p.trustedPeer(r)
	sw := &st.sw
	sw.ResponseWriter = w
	st.vals[0] = st.requestID
	sw.Header()["X-Request-Id"] = st.vals[0:1:1]

	// The state becomes the request's context (see state) where the
	// request is handed on: to verification, whose packages read the
	// request id there for their log lines (internal/logctx), and to
	// ReverseProxy, whose callbacks read the state itself. serve makes
	// that one copy of the request on each path that needs it.
	st.Context = r.Context()
	var span trace.Span
	if p.tracer != nil {
		span = p.startSpan(r, st) // st.Context becomes the span's
	}

	p.stripIdentity(r.Header)
	p.serve(sw, r, st)

	d := time.Since(start)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	ev := Event{Status: status, Reason: st.reason, Duration: d, Verify: st.verify, Upstream: st.upstream, RequestID: st.requestID,
		UpstreamError: st.upstreamErr}
	if st.route != nil {
		ev.Route = st.route.Name
	}
	if st.claims != nil {
		ev.UserID = st.claims.Subject
	} else if st.machine != nil {
		ev.UserID = st.machine.Subject
	}
	if p.obs != nil {
		p.obs.Observe(ev)
	}
	if p.accessLog && p.accessOut != nil {
		if p.log.Core().Enabled(zap.InfoLevel) {
			p.accessOut.write(&accessLine{method: r.Method, path: r.URL.Path, originalPath: st.forwardedPath, route: ev.Route,
				status: status, reason: string(ev.Reason), duration: d, userID: ev.UserID, requestID: st.requestID,
				traceID: traceID(span)})
		}
	} else if p.accessLog {
		if ce := p.log.Check(zap.InfoLevel, "request"); ce != nil {
			ce.Write(
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.String("original_path", st.forwardedPath), // forward-auth only
				zap.String("route", ev.Route),
				zap.Int("status", status),
				zap.String("reason", string(ev.Reason)),
				zap.Duration("duration", d),
				zap.String("user_id", ev.UserID),
				zap.String("request_id", st.requestID),
				traceField(span),
			)
		}
	}
	if span != nil {
		p.endSpan(span, r, st, ev)
	}
	if st.aborted {
		panic(http.ErrAbortHandler) // recovered by forward (conns.go): the server cuts the response
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, st *state) {
	if p.fapi != nil && p.fapi.matches(r.URL.Path) {
		p.serveFrontendAPI(w, r, st)
		return
	}
	if strings.HasPrefix(r.URL.Path, ReservedPrefix) {
		switch {
		case r.URL.Path == ForwardAuthPath:
			p.forwardAuth(w, r, st)
		case r.URL.Path == WebhookClerkPath && p.webhooks != nil:
			p.webhooks.ServeHTTP(w, r.WithContext(st))
		default:
			writeJSON(w, http.StatusNotFound, "not_found", "", "no such sessiongate endpoint")
		}
		return
	}
	rt, problem := p.route(r.URL.Path, r.Host)
	if problem != pathOK {
		p.refusePath(w, st, problem)
		return
	}
	if rt == nil {
		writeJSON(w, http.StatusNotFound, "not_found", "", "no route for this path")
		return
	}
	st.route = rt
	if rt.Upstream == nil {
		writeJSON(w, http.StatusNotFound, "not_found", "", "this route has no upstream: it only decides forward-auth requests ("+ForwardAuthPath+")")
		return
	}
	r = r.WithContext(st) // the one copy (ServeHTTP), through to the upstream
	if !p.authenticate(w, r, rt, st, false) {
		return
	}
	stripClerkCookies(r.Header, rt.ForwardToken)
	if !rt.ForwardToken {
		r.Header.Del("Authorization")
		stripSessionCookies(r.Header)
	}
	if rt.UpstreamToken != nil && st.claims != nil {
		tok, err := rt.UpstreamToken.UpstreamToken(r.Context(), st.claims)
		switch {
		case err == nil:
			st.upstreamAuth = "Bearer " + tok
		case rt.UpstreamTokenAllowOnError:
			r.Header.Del("Authorization")
		default:
			st.reason = middleware.ReasonSessionStatusUnavailable
			p.log.Warn("template token mint failed", zap.String("route", rt.Name), zap.String("request_id", st.requestID), zap.Error(err))
			p.gate.WriteError(w, &middleware.Error{Reason: middleware.ReasonSessionStatusUnavailable,
				Message: "the upstream token could not be minted", Err: err})
			return
		}
	}
	// The identity headers (and a template token) are set in rewrite, on
	// the outbound request: ReverseProxy removes the headers that the
	// client's Connection header names from the outbound request before
	// calling Rewrite, so nothing set there can be dropped that way.
	upstart := time.Now()
	p.forward(w, r, st) // rp.ServeHTTP, with long-lived connections (conns.go); r's context is st
	st.upstream = time.Since(upstart)
}

// authenticate applies the route policy. It writes the rejection and
// returns false when the request must stop.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request, rt *route, st *state, forwardAuth bool) bool {
	if rt.Auth == Public {
		return true
	}
	auth, redirected, err := p.verifyRequest(w, r, rt, st, forwardAuth)
	if redirected {
		return false
	}
	if err == nil {
		st.claims, st.machine = auth.Session, auth.Machine
		if auth.Machine != nil { // a substring of the header: no copy
			st.machTok, _, _ = middleware.ExtractToken(r)
		}
		return true
	}
	if rt.Auth == Optional {
		return true // anonymous
	}
	status, reason, _ := middleware.Outcome(err)
	st.reason = reason
	// A machine credential is never redirected to a sign-in page.
	if !forwardAuth && status == http.StatusUnauthorized && p.signIn != nil && middleware.IsBrowserNavigation(r) && !machineRequest(r) {
		p.redirectToSignIn(w, r, st)
		return false
	}
	p.gate.WriteError(w, err)
	return false
}

// redirectToSignIn sends a signed-out navigation to the sign-in page with
// redirect_url set to the page it asked for.
func (p *Proxy) redirectToSignIn(w http.ResponseWriter, r *http.Request, st *state) {
	target := *p.signIn
	q := target.Query()
	q.Set("redirect_url", p.signInReturnURL(r, st))
	target.RawQuery = q.Encode()
	h := w.Header()
	h.Set("Location", target.String())
	h.Set("Cache-Control", "no-store")
	h.Set("X-Clerk-Auth-Status", "signed-out")
	h.Set("X-Clerk-Auth-Reason", string(st.reason))
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// publicURL is the URL the browser asked for, as seen from outside.
func (p *Proxy) publicURL(r *http.Request, st *state) string {
	if p.origin != nil {
		return p.origin.Scheme + "://" + p.origin.Host + r.URL.RequestURI()
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if st.peerTrust {
		if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v == "http" || v == "https" {
			scheme = v
		}
		if v := firstValue(r.Header.Get("X-Forwarded-Host")); v != "" && validHost(v) {
			host = v
		}
	}
	return scheme + "://" + host + r.URL.RequestURI()
}

// Reasons of the requests the proxy refuses before authentication. They are
// sent like the Gate's reasons (JSON body and X-Clerk-Auth-Reason).
const (
	// ReasonPathNotClean: 400, the path has dot segments, empty segments, a
	// backslash or NUL (also in a forward-auth request's original URI).
	ReasonPathNotClean middleware.Reason = "path-not-clean"
	// ReasonPathAmbiguous: 400, the path has ';' segment parameters and
	// selects another route once they are removed.
	ReasonPathAmbiguous middleware.Reason = "path-ambiguous"
	// ReasonForwardedUntrusted: 403, a forward-auth request from a peer
	// that is neither loopback nor in TrustedProxies.
	ReasonForwardedUntrusted middleware.Reason = "forward-auth-untrusted-peer"
	// ReasonForwardedInvalid: 400, a forward-auth request without an
	// original URI, or with a malformed URI, method, host or proto.
	ReasonForwardedInvalid middleware.Reason = "forwarded-request-invalid"
	// ReasonForwardedConflict: 400, a forward-auth header sent twice, or two
	// headers for one thing (X-Forwarded-Uri and X-Original-URI, …) that
	// disagree.
	ReasonForwardedConflict middleware.Reason = "forwarded-headers-conflict"
)

// refusePath answers a path that route refused.
func (p *Proxy) refusePath(w http.ResponseWriter, st *state, problem pathProblem) {
	if problem == pathAmbiguous {
		st.reason = ReasonPathAmbiguous
		writeJSON(w, http.StatusBadRequest, "bad_request", st.reason,
			"the path has ';' parameters that change which route applies")
		return
	}
	st.reason = ReasonPathNotClean
	writeJSON(w, http.StatusBadRequest, "bad_request", st.reason,
		"the request path has dot segments, empty segments or backslashes")
}

// The headers a forward-auth request describes the original request with.
// Each pair names one thing two ways (Traefik and Caddy send X-Forwarded-*,
// nginx recipes X-Original-*); both may be present and then must agree.
var (
	forwardedURIHeaders    = [2]string{"X-Forwarded-Uri", "X-Original-Uri"}
	forwardedMethodHeaders = [2]string{"X-Forwarded-Method", "X-Original-Method"}
)

// forwardAuth answers nginx auth_request, Traefik ForwardAuth and Caddy
// forward_auth: 200 with the identity headers, or the rejection. The route
// is chosen from the original request's URI, method and host, which the
// front proxy sends in headers. Those headers are believed only from a peer
// that is loopback or in TrustedProxies (anyone else gets 403: a front proxy
// that is not trusted cannot be told apart from a client choosing the route
// it is judged by), they must each appear once, and two names for one thing
// must agree. A URI no route matches is decided as a required route with the
// Gate's default policy (fail closed). Forward-auth never redirects (nginx
// treats any status but 2xx, 401 and 403 as an error); see
// docs/deployment.md for sign-in pages.
func (p *Proxy) forwardAuth(w http.ResponseWriter, r *http.Request, st *state) {
	if !p.forwardAuthPeer(r) {
		st.reason = ReasonForwardedUntrusted
		p.log.Warn("forward-auth request from an untrusted peer; add the front proxy's address to trusted_proxies",
			zap.String("peer", r.RemoteAddr), zap.String("request_id", st.requestID))
		writeJSON(w, http.StatusForbidden, "forbidden", st.reason,
			"forward-auth requests are accepted only from loopback and trusted_proxies")
		return
	}
	orig, reason, msg := forwardedRequest(st, r)
	if reason != "" {
		st.reason = reason
		writeJSON(w, http.StatusBadRequest, "bad_request", reason, msg)
		return
	}
	st.forwardedPath = orig.URL.Path
	st.peerTrust = true // its X-Forwarded-Host/Proto build redirect_url
	rt, problem := p.route(orig.URL.Path, orig.Host)
	if problem != pathOK {
		p.refusePath(w, st, problem)
		return
	}
	if rt == nil {
		rt = &route{Route: Route{Auth: Required, Policy: p.gate.DefaultPolicy(), Name: "(forward-auth default)"}}
	}
	st.route = rt
	if !p.authenticate(w, orig, rt, st, true) {
		return
	}
	h := w.Header()
	p.setIdentity(h, st)
	if st.claims != nil && len(rt.claims) > 0 {
		p.setClaimHeaders(h, rt, st.claims)
	}
	h.Set("Cache-Control", "no-store")
	if st.claims != nil {
		h.Set("X-Clerk-Auth-Status", "signed-in")
	}
	w.WriteHeader(http.StatusOK)
}

// forwardAuthPeer reports whether r comes from a peer whose forward-auth
// headers are believed: loopback (the nginx and Caddy recipes run on the
// same host) or TrustedProxies.
func (p *Proxy) forwardAuthPeer(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.IsLoopback() {
		return true
	}
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// forwardedRequest is the original request that forward-auth request r
// describes: r's headers (the credentials) with the method, URL and host of
// the forwarding headers, and ctx as its context. A reason is returned when
// they are missing, repeated, malformed or disagree.
func forwardedRequest(ctx context.Context, r *http.Request) (*http.Request, middleware.Reason, string) {
	uri, ok := agreeing(r.Header, forwardedURIHeaders)
	if !ok {
		return nil, ReasonForwardedConflict, "X-Forwarded-Uri and X-Original-URI are repeated or disagree"
	}
	method, ok := agreeing(r.Header, forwardedMethodHeaders)
	if !ok {
		return nil, ReasonForwardedConflict, "X-Forwarded-Method and X-Original-Method are repeated or disagree"
	}
	host, ok := single(r.Header, "X-Forwarded-Host")
	if !ok {
		return nil, ReasonForwardedConflict, "X-Forwarded-Host is repeated"
	}
	proto, ok := single(r.Header, "X-Forwarded-Proto")
	if !ok {
		return nil, ReasonForwardedConflict, "X-Forwarded-Proto is repeated"
	}
	if uri == "" || uri[0] != '/' {
		return nil, ReasonForwardedInvalid, "the original URI (X-Forwarded-Uri or X-Original-URI) is missing or not a path"
	}
	// nginx's $request_uri is the request line's raw URI, and nginx passes
	// that same raw URI to the app: a '#' there is not a fragment to Go's
	// parser ("/admin#x" routes as "/") but is one to Express, Flask or
	// Laravel (which serve "/admin"). Raw bytes a client should have
	// percent-encoded are refused for the same reason: sessiongate and the
	// app must read one path.
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c == '#' || c <= ' ' || c >= 0x7f {
			return nil, ReasonForwardedInvalid, "the original URI has a '#', a space, a control or a non-ASCII byte"
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, ReasonForwardedInvalid, "the original URI is malformed"
	}
	if method == "" {
		method = http.MethodGet
	} else if !netutil.IsToken(method) {
		return nil, ReasonForwardedInvalid, "the original method is malformed"
	}
	if host == "" {
		host = r.Host
	} else if !validHost(host) {
		return nil, ReasonForwardedInvalid, "X-Forwarded-Host is malformed"
	}
	if proto != "" && proto != "http" && proto != "https" {
		return nil, ReasonForwardedInvalid, "X-Forwarded-Proto is neither http nor https"
	}
	orig := r.WithContext(ctx) // the one copy (ServeHTTP)
	orig.Method = method
	orig.URL = u
	orig.RequestURI = uri
	orig.Host = host
	return orig, "", ""
}

// single returns the one value of header name ("" when absent); ok is false
// when the header is sent more than once. A URI may hold commas; the other
// forwarding headers may not (a comma-separated list is a chain of proxies,
// and forward-auth believes one proxy, not a chain).
func single(h http.Header, name string) (string, bool) {
	vs := h[name]
	switch {
	case len(vs) == 0:
		return "", true
	case len(vs) > 1:
		return "", false
	case strings.IndexByte(vs[0], ',') >= 0 && name != forwardedURIHeaders[0] && name != forwardedURIHeaders[1]:
		return "", false
	}
	return strings.TrimSpace(vs[0]), true
}

// agreeing returns the value named by either header of pair; ok is false
// when one is repeated or both are present and differ.
func agreeing(h http.Header, pair [2]string) (string, bool) {
	a, ok := single(h, pair[0])
	if !ok {
		return "", false
	}
	b, ok := single(h, pair[1])
	if !ok {
		return "", false
	}
	if a != "" && b != "" && a != b {
		return "", false
	}
	if a == "" {
		a = b
	}
	return a, true
}

// rewrite builds the upstream request. Out's hop-by-hop and X-Forwarded-*
// headers were already removed by ReverseProxy.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In.Context())
	pr.SetURL(st.route.Upstream)
	if st.peerTrust {
		// Keep the chain of a trusted front proxy; SetXForwarded appends.
		if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
			pr.Out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if st.peerTrust {
		if v := firstValue(pr.In.Header.Get("X-Forwarded-Host")); v != "" && validHost(v) {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
		if v := firstValue(pr.In.Header.Get("X-Forwarded-Proto")); v == "http" || v == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
	}
	pr.Out.Header.Set("X-Request-Id", st.requestID)
	if st.upstreamAuth != "" {
		pr.Out.Header.Set("Authorization", st.upstreamAuth)
	}
	p.setIdentity(pr.Out.Header, st)
	if st.claims != nil && len(st.route.claims) > 0 {
		p.setClaimHeaders(pr.Out.Header, st.route, st.claims)
	}
	if p.tracer != nil {
		p.injectTrace(pr.Out, st) // tracing.go
	}
	// The Host of the upstream request is the upstream's (SetURL sets
	// Out.URL.Host; Out.Host is cleared so the transport uses it).
	pr.Out.Host = ""
}

// upstreamError answers a failed round trip without leaking internals.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	kind := UpstreamErrorKind(r.Context(), err)
	if st != nil {
		st.upstreamErr = kind
	}
	if kind == UpstreamCanceled {
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
		return
	}
	status, code, msg := http.StatusBadGateway, "bad_gateway", "the upstream could not be reached"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, code, msg = http.StatusGatewayTimeout, "gateway_timeout", "the upstream did not answer in time"
	}
	route, requestID := "", ""
	if st != nil {
		requestID = st.requestID
		if st.route != nil {
			route = st.route.Name
		}
	}
	p.log.Warn("upstream error", zap.String("route", route), zap.Int("status", status), zap.String("kind", kind),
		zap.String("request_id", requestID), zap.Error(err))
	writeJSON(w, status, code, "", msg)
}

// stripIdentity deletes every header that starts with the identity prefix,
// comparing case-insensitively with "_" and "-" as one character: upstream
// stacks (CGI, PHP, Rack, WSGI, nginx with underscores_in_headers) map both
// spellings to the same variable.
func (p *Proxy) stripIdentity(h http.Header) {
	for name := range h {
		if hasIdentityPrefix(name, p.prefix) || p.isMappedName(name) {
			delete(h, name)
		}
	}
}

// hasIdentityPrefix reports whether name starts with prefix (already lower
// case with "-"), comparing ASCII case-insensitively with "_" equal to "-",
// without allocating: it runs on every header of every request.
func hasIdentityPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func (p *Proxy) setIdentity(h http.Header, st *state) {
	// The names are canonical already (identityNames), so the map is
	// written directly: Header.Set would canonicalize each name again and
	// allocate a slice per value; st.vals backs them all.
	v := st.vals[1:]
	set := func(i int, name, value string) {
		v[i] = value
		h[name] = v[i : i+1 : i+1]
	}
	if m := st.machine; m != nil {
		set(7, p.names.tokenType, string(m.Type))
		set(8, p.names.subject, m.Subject)
		switch {
		case m.UserID() != "":
			set(0, p.names.userID, m.Subject)
		case m.OrgID() != "":
			set(2, p.names.orgID, m.Subject)
		case m.MachineID() != "":
			set(9, p.names.machineID, m.Subject)
		}
		if m.ID != "" {
			set(10, p.names.tokenID, m.ID)
		}
		if len(m.Scopes) > 0 {
			set(11, p.names.scopes, strings.Join(m.Scopes, ","))
		}
		if m.ClientID != "" {
			set(12, p.names.clientID, m.ClientID)
		}
		return
	}
	c := st.claims
	if c == nil {
		return
	}
	set(7, p.names.tokenType, string(middleware.SessionToken))
	set(0, p.names.userID, c.Subject)
	set(1, p.names.sessionID, c.SessionID)
	if c.OrgID != "" {
		set(2, p.names.orgID, c.OrgID)
		if c.OrgSlug != "" {
			set(3, p.names.orgSlug, c.OrgSlug)
		}
		if c.OrgRole != "" {
			set(4, p.names.orgRole, c.OrgRole)
		}
		if len(c.OrgPermissions) > 0 {
			set(5, p.names.orgPermissions, strings.Join(c.OrgPermissions, ","))
		}
	}
	if c.Actor != nil && c.Actor.Subject != "" {
		set(6, p.names.actorID, c.Actor.Subject)
	}
}

// IdentityHeaders are the names of the identity headers for a prefix, in the
// order of docs/configuration.md.
func IdentityHeaders(prefix string) []string {
	if prefix == "" {
		prefix = DefaultHeaderPrefix
	}
	n := newIdentityNames(prefix)
	return n.all()
}

// trustedPeer reports a peer in TrustedProxies, compared as ClientAddr
// compares it (a zoned link-local proxy included).
func (p *Proxy) trustedPeer(r *http.Request) bool {
	ip, ok := peerAddr(r)
	return ok && inPrefixes(ip, p.trusted)
}

// stripSessionCookies removes __session and __session_<suffix> from the
// Cookie header, keeping every other cookie as it was.
func stripSessionCookies(h http.Header) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	var kept []string
	for _, line := range vals {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			name = strings.TrimSpace(name)
			if name == middleware.SessionCookie || strings.HasPrefix(name, middleware.SessionCookie+"_") {
				continue
			}
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}

func normalizeHeader(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}

// hostOnly lower-cases a Host header and drops its port.
func hostOnly(h string) string {
	// Only a host with a colon can have a port: SplitHostPort allocates its
	// error for every plain "app.example.com".
	if strings.IndexByte(h, ':') >= 0 {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

func (p *Proxy) requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 64 {
		ok := true
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return v
		}
	}
	return p.ids.next()
}

// idSource makes request ids: a random per-process prefix and a counter,
// unique without a system call per request (ids need to be unique, not
// secret).
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: hex.EncodeToString(b[:])}
}

func (s *idSource) next() string {
	var buf [12 + 16]byte
	n := copy(buf[:], s.prefix)
	v := s.n.Add(1)
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		buf[n+i] = digits[v&0xf]
		v >>= 4
	}
	return string(buf[:n+16])
}

// writeJSON writes the proxy's own errors (bad requests, no route, upstream
// failures) in the Gate's body shape. reason may be empty; when set it also
// goes in X-Clerk-Auth-Reason, like the Gate's rejections.
func writeJSON(w http.ResponseWriter, status int, code string, reason middleware.Reason, msg string) {
	jsonresp.WriteError(w, status, jsonresp.ErrorBody{Error: code, Reason: string(reason), Message: msg})
}

// statusWriter records the status for the access log. Unwrap lets
// http.ResponseController (used by ReverseProxy) reach Flush and Hijack, so
// SSE and WebSocket upgrades pass through.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the final status: an informational reply (100
// Continue, 103 Early Hints) that an upstream sends before its answer is
// passed on but does not stand for the answer; 101 Switching Protocols is
// final.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is here too because some handlers type-assert http.Flusher directly.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// machineRequest reports a request whose Bearer token is a machine
// credential.
func machineRequest(r *http.Request) bool {
	tok, src, _ := middleware.ExtractToken(r)
	return src == middleware.SourceHeader && middleware.IsMachineCredential(tok)
}
