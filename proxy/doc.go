// Package proxy is sessiongate's reverse proxy and forward-auth handler,
// built on the Gate (package middleware).
//
// A request flows: every inbound identity header (the configured prefix, in
// any case, with "_" or "-") is deleted → reserved paths (/_sessiongate/auth
// for forward-auth, /_sessiongate/webhooks/clerk) → the path must be clean
// (no dot or empty segments: 400) → the longest matching route (whole path
// segments, optional host) → its policy: public (no check), optional (claims
// when valid, anonymous otherwise), required (rejection with the outcome of
// docs/reason-codes.md, or a 307 to the sign-in page for browser navigations) and its
// organization requirements (403); on a route with a Handshake, requests
// without a Bearer token follow Clerk's browser cookie rules and expired
// sessions of navigations are renewed through Clerk's handshake
// (handshake.go) → Clerk's handshake cookies stripped → identity headers set → the upstream,
// through httputil.ReverseProxy with Rewrite (X-Forwarded-* set, WebSocket
// upgrades and SSE streams passed through, upstream failures answered 502 or
// 504 without internals).
//
// With Options.Connections, the WebSockets and streamed responses it passes
// through are tracked after the request (conns.go, websocket.go): closed
// when their session is revoked (WebSocket close code 4401), after a
// maximum lifetime (4408) and at shutdown (1001); see
// docs/sessions.md#long-lived-connections.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package proxy
