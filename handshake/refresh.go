package handshake

// The __refresh flow (@clerk/backend request.ts, attemptRefresh): a GET
// whose session token has expired and that carries the Frontend API's
// refresh token (__refresh_<suffix>, always suffixed) is renewed without a
// redirect through the Backend API's POST /v1/sessions/{sid}/refresh
// (format "cookie"); any failure falls back to the handshake with Clerk's
// reason session-token-expired-refresh-<why>. It is the only renewal a
// fetch/XHR request can have.
//
// Each refresh is a Backend API call with the secret key, caused by a
// cookie any client sets. So before it: the expired token must be the
// instance's own, verified fully but for its times (signature, issuer,
// authorized parties, a user and a session), and the call spends the same
// budget as nonce exchanges (the process's cap and the client's own).

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
)

// Refresher renews an expired session with a refresh token and returns the
// Set-Cookie values Clerk sends (a new __session among them). It returns a
// *RefreshError for a refusal by Clerk. sessiongate adapts
// *clerkapi.Client.RefreshSession.
type Refresher interface {
	// RefreshSession asks Clerk to renew session sessionID with the
	// tokens of r.
	RefreshSession(ctx context.Context, sessionID string, r RefreshRequest) ([]string, error)
}

// RefreshRequest is what a refresh sends.
type RefreshRequest struct {
	// ExpiredToken is the expired session token; RefreshToken the
	// __refresh_<suffix> cookie.
	ExpiredToken, RefreshToken string
	// RequestOrigin is the page's origin.
	RequestOrigin string
	// ClientIP is the browser's address when known ("" otherwise).
	ClientIP string
	// UserAgent is the request's User-Agent.
	UserAgent string
	// SuffixedCookies asks for suffixed cookies too.
	SuffixedCookies bool
}

// RefreshError is Clerk's refusal of a refresh: its error code (ClerkErrors
// errors[0].code), which becomes the handshake reason's suffix.
type RefreshError struct {
	// Code is Clerk's error code (errors[0].code); the handshake reason
	// ends in it when it is a plain identifier.
	Code string
	// Err is the refusal as the client returned it (a *clerkapi.APIError,
	// say), for errors.As and logs.
	Err error
}

// Error names Clerk's code.
func (e *RefreshError) Error() string { return "handshake: refresh refused: " + e.Code }

// Unwrap returns the underlying error (a *clerkapi.APIError, say).
func (e *RefreshError) Unwrap() error { return e.Err }

// Clerk's refresh errors (RefreshTokenErrorReason), and sessiongate's own
// for a refresh its budget held back.
const (
	refreshMissingAPIClient     = "missing-api-client"
	refreshDecodeFailed         = "expired-session-token-decode-failed"
	refreshInvalidSessionToken  = "invalid-session-token"
	refreshFetchError           = "fetch-error"
	refreshUnexpectedBAPIError  = "unexpected-bapi-error"
	refreshUnexpectedSDKError   = "unexpected-sdk-error"
	refreshRateLimited          = "rate-limited"
	maxRefreshTokenLen          = 4 << 10
	maxRefreshErrorCodeLen      = 64
	refreshCodeUnexpectedClerks = "unexpected_error" // Clerk's code that means fetch-error
)

// refresh tries the __refresh flow for an expired session token. It
// returns the outcome of a successful (or finally refused) refresh, or nil
// and the refresh error for Clerk's handshake reason.
func (q *request) refresh() (*Outcome, string) {
	h, r := q.h, q.r
	if r.Method != http.MethodGet {
		return nil, refreshNonEligibleNonGet
	}
	rt := cookie(r, h.suffixedName(RefreshCookie))
	if rt == "" {
		return nil, refreshNonEligibleNoCookie
	}
	if h.refresher == nil || h.gateAt == nil {
		return nil, refreshMissingAPIClient
	}
	if len(rt) > maxRefreshTokenLen {
		return nil, refreshUnexpectedSDKError
	}
	// Cost before trust: only the instance's own session token, expired,
	// buys a Backend API call. It is verified at an instant of its validity.
	u, ok := decodeUnverified(q.session)
	if !ok || !u.hasExp {
		return nil, refreshDecodeFailed
	}
	at := u.iat
	if u.hasNbf && u.nbf > at {
		at = u.nbf
	}
	if at > u.exp || at <= 0 {
		at = u.exp
	}
	g, err := h.gateAt(time.Unix(at, 0))
	if err != nil {
		return nil, refreshUnexpectedSDKError
	}
	ctx := r.Context()
	old, err := g.VerifyWith(ctx, q.session, middleware.Policy{})
	if err != nil {
		return nil, refreshInvalidSessionToken
	}
	client := h.nonces.clientKey(r)
	if v, _ := h.nonces.limit.take(client, h.now()); v != allowed {
		h.nonces.refreshLimited.Add(1)
		return nil, refreshRateLimited
	}
	req := RefreshRequest{
		ExpiredToken: q.session, RefreshToken: rt, RequestOrigin: originOf(q.public()),
		UserAgent: r.Header.Get("User-Agent"), SuffixedCookies: q.suffixed,
	}
	if a, err := netip.ParseAddr(client); err == nil {
		req.ClientIP = a.String()
	}
	cctx, cancel := context.WithTimeout(ctx, h.nonces.timeout)
	defer cancel()
	h.nonces.refreshes.Add(1)
	cookies, err := h.refresher.RefreshSession(cctx, old.SessionID, req)
	if err != nil {
		h.nonces.refreshFailures.Add(1)
		why := refreshErrorOf(err)
		h.log.Debug("Clerk handshake: the refresh failed; falling back to the handshake", zap.String("refresh_error", why), logctx.Field(ctx))
		return nil, why
	}
	directives := h.filter(ctx, cookies)
	tok := lastSessionToken(directives)
	if tok == "" {
		return nil, refreshInvalidSessionToken
	}
	claims, err := h.gate.VerifyWith(ctx, tok, q.policy)
	if err == nil {
		return q.finish(&Outcome{Status: SignedIn, Claims: claims, SetCookie: directives}), ""
	}
	switch e := asError(err); e.Reason {
	case middleware.ReasonSessionPending, middleware.ReasonSessionRevoked, middleware.ReasonSessionStatusUnavailable:
		// As for a handshake: a genuine token of a session the route's
		// policy refuses is a final answer.
		return q.finish(&Outcome{Status: SignedOut, Err: e, SetCookie: directives}), ""
	}
	return nil, refreshInvalidSessionToken
}

// refreshErrorOf is Clerk's refresh error for a failed call: Clerk's own
// code (unexpected_error is fetch-error), unexpected-bapi-error otherwise. A
// code is kept only if it is a plain identifier: it goes into a URL and a
// header.
func refreshErrorOf(err error) string {
	var re *RefreshError
	if !errors.As(err, &re) || re.Code == "" {
		return refreshUnexpectedBAPIError
	}
	if re.Code == refreshCodeUnexpectedClerks {
		return refreshFetchError
	}
	if len(re.Code) > maxRefreshErrorCodeLen {
		return refreshUnexpectedBAPIError
	}
	for i := 0; i < len(re.Code); i++ {
		c := re.Code[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return refreshUnexpectedBAPIError
		}
	}
	return re.Code
}
