// Package handshake is the server side of Clerk's handshake for one request:
// the cookie path of the Gate for browsers, as Clerk's JavaScript backend
// (@clerk/backend authenticateRequest) runs it for production and
// development instances, on primary and satellite domains.
//
// A Handshaker looks at a request that carries no Authorization Bearer token
// and decides, in the order of Clerk's authenticateRequest:
//
//  1. a returning handshake (the __clerk_handshake or
//     __clerk_handshake_nonce cookie): its Set-Cookie directives are
//     verified (the JWT against the instance keys, or the nonce exchanged at
//     the Backend API), filtered, and the new session token is fully verified
//     before anyone sees its identity;
//  2. the suffixed or unsuffixed __session and __client_uat cookies, chosen
//     by Clerk's rules; then a satellite's sync, a development primary's
//     answer to one, and a development instance's dev-browser token
//     (satellite.go, dev.go);
//  3. an expired token with a __refresh cookie is refreshed at the Backend
//     API (refresh.go); a missing, stale, expired, not-yet-valid or
//     future-issued token on a
//     browser navigation (GET, Sec-Fetch-Dest document or iframe, or no
//     Sec-Fetch-Dest and Accept text/html) becomes a 307 to the Frontend
//     API's /v1/client/handshake, bounded by the __clerk_redirect_count
//     cookie; on any other request it is signed-out with the closest reason
//     of docs/reason-codes.md and Clerk's own reason in the message.
//
// A valid token of a primary domain's navigation from another site may take
// one handshake too (Clerk's cross-origin sync).
//
// The result is an Outcome: signed-in (claims, and the cookies to set on the
// page), signed-out (a *middleware.Error, and cookies), a redirect, or, for
// a development instance's payload that fails verification, Failed (500).
// The proxy package turns it into a response. A broken token never causes a
// redirect, production never answers 500, and the loop guard ends every
// chain of redirects signed-out.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package handshake
