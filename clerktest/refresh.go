package clerktest

// The __refresh flow: Clerk's Frontend API may put a refresh token in the
// application's __refresh_<suffix> cookie; a backend SDK with an expired
// session token renews it without a redirect through the Backend API's
// POST /v1/sessions/{id}/refresh (format "cookie"), and falls back to the
// handshake when that answers 401.

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// RefreshCookie is the refresh-token cookie's name, always with the
// instance's suffix ("__refresh_<suffix>").
const RefreshCookie = clerkwire.RefreshCookie // "__refresh"

// SetRefreshTokens makes the handshake endpoint also set
// __refresh_<suffix> for a signed-in browser (the Frontend API's refresh
// tokens), which POST /v1/sessions/{id}/refresh accepts. Off by default.
func (i *Instance) SetRefreshTokens(on bool) {
	i.frontend.mu.Lock()
	defer i.frontend.mu.Unlock()
	i.frontend.refreshOn = on
}

// RefreshToken returns the refresh token of the client a session belongs
// to, as its handshake sets it ("" when there is none).
func (i *Instance) RefreshToken(sessionID string) string {
	return i.frontend.refreshFor(i.frontend.clientOf(sessionID), false)
}

// clientOf is the id of the browser client signed in to sessionID.
func (f *frontendState) clientOf(sessionID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.clients {
		if c.sessionID == sessionID {
			return id
		}
	}
	return ""
}

// refreshFor is clientID's refresh token, made when create is set.
func (f *frontendState) refreshFor(clientID string, create bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok, id := range f.refreshTokens {
		if id == clientID {
			return tok
		}
	}
	if !create || clientID == "" {
		return ""
	}
	if f.refreshTokens == nil {
		f.refreshTokens = map[string]string{}
	}
	tok := "rt_" + randomBase62(40)
	f.refreshTokens[tok] = clientID
	return tok
}

// refreshDirective is the __refresh_<suffix> directive of a signed-in
// browser's handshake, or "" when refresh tokens are off.
func (i *Instance) refreshDirective(clientID string, secure bool) string {
	i.frontend.mu.Lock()
	on := i.frontend.refreshOn
	i.frontend.mu.Unlock()
	if !on {
		return ""
	}
	return RefreshCookie + "_" + i.CookieSuffix() + "=" + i.frontend.refreshFor(clientID, true) + cookieAttrs(secure) + "; HttpOnly"
}

// serveSessionRefresh is POST /v1/sessions/{id}/refresh: the expired token
// must be the instance's (signature, issuer) and name the session; the
// refresh token must be its client's; the session must be active. Then a
// new token, as Set-Cookie values (format "cookie") or {"object":"token",
// "jwt"} (format "token"). Refusals are 401, Clerk's signal to fall back to
// the handshake.
func (i *Instance) serveSessionRefresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Format               string              `json:"format"`
		ExpiredToken         string              `json:"expired_token"`
		RefreshToken         string              `json:"refresh_token"`
		RequestOrigin        string              `json:"request_origin"`
		RequestHeaders       map[string][]string `json:"request_headers"`
		RequestOriginatingIP string              `json:"request_originating_ip"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	for _, f := range []struct{ name, v string }{{"expired_token", req.ExpiredToken}, {"refresh_token", req.RefreshToken}, {"request_origin", req.RequestOrigin}} {
		if f.v == "" {
			writeParamError(w, "form_param_missing", f.name, "is missing")
			return
		}
	}
	id := r.PathValue("id")
	s, ok := i.sessions.get(id)
	if !ok {
		writeSessionNotFound(w, "No session was found with id "+id)
		return
	}
	s = i.effective(s)
	refuse := func(msg string) {
		writeClerkError(w, http.StatusUnauthorized, "refresh_token_invalid", "Invalid refresh", msg)
	}
	if err := i.checkExpiredToken(req.ExpiredToken, s); err != nil {
		refuse(err.Error())
		return
	}
	i.frontend.mu.Lock()
	clientID, known := i.frontend.refreshTokens[req.RefreshToken]
	i.frontend.mu.Unlock()
	bc, live := i.clientByID(clientID)
	if !known || !live || bc.sessionID != s.ID {
		refuse("the refresh token is unknown, of another session, or its session ended")
		return
	}
	tok, err := i.Mint(append(bc.req.options(), WithSession(bc.sessionID))...)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if req.Format != "cookie" {
		writeJSON(w, http.StatusOK, struct {
			Object string `json:"object"`
			JWT    string `json:"jwt"`
		}{"token", tok})
		return
	}
	secure := strings.HasPrefix(req.RequestOrigin, "https://")
	cookies := []string{setDirective(SessionCookie, tok, secure)}
	if r.URL.Query().Get("suffixed_cookies") == "true" {
		cookies = append(cookies, setDirective(SessionCookie+"_"+i.CookieSuffix(), tok, secure))
	}
	writeJSON(w, http.StatusOK, struct {
		Object  string   `json:"object"`
		Cookies []string `json:"cookies"`
	}{"cookies", cookies})
}

// checkExpiredToken checks that tok is a session token of the instance for
// session s, expired or not: signature under a published key, issuer, sid
// and sub.
func (i *Instance) checkExpiredToken(tok string, s session) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("the expired token is not a compact JWS")
	}
	var header struct{ Alg, Kid string }
	var claims struct{ Sid, Sub, Iss string }
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return errors.New("the expired token is malformed")
	}
	var key *SigningKey
	for _, k := range i.keys.snapshot() {
		if k.ID == header.Kid && k.Algorithm == header.Alg {
			key = k
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if key == nil || err != nil {
		return errors.New("the expired token is not signed by the instance")
	}
	h, newHash := hashFor(header.Alg)
	d := newHash()
	d.Write([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&key.Private.PublicKey, h, d.Sum(nil), sig) != nil {
		return errors.New("the expired token's signature does not verify")
	}
	if claims.Iss != i.Issuer() || claims.Sid != s.ID || claims.Sub != s.UserID {
		return errors.New("the expired token does not belong to this session")
	}
	return nil
}
