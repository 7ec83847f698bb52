// Package admin is sessiongate's admin listener in one place: its handler
// (NewHandler: the probes, /metrics, the session API and pprof, behind the
// admin and metrics tokens, and the browser refusal of a token-less
// listener), the session API's wire types both sides use, and the client
// `sessiongate sessions revoke` calls it with.
//
// The session API's endpoint is
//
//	POST /sessions/{sid}/revoke
//
// on the admin listener. The process's assembly (internal/app) only fills
// in a HandlerConfig: readiness, the metrics registry, the tokens.
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
