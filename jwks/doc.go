// Package jwks provides the keys sessiongate verifies Clerk session tokens
// with: RSA public keys, each pinned to one algorithm (RS256, RS384 or RS512)
// and named by its kid.
//
// Three sources satisfy the middleware's one-method KeySource interface
// (Key(ctx, kid) (*Key, error)):
//
//   - Remote fetches a JWKS endpoint (Clerk's Backend API /v1/jwks or the
//     Frontend API /.well-known/jwks.json) at start, refreshes it in the
//     background, refetches on an unknown kid at most once per floor (shared
//     by all concurrent callers), and keeps the last good set through
//     failures until it is older than its MaxStale.
//   - Static holds one PEM public key configured by the operator (Clerk's
//     "JWT public key"); it never touches the network and, a PEM having no
//     kid, answers every kid with that key.
//   - Memory holds keys set by code, for tests and embedders.
//
// Every source returns errors wrapping ErrKeyNotFound (the kid is not in the
// set) or ErrUnavailable (no usable set). When a key leaves a set it is
// retired (Key.Retired), so a cache keyed on the *Key can drop what it
// verified; a key that stays unchanged keeps its pointer across refreshes.
//
// Each source is one Clerk instance's key set: there is no package-level
// state and no process-wide cache keyed by kid.
//
// The JWK parsing is delegated to github.com/lestrrat-go/jwx/v2, which is
// imported only by jwx.go, in this package and in the whole module: a move to
// jwx v3 changes that one file. Nothing else may import jwx.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package jwks
