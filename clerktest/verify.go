package clerktest

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// apiVersionRE is the shape of a Clerk-API-Version value.
var apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// serveSessionVerify is the deprecated POST /v1/sessions/{id}/verify. It
// answers per the Clerk-API-Version header (none means CurrentAPIVersion):
// from 2025-04-10 on, 410 deprecated_endpoint; before, it verifies body
// {"token"} against the published keys and the session: 200 Session, 400
// for a malformed body, a token that does not verify or belong to the session
// or a session that is not active, 404 for an unknown session.
func (i *Instance) serveSessionVerify(w http.ResponseWriter, r *http.Request) {
	version := r.Header.Get("Clerk-API-Version")
	if version == "" {
		version = CurrentAPIVersion
	}
	if !apiVersionRE.MatchString(version) {
		writeClerkError(w, http.StatusBadRequest, "api_version_invalid", "Invalid API version",
			"Clerk-API-Version must be a release date such as "+CurrentAPIVersion)
		return
	}
	if version >= verifyRemovedIn { // YYYY-MM-DD compares as a string
		writeClerkError(w, http.StatusGone, "deprecated_endpoint", "Endpoint deprecated",
			"POST /v1/sessions/{session_id}/verify is not available from API version "+verifyRemovedIn+
				" on; verify session tokens networklessly against the instance JWKS")
		return
	}
	var req struct {
		Token *string `json:"token"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	if req.Token == nil || *req.Token == "" {
		writeClerkError(w, http.StatusBadRequest, "form_param_missing", "token is missing", "token is missing")
		return
	}
	id := r.PathValue("id")
	s, ok := i.sessions.get(id)
	if !ok {
		writeSessionNotFound(w, "No session was found with id "+strconv.Quote(id))
		return
	}
	s = i.effective(s)
	if err := i.verifySessionToken(*req.Token, s); err != nil {
		writeClerkError(w, http.StatusBadRequest, "token_invalid", "Invalid token", err.Error())
		return
	}
	if s.Status != statusActive && s.Status != statusPending {
		writeClerkError(w, http.StatusBadRequest, "session_not_active", "Session not active",
			fmt.Sprintf("Session %s is %s", s.ID, s.Status))
		return
	}
	writeJSON(w, http.StatusOK, s.toJSON())
}

// verifySessionToken checks that tok is an RS-signed session token under a
// published key, currently valid by the instance clock, issued by the
// instance, for session s and its user.
func (i *Instance) verifySessionToken(tok string, s session) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("the token is not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Sid string   `json:"sid"`
		Sub string   `json:"sub"`
		Iss string   `json:"iss"`
		Exp *float64 `json:"exp"`
		Nbf *float64 `json:"nbf"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	var key *SigningKey
	for _, k := range i.keys.snapshot() {
		if k.ID == header.Kid {
			key = k
		}
	}
	if key == nil {
		return errors.New("no published key has the token's kid")
	}
	if header.Alg != key.Algorithm {
		return errors.New("the token's alg is not its key's")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("signature: not base64url")
	}
	h, newHash := hashFor(header.Alg)
	d := newHash()
	d.Write([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&key.Private.PublicKey, h, d.Sum(nil), sig) != nil {
		return errors.New("the signature does not verify")
	}
	now := float64(i.now().Unix())
	switch {
	case claims.Exp == nil || *claims.Exp <= now:
		return errors.New("the token has expired")
	case claims.Nbf != nil && *claims.Nbf > now:
		return errors.New("the token is not valid yet")
	case claims.Iss != i.Issuer():
		return errors.New("the token was not issued by this instance")
	case claims.Sid != s.ID || claims.Sub != s.UserID:
		return errors.New("the token does not belong to this session")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	return json.Unmarshal(b, v)
}
