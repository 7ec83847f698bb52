// Package middleware is the Gate: it verifies Clerk session tokens without
// network calls on the hot path and puts their claims in the request context.
//
// The pipeline runs in this order for every request:
//
//  1. Extract: "Authorization: Bearer <token>", else the __session cookie
//     (ExtractToken).
//  2. Verified-token cache: the exact same token, already verified, skips
//     parsing and the signature; time checks still run on every hit.
//  3. Parse the compact form once with a strict reader (member names equal
//     up to case, wrong JSON types, organization permissions over the
//     limits and malformed segments are token-invalid), check the header
//     (typ, alg allowlist, kid, no embedded keys, no crit, session
//     category), then every claim that needs no key (exp/nbf/iat with skew,
//     exact iss, user sub, sess_ sid, azp allowlist, sts). All of it is
//     linear in the token's size.
//  4. Look up the kid in the KeySource (the only step that may fetch), pin
//     the algorithm to the key, verify the RSA signature; only then expand
//     the v2 organization permissions.
//  5. Apply the Policy: pending sessions, then the SessionChecker (step 6).
//  6. Put the claims in the context (ClaimsFromContext).
//
// Every rejection is an *Error with a stable Reason; WriteError turns it into
// the status, JSON body and headers listed in docs/reason-codes.md. Require
// rejects, Optional only attaches claims. A Gate holds no package-level state: build one per
// Clerk instance with New.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package middleware
