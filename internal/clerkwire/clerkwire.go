// Package clerkwire holds the facts of Clerk's wire formats that several
// of sessiongate's packages (the gate, the handshake, the Backend API
// client, the fake Clerk instance, configuration and the admin API) must
// agree on, each defined once: cookie names, the API version, the shape of
// a session id and the spelling of organization roles and permissions.
//
// The public packages re-export what their callers need
// (middleware.SessionCookie, clerkapi.DefaultAPIVersion, …); this package
// is where the values live.
package clerkwire

import "strings"

// Cookie names of Clerk's browser SDK and Frontend API.
const (
	// SessionCookie holds the session token. A suffixed copy,
	// SessionCookie + "_" + the publishable key's cookie suffix, sits
	// beside it on multi-instance hosts.
	SessionCookie        = "__session"
	ClientUATCookie      = "__client_uat"
	RefreshCookie        = "__refresh"
	DevBrowserCookie     = "__clerk_db_jwt"
	HandshakeCookie      = "__clerk_handshake"
	HandshakeNonceCookie = "__clerk_handshake_nonce"
)

// APIVersion is the Clerk API version sessiongate implements: sent as
// Clerk-API-Version to the Backend API and as __clerk_api_version on a
// handshake redirect, and assumed by the fake instance when a request
// names none.
const APIVersion = "2026-05-12"

// SessionIDShape describes, for messages, the ids ValidSessionID accepts.
const SessionIDShape = "sess_ and 1 to 64 letters or digits"

// maxSessionIDChars bounds the part after "sess_". Clerk's are 27 base62
// characters; the bound keeps ids from clients (paths, webhooks, Redis
// messages) small.
const maxSessionIDChars = 64

// ValidSessionID reports whether s is a Clerk session id: "sess_" and 1 to
// 64 ASCII letters or digits. It is checked on the sid of a session token,
// on ids that reach the deny list (admin API, CLI, webhooks, Redis) and
// before an id goes into a Backend API path, so an id one of them accepts
// is accepted by all.
func ValidSessionID(s string) bool {
	rest, ok := strings.CutPrefix(s, "sess_")
	if !ok || rest == "" || len(rest) > maxSessionIDChars {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// OrgPrefix starts the organization role and permission names of Clerk's
// claims ("org:admin", "org:docs:read"). Clerk's v2 session tokens carry
// the role without it ("admin").
const OrgPrefix = "org:"

// OrgName writes an organization role or permission as the claims carry
// it: "admin" becomes "org:admin"; "" and a name that has the prefix are
// returned as they are.
func OrgName(name string) string {
	if name == "" || strings.HasPrefix(name, OrgPrefix) {
		return name
	}
	return OrgPrefix + name
}

// SameOrgName reports whether have, a name from the claims (with the
// prefix), is want, written with or without the prefix: "admin" and
// "org:admin" are one name. It is OrgName(want) == have without
// allocating.
func SameOrgName(have, want string) bool {
	if strings.HasPrefix(want, OrgPrefix) {
		return have == want
	}
	return len(have) == len(OrgPrefix)+len(want) && strings.HasPrefix(have, OrgPrefix) && have[len(OrgPrefix):] == want
}

// ShortOrgName is name without the prefix, as v2 session tokens carry a
// role ("org:admin" → "admin").
func ShortOrgName(name string) string { return strings.TrimPrefix(name, OrgPrefix) }
