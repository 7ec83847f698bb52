package handshake

// Development instances (pk_test_ keys): Clerk's dev-browser flow, as
// @clerk/backend runs it (packages/backend/src/tokens/request.ts and
// handshake.ts in https://github.com/clerk/javascript).
//
// A development Frontend API (<name>.clerk.accounts.dev) is another site
// than the application (localhost, a preview domain), so its own __client
// cookie never reaches it in a navigation the application starts. It knows
// a browser by its dev-browser token instead, __clerk_db_jwt, which travels
// in URLs and which clerk-js, or a returning handshake, keeps in a cookie of
// the application's domain. And it returns handshake payloads in the URL
// (?__clerk_handshake=, ?__clerk_handshake_nonce=), which the application
// applies and then drops with a redirect to the cleaned URL.
//
// Reading the payload from the URL is a login-CSRF vector: a link that
// carries somebody's own handshake payload signs whoever follows it into
// that somebody's session. Clerk's development instances are built that
// way ("not secure enough for production use", Clerk's docs say); production
// instances read the payload from cookies only here (handshake.go).

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
)

// Clerk's reasons of the development handshakes (x-clerk-auth-reason,
// __clerk_hs_reason).
const (
	// ReasonDevBrowserMissing: a development instance's request without a
	// dev-browser token, in the URL or a cookie.
	ReasonDevBrowserMissing = "dev-browser-missing"
	// ReasonDevBrowserSync: a development instance's request with a
	// dev-browser token in the URL (back from Clerk's Account Portal).
	ReasonDevBrowserSync = "dev-browser-sync"
)

// Query parameters of the development flow.
const (
	// handshakeHelpParam is removed from the URL with the payload.
	handshakeHelpParam = "__clerk_help"
	// legacyDevBrowserParam is the dev-browser parameter of Clerk's v4
	// SDKs, removed from redirect_url like __clerk_db_jwt.
	legacyDevBrowserParam = "__dev_session"
)

// ClockSkewRetry is how far off a development instance's clock may be for a
// returning handshake's session token to be accepted (Clerk's SDK verifies
// it again with a one-day clock skew: a developer's laptop clock is often
// wrong, and the handshake would loop otherwise).
const ClockSkewRetry = 24 * time.Hour

// devPayload reads a development instance's handshake token and nonce: the
// URL's first (where the Frontend API puts them), else the cookies'.
func (q *request) devPayload(hsToken, hsNonce string) (string, string) {
	v := q.queryValues()
	if t := v.Get(HandshakeCookie); t != "" {
		hsToken = t
	}
	if n := v.Get(HandshakeNonceCookie); n != "" {
		hsNonce = n
	}
	return hsToken, hsNonce
}

// devToken is the dev-browser token of a development instance's request:
// the URL's, else the cookie of the chosen name set (suffixed or not, as
// for __session). "" in production.
func (q *request) devToken() string {
	if q.h.production {
		return ""
	}
	if t := q.queryValues().Get(DevBrowserCookie); t != "" {
		return t
	}
	name := DevBrowserCookie
	if q.suffixed {
		name = q.h.suffixedName(DevBrowserCookie)
	}
	return cookie(q.r, name)
}

// devBrowser is a development instance's dev-browser step: a token in the
// URL is synced through the handshake (dev-browser-sync), and a request
// without any is sent for one (dev-browser-missing), signed in or not.
// Requests that cannot be redirected end signed out, as with Clerk's SDK:
// without the token the browser's Clerk state is unknown.
func (q *request) devBrowser() *Outcome {
	if _, ok := q.queryValues()[DevBrowserCookie]; ok {
		return q.maybeHandshake(ReasonDevBrowserSync, q.devFallback("the URL carries a dev-browser token that was not synced"))
	}
	if q.devToken() == "" {
		return q.maybeHandshake(ReasonDevBrowserMissing, q.devFallback("no dev-browser token (__clerk_db_jwt) was presented"))
	}
	return nil
}

// devFallback is the signed-out error of a dev-browser step that cannot
// redirect: session-token-missing without a session cookie, else stale.
func (q *request) devFallback(msg string) *middleware.Error {
	msg = "development instance: " + msg + ", so the browser's Clerk state is unknown"
	if q.session == "" {
		return &middleware.Error{Reason: middleware.ReasonSessionTokenMissing, Message: msg}
	}
	return stale(msg)
}

// resolved finishes a resolved handshake. A development instance's answer
// is a 307 back to the page without the payload's parameters, with the
// payload's cookies, so that the browser stores them and asks again
// (Clerk's resolveHandshake); forward-auth, which never redirects, and
// production instances serve the page with them.
func (q *request) resolved(o *Outcome) *Outcome {
	if q.h.production || !q.mayRedirect {
		return q.finish(o)
	}
	return q.finish(&Outcome{
		Status:      Redirect,
		Resolution:  o.Status,
		Claims:      o.Claims,
		Err:         o.Err,
		ClerkReason: o.ClerkReason,
		SetCookie:   o.SetCookie,
		Location:    stripQueryParams(q.public(), HandshakeCookie, handshakeHelpParam, DevBrowserCookie, HandshakeNonceCookie),
	})
}

// failed is a development instance's answer to a handshake token that fails
// verification: 500, as Clerk's SDK throws. The payload came from the URL,
// so it was not another application's cookie; the usual cause is switched
// keys. A cookie of that name is deleted with the answer.
func (q *request) failed(err error) *Outcome {
	e := asError(err)
	msg := "Clerk handshake: the handshake token failed verification (" + string(e.Reason) + ")"
	if e.Reason == middleware.ReasonTokenInvalidSignature {
		msg = "Clerk handshake: the handshake token's signature is invalid"
	}
	msg += ". If you switched Clerk keys, clear this site's cookies and try again."
	q.h.log.Warn("Clerk handshake: a development instance's handshake token was rejected; answering 500",
		zap.String("reason", string(e.Reason)), logctx.Field(q.r.Context()))
	if cookie(q.r, HandshakeCookie) != "" {
		q.cleanup = append(q.cleanup, q.h.deletion(HandshakeCookie)...)
	}
	return q.finish(&Outcome{Status: Failed, Err: &middleware.Error{Reason: e.Reason, Message: msg, Err: err}})
}

// verifySkewed is Clerk's clock-skew retry of a development instance's
// returning handshake: a new session token refused as expired, not yet
// valid or issued in the future (err) is verified again, fully, by a Gate
// whose clock stands at the instant of the token's validity nearest to now,
// provided that instant is within ClockSkewRetry of now. Any other error,
// or no Config.GateAt, returns err.
func (h *Handshaker) verifySkewed(ctx context.Context, tok string, p middleware.Policy, err error) (*middleware.Claims, error) {
	switch asError(err).Reason {
	case middleware.ReasonTokenExpired, middleware.ReasonTokenNotActiveYet, middleware.ReasonTokenIatInTheFuture:
	default:
		return nil, err
	}
	if h.gateAt == nil {
		return nil, err
	}
	u, ok := decodeUnverified(tok)
	if !ok || !u.hasExp {
		return nil, err
	}
	lo := u.iat
	if u.hasNbf && u.nbf > lo {
		lo = u.nbf
	}
	now := h.now()
	at := now.Unix()
	if at < lo {
		at = lo
	}
	if at > u.exp {
		at = u.exp
	}
	if off := now.Sub(time.Unix(at, 0)); off > ClockSkewRetry || off < -ClockSkewRetry {
		return nil, err
	}
	h.log.Warn("Clerk handshake: clock skew detected; accepting the development instance's session token with a one-day skew (is this machine's clock right?)",
		zap.String("reason", string(asError(err).Reason)), zap.Duration("off_by", now.Sub(time.Unix(at, 0)).Round(time.Second)),
		logctx.Field(ctx))
	g, gerr := h.gateAt(time.Unix(at, 0))
	if gerr != nil {
		h.log.Warn("Clerk handshake: building the clock-skew Gate failed", zap.Error(gerr), logctx.Field(ctx))
		return nil, err
	}
	return g.VerifyWith(ctx, tok, p)
}
