// Package clerktest runs a fake Clerk instance for tests: a loopback HTTP
// server that publishes a JWKS on both the Frontend API path
// (/.well-known/jwks.json, public) and the Backend API path (/v1/jwks, behind
// the secret key), and mints session tokens in Clerk's real formats (v2 and
// v1 claims, template and machine tokens) signed with keys it controls.
//
// It is meant for sessiongate's own tests, for users' tests of code that sits
// behind sessiongate, and for the `sessiongate dev` mode. Beyond well-formed
// tokens it can produce the malformed ones an authenticating proxy must
// reject (foreign keys, algorithm confusion, "none", raw headers and payloads,
// wrong claim types) and it can make its JWKS endpoints fail in the ways a real
// network does (errors, garbage, empty sets, slowness, resets, refused
// connections).
//
// It also serves the Backend API Sessions endpoints (list, get, revoke, the
// deprecated verify, create token with or without a JWT template) and the
// handshake payload from its session store, with Clerk's error bodies and
// their own failure behaviors (SetAPIBehavior), and it sends Svix-signed
// session webhooks (SendWebhook, WebhookRequest).
//
// For browsers it plays a production instance's Frontend API: a hosted
// sign-in page that sets __session, __client_uat and its own __client cookie,
// and the handshake endpoint GET /v1/client/handshake, which reads __client
// and sends the browser back with fresh session cookies (or their deletions)
// in a signed __clerk_handshake JWT or a __clerk_handshake_nonce
// (SetHandshakeFormat). PublishableKey names the fake as the Frontend API.
// With Options.Development it plays a development instance instead: dev
// browsers (POST /v1/dev_browser, __clerk_db_jwt) and payloads in the URL.
// StartSatellite serves a satellite domain's Frontend API beside it,
// SetRefreshTokens the __refresh flow (POST /v1/sessions/{id}/refresh), and
// every Frontend API endpoint checks requests that come through a Frontend
// API proxy (Clerk-Proxy-Url, Clerk-Secret-Key) as Clerk's does.
//
// An Instance is safe for concurrent use. The fake only ever listens on a
// loopback address: it MUST NOT be exposed, because anyone who can reach it
// can mint tokens it will vouch for.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. It is a test double of
// Clerk, so its API may grow with Clerk's: minor releases add endpoints,
// options and token formats as Clerk adds them.
package clerktest
