package clerkapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

var epRefreshSession = endpoint{http.MethodPost, "/v1/sessions/{id}/refresh"}

// maxRefreshTokenBytes bounds the refresh token and the expired session
// token sent: Clerk's are a few hundred bytes and a token of the Gate at most
// 16 KiB.
const maxRefreshTokenBytes = 16 << 10

// RefreshParams is what RefreshSession sends.
type RefreshParams struct {
	// ExpiredToken is the expired session token (its sid is the session).
	ExpiredToken string
	// RefreshToken is the __refresh_<suffix> cookie Clerk's Frontend API set.
	RefreshToken string
	// RequestOrigin is the page's origin (https://app.example.com).
	RequestOrigin string
	// RequestOriginatingIP is the browser's address, when known.
	RequestOriginatingIP string
	// RequestHeaders are headers of the browser's request Clerk may use
	// (User-Agent); nil sends none.
	RequestHeaders map[string][]string
	// SuffixedCookies asks for __session_<suffix>-style cookies too.
	SuffixedCookies bool
}

// RefreshSession renews an expired session token with the refresh token
// Clerk's Frontend API put in the browser: POST
// /v1/sessions/{id}/refresh?suffixed_cookies=…, body {"format":"cookie",
// "expired_token", "refresh_token", "request_origin", …}, answering
// {"object":"cookies","cookies":[Set-Cookie values…]}. Clerk answers 401
// when the refresh is refused, which signals a fall-back to the handshake.
// Both tokens are scrubbed from any error; the cookies carry a session
// token: do not log them. It is not retried on 5xx or network errors (a
// refresh token may be single-use).
func (c *Client) RefreshSession(ctx context.Context, sessionID string, p RefreshParams) ([]string, error) {
	ep := epRefreshSession
	if err := checkSessionID(ep, sessionID); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"expired_token", p.ExpiredToken}, {"refresh_token", p.RefreshToken}} {
		if f.v == "" || len(f.v) > maxRefreshTokenBytes {
			return nil, invalid(ep, "%s must be 1..%d bytes, got %d", f.name, maxRefreshTokenBytes, len(f.v))
		}
	}
	if p.RequestOrigin == "" {
		return nil, invalid(ep, "request_origin is required")
	}
	body, err := json.Marshal(struct {
		Format               string              `json:"format"`
		ExpiredToken         string              `json:"expired_token"`
		RefreshToken         string              `json:"refresh_token"`
		RequestOrigin        string              `json:"request_origin"`
		RequestOriginatingIP string              `json:"request_originating_ip,omitempty"`
		RequestHeaders       map[string][]string `json:"request_headers,omitempty"`
	}{"cookie", p.ExpiredToken, p.RefreshToken, p.RequestOrigin, p.RequestOriginatingIP, p.RequestHeaders})
	if err != nil {
		return nil, fmt.Errorf("clerkapi: %s: encoding request: %w", ep, err)
	}
	data, err := c.do(ctx, request{
		ep: ep, path: "/v1/sessions/" + url.PathEscape(sessionID) + "/refresh",
		query: url.Values{"suffixed_cookies": {strconv.FormatBool(p.SuffixedCookies)}},
		body:  body, redact: []string{p.ExpiredToken, p.RefreshToken},
	})
	if err != nil {
		return nil, err
	}
	var out struct {
		Cookies *[]string `json:"cookies"`
	}
	if err := decode(ep, data, &out); err != nil {
		return nil, err
	}
	if out.Cookies == nil {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: no \"cookies\"", ep)
	}
	return *out.Cookies, nil
}
