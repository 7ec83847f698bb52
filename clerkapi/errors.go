package clerkapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinels for errors.Is. An *APIError matches the one its status maps to.
var (
	// ErrInvalidParams reports a call refused before any request was made: a
	// malformed ID, an out-of-range number, a missing required filter. A 400
	// or 422 from Clerk is an *APIError and does not match it.
	ErrInvalidParams = errors.New("clerkapi: invalid parameters")

	// ErrNotFound matches a 404 from Clerk.
	ErrNotFound = errors.New("clerkapi: not found")

	// ErrUnauthorized matches a 401 or 403 from Clerk: a wrong, revoked or
	// under-privileged secret key, or a key for another instance.
	ErrUnauthorized = errors.New("clerkapi: unauthorized")

	// ErrRateLimited matches a 429 from Clerk that was not (or no longer)
	// retried. APIError.RetryAfter says when Clerk will accept the call.
	ErrRateLimited = errors.New("clerkapi: rate limited")

	// ErrEndpointGone matches a 410 from Clerk: the endpoint does not exist
	// in the Clerk-API-Version sent (see Client.Verify and DeprecatedError).
	ErrEndpointGone = errors.New("clerkapi: endpoint gone")

	// ErrTooManyPages is yielded by ListAll when it stops after
	// MaxListAllPages full pages without reaching the end of the list.
	ErrTooManyPages = errors.New("clerkapi: too many pages")
)

// ErrorDetail is one entry of Clerk's ClerkErrors "errors" array.
type ErrorDetail struct {
	// Code is Clerk's machine-readable code, e.g. "resource_not_found".
	Code string `json:"code"`
	// Message is a short human-readable message.
	Message string `json:"message"`
	// LongMessage is a longer human-readable message.
	LongMessage string `json:"long_message"`
	// Meta is Clerk's free-form "meta" object, as sent (nil when absent).
	Meta json.RawMessage `json:"meta,omitempty"`
}

// APIError is a non-2xx response from Clerk's Backend API. Like
// golang.org/x/oauth2's RetrieveError it carries the data for the caller to
// inspect; errors.Is maps its status to ErrNotFound (404), ErrUnauthorized
// (401, 403), ErrRateLimited (429) and ErrEndpointGone (410).
//
// Every string in it comes from the response with the secret key scrubbed
// and non-printable characters removed.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Errors is Clerk's error list. For a body that is not ClerkErrors JSON
	// it holds one entry whose Message is a sanitized snippet of at most
	// 200 bytes; for an empty body it is empty.
	Errors []ErrorDetail
	// TraceID is the body's clerk_trace_id, else the Clerk-Trace-Id header,
	// else the Cf-Ray header. Quote it to Clerk support.
	TraceID string
	// RetryAfter is the Retry-After header of a 429 or 503, uncapped; zero
	// when absent or unparsable.
	RetryAfter time.Duration
	// Endpoint is the route template called, e.g. "GET /v1/sessions/{id}".
	Endpoint string
}

// Error returns e.g.
// "clerkapi: GET /v1/sessions/{id}: 404 resource_not_found: Session not found (trace abc)".
func (e *APIError) Error() string {
	return "clerkapi: " + e.Endpoint + ": " + e.detail()
}

// detail is Error without the prefix and endpoint.
func (e *APIError) detail() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if len(e.Errors) == 0 {
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteString(" " + t)
		}
	} else {
		d := e.Errors[0]
		msg := d.Message
		if msg == "" {
			msg = d.LongMessage
		}
		switch {
		case d.Code != "" && msg != "":
			b.WriteString(" " + d.Code + ": " + msg)
		case d.Code != "":
			b.WriteString(" " + d.Code)
		case msg != "":
			b.WriteString(" " + msg)
		}
		if n := len(e.Errors) - 1; n > 0 {
			fmt.Fprintf(&b, " (and %d more)", n)
		}
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	if e.TraceID != "" {
		b.WriteString(" (trace " + e.TraceID + ")")
	}
	return b.String()
}

// Is reports whether target is the sentinel e's status maps to.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrEndpointGone:
		return e.StatusCode == http.StatusGone
	}
	return false
}

// DeprecatedError is returned by Client.Verify when Clerk answers 410: the
// verify endpoint is absent from Clerk-API-Version 2025-04-10 onward. It
// matches ErrEndpointGone and unwraps to the *APIError.
type DeprecatedError struct {
	// Endpoint is the route template, "POST /v1/sessions/{id}/verify".
	Endpoint string
	// APIVersion is the Clerk-API-Version the client sent.
	APIVersion string
	// Err is Clerk's 410 response.
	Err *APIError
}

// Error says the endpoint is gone and what to use instead.
func (e *DeprecatedError) Error() string {
	return "clerkapi: " + e.Endpoint + " is gone from Clerk API versions >= 2025-04-10 (sent " +
		e.APIVersion + "); verify the session token networklessly (JWKS) and call Get for the session's status: " +
		e.Err.detail()
}

// Unwrap returns the 410 *APIError.
func (e *DeprecatedError) Unwrap() error { return e.Err }

// invalid returns an ErrInvalidParams error. The message MUST NOT echo the
// rejected value: a caller may have passed a token or key by mistake.
func invalid(ep endpoint, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidParams, ep, fmt.Sprintf(format, args...))
}

// sanitize keeps printable runes (spaces for whitespace) and cuts s to at
// most max bytes on a rune boundary, so server text cannot forge log lines.
func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			continue
		case unicode.IsSpace(r):
			r = ' '
		case !unicode.IsPrint(r):
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
