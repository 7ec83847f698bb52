package handshake

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// cookie returns the first cookie named name ("" when absent), as Clerk's
// cookie parser does.
func cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

func (h *Handshaker) suffixedName(name string) string { return name + "_" + h.suffix }

// SuffixedName returns name with the instance's cookie suffix
// ("__session" → "__session_<suffix>").
func (h *Handshaker) SuffixedName(name string) string { return h.suffixedName(name) }

// UsesSuffixedCookies reports whether r's session is read from the suffixed
// cookies (__session_<suffix>, __client_uat_<suffix>) by Clerk's rules.
func (h *Handshaker) UsesSuffixedCookies(r *http.Request) bool { return h.usesSuffixedCookies(r) }

// usesSuffixedCookies is Clerk's choice between __session_<suffix> /
// __client_uat_<suffix> and the unsuffixed names (authenticateContext.ts
// usesSuffixedCookies, rules numbered in its order); rule 6 applies to
// development instances only.
func (h *Handshaker) usesSuffixedCookies(r *http.Request) bool {
	session := cookie(r, SessionCookie)
	clientUAT := cookie(r, ClientUATCookie)
	sSession := cookie(r, h.suffixedName(SessionCookie))
	sClientUAT := cookie(r, h.suffixedName(ClientUATCookie))

	var ut *unverified
	if session != "" {
		var ok bool
		ut, ok = decodeUnverified(session)
		// 1. A malformed unsuffixed token (no iss) ends signed-out, not in
		// a handshake: use the unsuffixed cookies.
		if !ok || !ut.hasIss {
			return false
		}
		// 2. An unsuffixed token of another instance (another app on the
		// same domain): trust the suffixed cookies.
		if issuerHost(ut.iss) != h.fapi {
			return true
		}
	}
	// 3. No suffixed cookies.
	if sClientUAT == "" && sSession == "" {
		return false
	}
	var sessionIAT, sSessionIAT int64
	if ut != nil {
		sessionIAT = ut.iat
	}
	su, suOK := decodeUnverified(sSession)
	if suOK {
		sSessionIAT = su.iat
	}
	// 4. Both signed in, the unsuffixed token is newer.
	if sClientUAT != "0" && clientUAT != "0" && sessionIAT > sSessionIAT {
		return false
	}
	// 5. Suffixed signed out, unsuffixed signed in.
	if sClientUAT == "0" && clientUAT != "0" {
		return false
	}
	// 6. Development: suffixed signed in, unsuffixed signed out, and the
	// suffixed session expired. clerk-js, not the Frontend API, sets the
	// suffixed __client_uat there, and an older clerk-js stops updating it.
	if !h.production && sClientUAT != "0" && clientUAT == "0" && suOK && su.hasExp && su.exp <= h.now().Unix() {
		return false
	}
	// 7. A suffixed session without its __client_uat: the Frontend API has
	// suffixed cookies disabled.
	if sClientUAT == "" && sSession != "" {
		return false
	}
	// 8.
	return true
}

// issuerHost strips Clerk's "https?://" from an iss, as the SDK compares it.
func issuerHost(iss string) string {
	lower := strings.ToLower(iss)
	switch {
	case strings.HasPrefix(lower, "https://"):
		return iss[len("https://"):]
	case strings.HasPrefix(lower, "http://"):
		return iss[len("http://"):]
	}
	return iss
}

// parseUAT reads __client_uat like JS parseInt(v) || 0: the leading digits,
// 0 for anything else.
func parseUAT(v string) int64 {
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<62)/10 {
			return n // absurdly large: saturate rather than overflow
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// unverified is what the cookie path reads from a session token before
// verifying it: only for choosing cookies and the stale check; the Gate
// verifies everything before a request is let through.
type unverified struct {
	iss    string
	hasIss bool
	iat    int64
	hasIat bool
	exp    int64
	hasExp bool
	nbf    int64
	hasNbf bool
	sub    string
	typ    string
	cat    string
}

// decodeUnverified decodes a compact JWT's header and payload without
// checking anything but their shape, like Clerk's decodeJwt.
func decodeUnverified(tok string) (*unverified, bool) {
	if tok == "" || len(tok) > 16<<10 {
		return nil, false
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return nil, false
	}
	pay, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var h struct {
		Typ any `json:"typ"`
		Cat any `json:"cat"`
	}
	if json.Unmarshal(hdr, &h) != nil {
		return nil, false
	}
	var p struct {
		Iss any `json:"iss"`
		Iat any `json:"iat"`
		Exp any `json:"exp"`
		Nbf any `json:"nbf"`
		Sub any `json:"sub"`
	}
	if json.Unmarshal(pay, &p) != nil {
		return nil, false
	}
	u := &unverified{}
	u.typ, _ = h.Typ.(string)
	u.cat, _ = h.Cat.(string)
	if s, ok := p.Iss.(string); ok && s != "" {
		u.iss, u.hasIss = s, true
	}
	if f, ok := p.Iat.(float64); ok && f > 0 && f < 1<<53 {
		u.iat, u.hasIat = int64(f), true
	}
	if f, ok := p.Exp.(float64); ok && f > 0 && f < 1<<53 {
		u.exp, u.hasExp = int64(f), true
	}
	if f, ok := p.Nbf.(float64); ok && f > 0 && f < 1<<53 {
		u.nbf, u.hasNbf = int64(f), true
	}
	u.sub, _ = p.Sub.(string)
	return u, true
}

// machine reports a token that is not a session token by its header or
// subject: Clerk's machine tokens and any category but session/ignore.
func (u *unverified) machine() bool {
	switch u.typ {
	case "at+jwt", "application/at+jwt":
		return true
	}
	switch u.cat {
	case "", "cl_B7d4PD111AAA", "cl_I7d4PD111III":
	default:
		return true
	}
	return strings.HasPrefix(u.sub, "mch_") || strings.HasPrefix(u.sub, "oat_")
}

// validDomain accepts a DNS name for a cookie Domain attribute.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 || !strings.Contains(s, ".") || strings.HasSuffix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
