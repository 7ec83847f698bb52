package middleware

import (
	"context"
	"strings"
)

// VerifyJWS verifies a compact JWS signed with one of the instance's keys,
// header-wise exactly as a session token (typ absent or JWT, alg in the
// Gate's allowlist, a kid, no embedded keys or crit, cat absent, session or
// ignore, strict JSON without duplicate members), then the key (the Gate's
// KeySource, alg pinned to the key) and the signature, and returns the
// payload's JSON bytes. None of the session-token claim checks run (iss,
// sub, sid, azp, sts): the payload is not a session. exp and nbf are
// enforced with the Gate's skew and clock when present, ignored when absent.
//
// It is for tokens the instance signs that are not session tokens, such as
// the handshake payload of Clerk's Frontend API (package handshake).
// Failures are *Error values with the reasons of a session token
// (token-invalid, token-invalid-algorithm, token-type-mismatch,
// jwk-kid-mismatch, token-invalid-signature, token-expired,
// token-not-active-yet, jwk-remote-failed-to-load). The verified-token
// cache is not used.
func (g *Gate) VerifyJWS(ctx context.Context, token string) ([]byte, error) {
	p, e := parseToken(token)
	if e != nil {
		return nil, g.rejected(ctx, e, "", nil)
	}
	h := &p.header
	if p.kind != kindSession {
		return nil, g.rejected(ctx, reject(ReasonTokenTypeMismatch, "the token's typ or category is not the instance's session class"), h.kid, nil)
	}
	if e := g.checkHeader(ctx, h, "token"); e != nil {
		return nil, e
	}
	now := g.now()
	c := p.claims
	if c.hasExp && !now.Before(c.Expiry.Add(g.skew)) {
		return nil, g.rejected(ctx, reject(ReasonTokenExpired, "the token has expired"), h.kid, nil)
	}
	if c.hasNbf && now.Before(c.NotBefore.Add(-g.skew)) {
		return nil, g.rejected(ctx, reject(ReasonTokenNotActiveYet, "the token is not valid yet"), h.kid, nil)
	}
	if _, e := g.checkSignature(ctx, p, "token", nil); e != nil {
		return nil, e
	}
	// parseToken validated the payload segment (strict base64url, strict
	// JSON object); decode it once more for the caller.
	first := strings.IndexByte(token, '.')
	second := first + 1 + strings.IndexByte(token[first+1:], '.')
	payload, err := b64.DecodeString(token[first+1 : second])
	if err != nil {
		return nil, g.rejected(ctx, rejectErr(ReasonTokenInvalid, "the token payload is not base64url", err), h.kid, nil)
	}
	return payload, nil
}
