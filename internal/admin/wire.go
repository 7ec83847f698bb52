// Package admin is sessiongate's admin session API in one place: the wire
// types both sides use, the server's handler for the admin listener, and
// the client `sessiongate sessions revoke` calls it with.
//
// The endpoint is
//
//	POST /sessions/{sid}/revoke
//
// on the admin listener. The admin token check (and the browser refusal of
// a token-less listener) stays with the listener's assembly in
// internal/app, which wraps the handler this package returns.
package admin

// RevokePattern is the ServeMux pattern of the revoke endpoint.
const RevokePattern = "POST /sessions/{sid}/revoke"

// Values of RevokeReply.Clerk.
const (
	// ClerkRevoked: Clerk confirmed the revocation.
	ClerkRevoked = "revoked"
	// ClerkSkipped: the gate has no secret key, so Clerk was not told.
	ClerkSkipped = "skipped: no clerk.secret_key configured"
)

// RevokeReply is the revoke endpoint's JSON body, on success (200) and
// when Clerk did not confirm (502, with Error and Message). Fields are in
// alphabetical order of their JSON names, the order the body has always
// had. A malformed session id is answered 400 in the common error shape
// (jsonresp.ErrorBody), which decodes into this struct as well.
type RevokeReply struct {
	// Clerk is ClerkRevoked or ClerkSkipped; absent on an error.
	Clerk string `json:"clerk,omitempty"`
	// DeniedLocally is true once the gate denies the session.
	DeniedLocally bool `json:"denied_locally"`
	// DeniedUntil is when the local denial ends (RFC 3339, UTC).
	DeniedUntil string `json:"denied_until"`
	// Error is the error kind ("bad_gateway", "bad_request", …).
	Error string `json:"error,omitempty"`
	// Message is for people.
	Message string `json:"message,omitempty"`
	// SessionID is the session the request named.
	SessionID string `json:"session_id"`
	// Status is the session's status at Clerk after the revocation.
	Status string `json:"status,omitempty"`
}
