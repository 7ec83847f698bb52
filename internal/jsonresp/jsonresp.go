// Package jsonresp writes the JSON answers sessiongate gives itself, as
// opposed to the upstream's: one writer, and one body shape for every
// error, the one docs/reason-codes.md documents:
//
//	{"error":"unauthenticated","reason":"token-expired","message":"…"}
//
// The gate's rejections, the proxy's own refusals and the admin listener's
// errors all use it. The webhook endpoint's acknowledgements keep their
// documented {"ok":…} body, written by Write.
package jsonresp

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the body of every error sessiongate answers itself.
type ErrorBody struct {
	// Error names the kind of answer, one per status: "unauthenticated",
	// "forbidden", "bad_request", "not_found", "unavailable", ….
	Error string `json:"error"`
	// Reason is the stable reason code (docs/reason-codes.md), when the
	// answer has one.
	Reason string `json:"reason,omitempty"`
	// Message is for people, and MUST NOT carry a token, a cookie or a
	// secret.
	Message string `json:"message"`
	// ClerkError is the clerk_error member Clerk's backend SDKs send with
	// reverification-required, which Clerk's frontend reads. Nil: absent.
	ClerkError any `json:"clerk_error,omitempty"`
}

// Write answers status with v as JSON and a final newline, with
// Content-Type: application/json and Cache-Control: no-store (answers about
// one client's credentials or one process's state are never shared).
func Write(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteError answers status with b, written by Write, adding
// X-Content-Type-Options: nosniff and, when b has a reason, the reason in
// X-Clerk-Auth-Reason, as Clerk's SDKs send it.
func WriteError(w http.ResponseWriter, status int, b ErrorBody) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if b.Reason != "" {
		h.Set("X-Clerk-Auth-Reason", b.Reason)
	}
	Write(w, status, b)
}
