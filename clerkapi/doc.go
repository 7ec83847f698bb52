// Package clerkapi is a client for the parts of Clerk's Backend API that
// sessiongate uses: the Sessions resource (list, get, revoke, the deprecated
// verify, create token), the instance JWKS and the handshake payload.
//
// The contract is Clerk's OpenAPI spec (bapi/2026-05-12.yml, Sessions paths,
// Session, ClerkErrors, GetJWKS). Where the spec is silent the client follows
// what Clerk's own SDKs send and accept: List always sends paginated=true and
// decodes both the spec's plain array and the {"data","total_count"} shape.
//
// Every call is checked before any request is made: IDs must match Clerk's
// prefixes (sess_, client_, user_), template names a short safe charset, and
// numeric parameters their documented ranges. A refused call returns an error
// wrapping ErrInvalidParams. IDs are path-escaped anyway.
//
// Errors from Clerk are *APIError values carrying the status, Clerk's error
// list and its trace id; callers branch with errors.Is on ErrNotFound,
// ErrUnauthorized, ErrRateLimited and ErrEndpointGone, and read the data
// with errors.As. Network errors name the route template, never the URL.
//
// Retries: a 429 means Clerk did not process the request, so every call
// retries it after Retry-After (when that fits in MaxRetryAfter and in the
// context's deadline). 5xx responses and network errors are retried with
// capped, jittered exponential backoff only for GET calls; POST calls
// (Revoke, Verify, CreateToken) may already have taken effect and are never
// retried on them. Config.MaxRetries bounds every loop.
//
// The secret key MUST NOT appear in any error or log line: it is sent only
// in the Authorization header, is scrubbed from every response body before
// the body is read into an error, and a Client formats without it.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package clerkapi
