package handshake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/middleware"
)

// Bounds on a handshake payload: Clerk's carry a handful of directives of a
// few KiB at most.
const (
	maxDirectives     = 64
	maxDirectiveBytes = 8 << 10
)

// allowedPrefixes are the cookie names a handshake may set (deviation from
// Clerk's SDK, which emits whatever the payload lists).
var allowedPrefixes = []string{SessionCookie, ClientUATCookie, DevBrowserCookie, RefreshCookie, HandshakeCookie}

// resolve is the return trip of a handshake. It returns the outcome, or nil
// to go on with the request's own cookies (the payload failed); in both
// cases q.cleanup holds sessiongate's own deletions.
func (q *request) resolve(hsToken, hsNonce string) *Outcome {
	h := q.h
	ctx := q.r.Context()
	var directives []string
	switch {
	case hsNonce != "":
		// The nonce wins when both are present (Clerk's order).
		d, err := h.exchange(ctx, q.r, hsNonce)
		if errors.Is(err, errNonceRateLimited) {
			// Not attempted, so the nonce is still good at Clerk: keep both
			// cookies and say "not now" rather than "signed out". Ending
			// signed-out would send a signed-in user to the sign-in page
			// (or serve an optional route anonymously) and, with the nonce
			// deleted, the browser could never finish this handshake; a
			// fresh redirect would only buy another nonce for the same
			// limit. 503 with Retry-After and a reload exchanges it.
			return q.finish(&Outcome{Status: SignedOut, NoStore: true, Err: &middleware.Error{
				Reason:  middleware.ReasonSessionStatusUnavailable,
				Message: "too many sign-in handshakes are being completed right now; reload in a few seconds",
				Err:     err,
			}})
		}
		// A consumed nonce is deleted whatever happened: the payload may not
		// do it. (A development instance's may come from the URL: only
		// cookies are deleted.)
		if cookie(q.r, HandshakeNonceCookie) != "" {
			q.cleanup = append(q.cleanup, h.deletion(HandshakeNonceCookie)...)
		}
		if cookie(q.r, HandshakeCookie) != "" {
			q.cleanup = append(q.cleanup, h.deletion(HandshakeCookie)...)
		}
		directives = d
	default:
		d, err := h.verifyToken(ctx, hsToken)
		if err != nil && !h.production {
			return q.failed(err)
		}
		if err != nil {
			h.log.Warn("Clerk handshake: the handshake token was rejected; going on with the request's cookies",
				zap.String("reason", reasonOf(err)), zap.Error(errors.Unwrap(err)), logctx.Field(ctx))
			// Delete it, or every request would try it again until it expires.
			q.cleanup = append(q.cleanup, h.deletion(HandshakeCookie)...)
			return nil
		}
		directives = d
	}
	directives = h.filter(ctx, directives)
	tok := lastSessionToken(directives)
	if tok == "" {
		return q.resolved(&Outcome{
			Status:      SignedOut,
			Err:         &middleware.Error{Reason: middleware.ReasonSessionTokenMissing, Message: "the handshake ended signed out (Clerk: " + ReasonSessionTokenMissing + ")"},
			ClerkReason: ReasonSessionTokenMissing,
			SetCookie:   directives,
		})
	}
	claims, err := h.gate.VerifyWith(ctx, tok, q.policy)
	if err != nil && !h.production {
		// Development: Clerk's one-day clock-skew retry (dev.go).
		claims, err = h.verifySkewed(ctx, tok, q.policy, err)
	}
	if err == nil {
		return q.resolved(&Outcome{Status: SignedIn, Claims: claims, SetCookie: directives})
	}
	e := asError(err)
	switch e.Reason {
	case middleware.ReasonSessionPending, middleware.ReasonSessionRevoked, middleware.ReasonSessionStatusUnavailable:
		// A genuine token of a session the route's policy refuses: the
		// answer is final, and another handshake would only mint the same.
		return q.resolved(&Outcome{Status: SignedOut, Err: e, SetCookie: directives})
	}
	h.log.Warn("Clerk handshake: the new session token failed verification; discarding the payload",
		zap.String("reason", string(e.Reason)), logctx.Field(ctx))
	return nil
}

// exchange fetches a nonce's directives for request r. Any failure gives
// none (logged), and an error for resolve to tell a rate-limited nonce from
// the others.
func (h *Handshaker) exchange(ctx context.Context, r *http.Request, nonce string) ([]string, error) {
	if h.nonces.x == nil {
		h.log.Warn("Clerk handshake: a nonce arrived but no Backend API client is configured (clerk.secret_key); ending signed-out",
			logctx.Field(ctx))
		return nil, nil
	}
	d, err := h.nonces.exchange(ctx, r, nonce)
	if err != nil {
		msg := "Clerk handshake: exchanging the nonce failed; ending signed-out"
		if errors.Is(err, errNonceRateLimited) {
			msg = "Clerk handshake: the nonce was not exchanged (rate limit); answering 503 and keeping it"
		}
		if ce := h.log.Check(nonceLogLevel(err), msg); ce != nil {
			ce.Write(zap.Error(err), logctx.Field(ctx))
		}
		return nil, err
	}
	return d, nil
}

// nonceLogLevel: an exchange that did not run (a cached failure, the rate
// limit) is a debug line, or a flood of cookies would flood the log; the
// limiter warns once per episode.
func nonceLogLevel(err error) zapcore.Level {
	switch {
	case errors.Is(err, errNonceFailedBefore), errors.Is(err, errNonceRateLimited), errors.Is(err, errNonceTooLong):
		return zapcore.DebugLevel
	}
	return zapcore.WarnLevel
}

// verifyToken verifies the handshake JWT and returns its directives.
func (h *Handshaker) verifyToken(ctx context.Context, tok string) ([]string, error) {
	payload, err := h.gate.VerifyJWS(ctx, tok)
	if err != nil {
		return nil, err
	}
	var p struct {
		Handshake *[]string `json:"handshake"`
	}
	if err := json.Unmarshal(payload, &p); err != nil || p.Handshake == nil {
		return nil, &middleware.Error{Reason: middleware.ReasonTokenInvalid, Message: "the handshake token has no handshake array of strings", Err: err}
	}
	// exp and nbf are enforced by VerifyJWS when present. They are not
	// required: the Frontend API's handshake tokens carry none (their payload
	// is exactly {"handshake": [...]}), so requiring exp would fail every
	// real handshake. A replayed payload can only set cookies whose own
	// tokens are verified on every request (a __session expires in 60 s).
	return *p.Handshake, nil
}

func reasonOf(err error) string {
	var e *middleware.Error
	if errors.As(err, &e) {
		return string(e.Reason)
	}
	return "unknown"
}

// filter keeps the directives whose cookie name is allow-listed and that
// hold no control character (CR and LF above all), in order. ctx is the
// request's, for its log lines.
func (h *Handshaker) filter(ctx context.Context, ds []string) []string {
	out := make([]string, 0, len(ds))
	for i, d := range ds {
		if i >= maxDirectives {
			h.log.Warn("Clerk handshake: too many directives; the rest are dropped", zap.Int("count", len(ds)), logctx.Field(ctx))
			break
		}
		name := directiveName(d)
		switch {
		case len(d) > maxDirectiveBytes, hasControl(d):
			h.log.Warn("Clerk handshake: a directive with control characters or too long was dropped", zap.String("cookie", safeName(name)),
				logctx.Field(ctx))
		case !allowedName(name):
			h.log.Warn("Clerk handshake: a directive for a cookie outside the allow-list was dropped", zap.String("cookie", safeName(name)),
				logctx.Field(ctx))
		default:
			out = append(out, d)
		}
	}
	return out
}

func directiveName(d string) string {
	pair, _, _ := strings.Cut(d, ";")
	name, _, _ := strings.Cut(pair, "=")
	return strings.TrimSpace(name)
}

func allowedName(name string) bool {
	if !netutil.IsToken(name) {
		return false
	}
	for _, p := range allowedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// safeName bounds a cookie name for a log line.
func safeName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	if !netutil.IsToken(s) {
		return "(invalid)"
	}
	return s
}

// lastSessionToken is the value of the last directive whose name starts
// with __session ("" for a deletion), as Clerk's SDK picks it.
func lastSessionToken(ds []string) string {
	tok := ""
	for _, d := range ds {
		if !strings.HasPrefix(directiveName(d), SessionCookie) {
			continue
		}
		pair, _, _ := strings.Cut(d, ";")
		_, v, _ := strings.Cut(pair, "=")
		tok = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return tok
}

// deletion is the Set-Cookie values that delete name: host-only, and on the
// cookie domain when one is configured.
func (h *Handshaker) deletion(name string) []string {
	const del = "=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0"
	out := []string{name + del}
	if h.cookieDomain != "" {
		out = append(out, name+del+"; Domain="+h.cookieDomain)
	}
	return out
}
