// Package sessiongate authenticates HTTP requests with Clerk session tokens,
// fast and without network calls on the hot path.
//
// This root package holds no code of its own; it documents the module and
// hosts the end-to-end tests. Where to start:
//
//   - middleware: the Gate, a net/http middleware (Require, Optional) that
//     verifies a Clerk session token (Authorization: Bearer, or the __session
//     cookie) against a cached key set and puts the claims in the request
//     context (middleware.ClaimsFromContext). Every rejection has a stable
//     reason code (docs/reason-codes.md).
//   - jwks: where the Gate's keys come from: a remote JWKS (Clerk's Backend
//     API /v1/jwks or the Frontend API /.well-known/jwks.json) refreshed in the
//     background, a static PEM key (CLERK_JWT_KEY: no network ever), or an
//     in-memory set.
//   - clerktest: a fake Clerk instance (JWKS endpoints, key rotation, token
//     minting in Clerk's v1 and v2 formats, failure injection) for tests,
//     yours included.
//
// README.md has the quick start; docs/ holds the configuration, the reason
// codes and the deployment guides.
//
// Stability: every public package follows the semantic versioning of the
// module: from v1.0.0 on, an incompatible change to its API comes only with
// a new major version. Packages under internal/ are not part of the API.
package sessiongate
