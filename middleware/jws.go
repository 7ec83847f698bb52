package middleware

import (
	"context"
	"errors"
	"strings"

	"github.com/sessiongate/sessiongate/jwks"
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
		return nil, g.rejected(e, "", nil)
	}
	h := &p.header
	if !g.algAllowed(h.alg) {
		return nil, g.rejected(reject(ReasonTokenInvalidAlgorithm, "the token algorithm "+sanitize(h.alg)+" is not allowed"), h.kid, nil)
	}
	if !h.hasKid || h.kid == "" {
		return nil, g.rejected(reject(ReasonTokenInvalid, "the token has no kid header"), "", nil)
	}
	now := g.now()
	c := p.claims
	if c.hasExp && !now.Before(c.Expiry.Add(g.skew)) {
		return nil, g.rejected(reject(ReasonTokenExpired, "the token has expired"), h.kid, nil)
	}
	if c.hasNbf && now.Before(c.NotBefore.Add(-g.skew)) {
		return nil, g.rejected(reject(ReasonTokenNotActiveYet, "the token is not valid yet"), h.kid, nil)
	}
	key, err := g.keys.Key(ctx, h.kid)
	if err != nil {
		if errors.Is(err, jwks.ErrKeyNotFound) {
			e = rejectErr(ReasonKidMismatch, "the token was signed by an unknown key", err)
		} else {
			e = rejectErr(ReasonKeysUnavailable, "no signing keys are available to verify the token", err)
		}
		return nil, g.rejected(e, h.kid, nil)
	}
	if key.Algorithm != h.alg {
		return nil, g.rejected(reject(ReasonTokenInvalidAlgorithm, "the token algorithm does not match its key"), h.kid, nil)
	}
	if err := verifySignature(key, p.signingInput, p.signature); err != nil {
		return nil, g.rejected(rejectErr(ReasonTokenInvalidSignature, "the token signature is invalid", err), h.kid, nil)
	}
	// parseToken validated the payload segment (strict base64url, strict
	// JSON object); decode it once more for the caller.
	first := strings.IndexByte(token, '.')
	second := first + 1 + strings.IndexByte(token[first+1:], '.')
	payload, err := b64.DecodeString(token[first+1 : second])
	if err != nil {
		return nil, g.rejected(rejectErr(ReasonTokenInvalid, "the token payload is not base64url", err), h.kid, nil)
	}
	return payload, nil
}
