// Package middleware is the Gate: it verifies Clerk session tokens without
// network calls on the hot path and puts their claims in the request context.
//
// The pipeline (DESIGN §2) runs in this order for every request:
//
//  1. Extract: "Authorization: Bearer <token>", else the __session cookie
//     (ExtractToken).
//  2. Verified-token cache: the exact same token, already verified, skips
//     parsing and the signature; time checks still run on every hit.
//  3. Parse the compact form once with a strict reader (duplicate members,
//     wrong JSON types and malformed segments are token-invalid), check the
//     header (typ, alg allowlist, kid, no embedded keys, no crit, session
//     category), then every claim that needs no key (exp/nbf/iat with skew,
//     exact iss, user sub, sess_ sid, azp allowlist, sts).
//  4. Look up the kid in the KeySource (the only step that may fetch), pin
//     the algorithm to the key, verify the RSA signature.
//  5. Apply the Policy: pending sessions, then the SessionChecker (step 6).
//  6. Put the claims in the context (ClaimsFromContext).
//
// Every rejection is an *Error with a stable Reason; WriteError turns it into
// the status, JSON body and headers of DESIGN §3. Require rejects, Optional
// only attaches claims. A Gate holds no package-level state: build one per
// Clerk instance with New.
package middleware
