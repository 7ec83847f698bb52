package middleware

import (
	"errors"
	"net/http"
	"time"
)

// Reason is a stable, machine-readable rejection code. It is sent in the JSON
// body and the X-Clerk-Auth-Reason header; the strings follow Clerk's SDKs
// where Clerk has one. docs/reason-codes.md lists them all.
type Reason string

// The reason codes. Their strings are a public contract.
const (
	ReasonSessionTokenMissing      Reason = "session-token-missing"
	ReasonSessionTokenStale        Reason = "session-token-stale"
	ReasonTokenInvalid             Reason = "token-invalid"
	ReasonTokenInvalidAlgorithm    Reason = "token-invalid-algorithm"
	ReasonTokenInvalidSignature    Reason = "token-invalid-signature"
	ReasonKidMismatch              Reason = "jwk-kid-mismatch"
	ReasonTokenExpired             Reason = "token-expired"
	ReasonTokenNotActiveYet        Reason = "token-not-active-yet"
	ReasonTokenIatInTheFuture      Reason = "token-iat-in-the-future"
	ReasonTokenInvalidIssuer       Reason = "token-invalid-issuer"
	ReasonTokenInvalidParties      Reason = "token-invalid-authorized-parties"
	ReasonTokenTypeMismatch        Reason = "token-type-mismatch"
	ReasonSessionPending           Reason = "session-pending"
	ReasonSessionRevoked           Reason = "session-revoked"
	ReasonMissingOrg               Reason = "missing-org"
	ReasonMissingRole              Reason = "missing-role"
	ReasonMissingPermission        Reason = "missing-permission"
	ReasonTokenTypeNotAccepted     Reason = "token-type-not-accepted"
	ReasonMachineTokenInvalid      Reason = "machine-token-invalid"
	ReasonMachineTokenRevoked      Reason = "machine-token-revoked"
	ReasonMachineTokenExpired      Reason = "machine-token-expired"
	ReasonMissingScope             Reason = "missing-scope"
	ReasonMachineRateLimited       Reason = "machine-token-rate-limited"
	ReasonMachineUnavailable       Reason = "machine-token-verification-unavailable"
	ReasonMissingFeature           Reason = "missing-feature"
	ReasonMissingPlan              Reason = "missing-plan"
	ReasonReverificationRequired   Reason = "reverification-required"
	ReasonKeysUnavailable          Reason = "jwk-remote-failed-to-load"
	ReasonSessionStatusUnavailable Reason = "session-status-unavailable"
)

// Reasons lists every reason code, in the order of docs/reason-codes.md.
func Reasons() []Reason {
	return []Reason{
		ReasonSessionTokenMissing, ReasonSessionTokenStale, ReasonTokenInvalid,
		ReasonTokenInvalidAlgorithm, ReasonTokenInvalidSignature, ReasonKidMismatch,
		ReasonTokenExpired, ReasonTokenNotActiveYet, ReasonTokenIatInTheFuture,
		ReasonTokenInvalidIssuer, ReasonTokenInvalidParties, ReasonTokenTypeMismatch,
		ReasonSessionPending, ReasonSessionRevoked,
		ReasonTokenTypeNotAccepted, ReasonMachineTokenInvalid, ReasonMachineTokenRevoked, ReasonMachineTokenExpired,
		ReasonMissingOrg, ReasonMissingRole, ReasonMissingPermission,
		ReasonMissingFeature, ReasonMissingPlan, ReasonReverificationRequired, ReasonMissingScope,
		ReasonMachineRateLimited,
		ReasonKeysUnavailable, ReasonSessionStatusUnavailable, ReasonMachineUnavailable,
	}
}

// Status is the HTTP status that goes with a reason: 403 for authorization
// failures, 503 when sessiongate cannot decide, 401 for everything else.
func (r Reason) Status() int {
	switch r {
	case ReasonMissingOrg, ReasonMissingRole, ReasonMissingPermission,
		ReasonMissingFeature, ReasonMissingPlan, ReasonReverificationRequired, ReasonMissingScope:
		return http.StatusForbidden
	case ReasonMachineRateLimited:
		return http.StatusTooManyRequests
	case ReasonKeysUnavailable, ReasonSessionStatusUnavailable, ReasonMachineUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnauthorized
	}
}

// ErrorCode is the "error" member of the JSON body for the reason's status:
// "unauthenticated", "forbidden" or "unavailable".
func (r Reason) ErrorCode() string {
	switch r.Status() {
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusTooManyRequests:
		return "rate-limited"
	default:
		return "unauthenticated"
	}
}

// Error is a rejection: a reason code, a message that is safe to show a
// client, and the cause for logs. Its text MUST NOT contain a token, a cookie
// value or a secret key, and neither may Message.
type Error struct {
	// Reason is the rejection code: it decides the status (Reason.Status)
	// and is sent in the body and the X-Clerk-Auth-Reason header.
	Reason Reason
	// Message says in words what is wrong, for the client: WriteError
	// sends it as the body's message. May be empty.
	Message string
	// Err is the underlying cause, if any (for errors.Is/As and logs).
	Err error
	// Reverification is the unmet requirement of a reverification-required
	// rejection; WriteError sends it in Clerk's clerk_error body member.
	Reverification *Reverification
	// RetryAfter, on a 429 or 503, is how long the client should wait;
	// zero means RetryAfterSeconds.
	RetryAfter time.Duration
}

// Error is "middleware: ", the Reason and, when there is one, ": " and the
// Message.
func (e *Error) Error() string {
	if e.Message == "" {
		return "middleware: " + string(e.Reason)
	}
	return "middleware: " + string(e.Reason) + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every *Error match the sentinel of its reason, so that callers can
// write errors.Is(err, middleware.ErrTokenExpired).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Reverification == nil && t.RetryAfter == 0 && t.Reason == e.Reason
}

// Sentinels, one per reason, for errors.Is. Returned errors are *Error values
// with a message; they match these by reason.
var (
	ErrSessionTokenMissing      = &Error{Reason: ReasonSessionTokenMissing}
	ErrSessionTokenStale        = &Error{Reason: ReasonSessionTokenStale}
	ErrTokenInvalid             = &Error{Reason: ReasonTokenInvalid}
	ErrTokenInvalidAlgorithm    = &Error{Reason: ReasonTokenInvalidAlgorithm}
	ErrTokenInvalidSignature    = &Error{Reason: ReasonTokenInvalidSignature}
	ErrKidMismatch              = &Error{Reason: ReasonKidMismatch}
	ErrTokenExpired             = &Error{Reason: ReasonTokenExpired}
	ErrTokenNotActiveYet        = &Error{Reason: ReasonTokenNotActiveYet}
	ErrTokenIatInTheFuture      = &Error{Reason: ReasonTokenIatInTheFuture}
	ErrTokenInvalidIssuer       = &Error{Reason: ReasonTokenInvalidIssuer}
	ErrTokenInvalidParties      = &Error{Reason: ReasonTokenInvalidParties}
	ErrTokenTypeMismatch        = &Error{Reason: ReasonTokenTypeMismatch}
	ErrSessionPending           = &Error{Reason: ReasonSessionPending}
	ErrSessionRevoked           = &Error{Reason: ReasonSessionRevoked}
	ErrMissingOrg               = &Error{Reason: ReasonMissingOrg}
	ErrMissingRole              = &Error{Reason: ReasonMissingRole}
	ErrMissingPermission        = &Error{Reason: ReasonMissingPermission}
	ErrTokenTypeNotAccepted     = &Error{Reason: ReasonTokenTypeNotAccepted}
	ErrMachineTokenInvalid      = &Error{Reason: ReasonMachineTokenInvalid}
	ErrMachineTokenRevoked      = &Error{Reason: ReasonMachineTokenRevoked}
	ErrMachineTokenExpired      = &Error{Reason: ReasonMachineTokenExpired}
	ErrMissingScope             = &Error{Reason: ReasonMissingScope}
	ErrMachineRateLimited       = &Error{Reason: ReasonMachineRateLimited}
	ErrMachineUnavailable       = &Error{Reason: ReasonMachineUnavailable}
	ErrMissingFeature           = &Error{Reason: ReasonMissingFeature}
	ErrMissingPlan              = &Error{Reason: ReasonMissingPlan}
	ErrReverificationRequired   = &Error{Reason: ReasonReverificationRequired}
	ErrKeysUnavailable          = &Error{Reason: ReasonKeysUnavailable}
	ErrSessionStatusUnavailable = &Error{Reason: ReasonSessionStatusUnavailable}
)

func reject(reason Reason, msg string) *Error { return &Error{Reason: reason, Message: msg} }

func rejectErr(reason Reason, msg string, cause error) *Error {
	return &Error{Reason: reason, Message: msg, Err: cause}
}

// Outcome maps any error from the Gate to its reason. An error that is not an
// *Error (which the Gate never returns) is treated as token-invalid: an
// unknown failure MUST NOT let a request through.
func Outcome(err error) (status int, reason Reason, message string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason.Status(), e.Reason, e.Message
	}
	return http.StatusUnauthorized, ReasonTokenInvalid, "the session token could not be verified"
}
