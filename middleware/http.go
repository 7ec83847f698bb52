package middleware

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/jsonresp"
)

// SessionCookie is the cookie Clerk's browser SDK keeps the session token
// in: "__session".
const SessionCookie = clerkwire.SessionCookie

// Source says where a request's token came from.
type Source int

// Token sources.
const (
	SourceNone   Source = iota // no token
	SourceHeader               // Authorization: Bearer
	SourceCookie               // __session cookie
)

// ExtractToken finds the session token of a request:
// "Authorization: Bearer <token>" (scheme case-insensitive, one or more
// spaces), else the first __session cookie. The header wins when both are
// present. An Authorization header with another scheme is not a session token
// and the cookie is used. More than one Authorization header is ambiguous and
// refused (token-invalid): proxies in front may not agree on which one counts.
func ExtractToken(r *http.Request) (string, Source, error) {
	if vals := r.Header["Authorization"]; len(vals) > 0 {
		if len(vals) > 1 {
			return "", SourceHeader, reject(ReasonTokenInvalid, "more than one Authorization header")
		}
		if tok, ok := bearer(vals[0]); ok {
			if tok != "" {
				return tok, SourceHeader, nil
			}
		}
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return c.Value, SourceCookie, nil
	}
	return "", SourceNone, nil
}

// bearer returns the credentials of a Bearer authorization value.
func bearer(v string) (string, bool) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.Trim(rest, " "), true
}

type claimsKey struct{}

// ClaimsFromContext returns the verified claims the Gate put in ctx.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// ContextWithClaims returns a copy of ctx carrying c. The Gate calls it after
// verification; tests of handlers can call it to fake a signed-in request.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// Authenticate extracts and verifies the token of r under policy p.
func (g *Gate) Authenticate(r *http.Request, p Policy) (*Claims, error) {
	tok, _, err := ExtractToken(r)
	if err != nil {
		return nil, err
	}
	return g.VerifyWith(r.Context(), tok, p)
}

// Require rejects requests without a valid session token with the outcome
// listed in docs/reason-codes.md, and passes the others on with the claims
// in their context.
func (g *Gate) Require(next http.Handler) http.Handler {
	return g.require(g.DefaultPolicy(), next)
}

// RequireWith is Require under policy p, typically the Gate's DefaultPolicy
// with Requirements or accepted machine credentials (Policy.Accepts)
// added; AuthFromContext tells the handler which kind of credential it got:
//
//	p := gate.DefaultPolicy()
//	p.Require = middleware.Requirements{Features: []string{"org:analytics"}}
//	mux.Handle("/reports/", gate.RequireWith(p)(reports))
//
// It panics if p.Require is invalid (Requirements.Validate), as
// regexp.MustCompile does: requirements are fixed when handlers are built.
func (g *Gate) RequireWith(p Policy) func(http.Handler) http.Handler {
	mustValid(p)
	return func(next http.Handler) http.Handler { return g.require(p, next) }
}

// OptionalWith is Optional under policy p: a request whose token is valid
// but misses p's requirements passes on without claims.
func (g *Gate) OptionalWith(p Policy) func(http.Handler) http.Handler {
	mustValid(p)
	return func(next http.Handler) http.Handler { return g.optional(p, next) }
}

func mustValid(p Policy) {
	if err := p.Require.Validate(); err != nil {
		panic(err)
	}
	if err := ValidateAccepts(p.Accepts); err != nil {
		panic(err)
	}
}

func (g *Gate) require(p Policy, next http.Handler) http.Handler {
	if g.tracer != nil {
		return g.traced(p, next, true) // tracing.go
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := g.AuthenticateAny(r, p)
		if err != nil {
			g.WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithAuth(r.Context(), a)))
	})
}

// Optional never rejects: a request with a valid session token gets its
// claims in the context, any other request passes on without claims.
func (g *Gate) Optional(next http.Handler) http.Handler {
	return g.optional(g.DefaultPolicy(), next)
}

func (g *Gate) optional(p Policy, next http.Handler) http.Handler {
	if g.tracer != nil {
		return g.traced(p, next, false) // tracing.go
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := g.AuthenticateAny(r, p)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithAuth(r.Context(), a)))
	})
}

// RetryAfterSeconds is sent with every 503.
const RetryAfterSeconds = "5"

// WriteError writes the outcome of err (docs/reason-codes.md): the status of
// its reason, the JSON body, X-Clerk-Auth-Reason, X-Clerk-Auth-Status:
// signed-out and WWW-Authenticate on 401, Retry-After on 503.
func (g *Gate) WriteError(w http.ResponseWriter, err error) {
	WriteError(w, err, g.realm)
}

// WriteError is Gate.WriteError for callers without a Gate.
func WriteError(w http.ResponseWriter, err error, realm string) {
	status, reason, msg := Outcome(err)
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("X-Clerk-Auth-Status", "signed-out")
		challenge := `Bearer realm="` + realm + `"`
		if reason != ReasonSessionTokenMissing {
			challenge += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		ra := RetryAfterSeconds
		if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > 0 {
			ra = strconv.Itoa(int((e.RetryAfter + time.Second - 1) / time.Second))
		}
		h.Set("Retry-After", ra)
	}
	eb := jsonresp.ErrorBody{Error: reason.ErrorCode(), Reason: string(reason), Message: msg}
	var e *Error
	if errors.As(err, &e) && e.Reverification != nil {
		// Clerk's clerk_error member, which Clerk's frontend
		// useReverification reads.
		eb.ClerkError = e.Reverification.clerkError()
	}
	jsonresp.WriteError(w, status, eb)
}

// IsBrowserNavigation reports whether r is a browser's top-level or iframe
// navigation, the only kind of request that may be redirected (to Clerk's
// handshake or a sign-in page): a GET with Sec-Fetch-Dest document or iframe,
// or, from browsers that send no Sec-Fetch-Dest, a GET whose Accept starts
// with text/html. Fetch/XHR (Sec-Fetch-Dest: empty), HEAD and every other
// method are not navigations, as in Clerk's SDK.
func IsBrowserNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "document", "iframe":
		return true
	case "":
		return strings.HasPrefix(r.Header.Get("Accept"), "text/html")
	default:
		return false
	}
}
