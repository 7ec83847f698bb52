package clerkapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
)

const maxNonceBytes = 1024

var (
	epHandshakePayload = endpoint{http.MethodGet, "/v1/clients/handshake_payload"}
	epJWKS             = endpoint{http.MethodGet, "/v1/jwks"}

	// nonceRE accepts URL-safe and base64 characters; the value is
	// query-escaped anyway.
	nonceRE = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]+$`)
)

// GetHandshakePayload returns the handshake directives (Set-Cookie values)
// Clerk stored under nonce: GET /v1/clients/handshake_payload?nonce=…,
// answering {"directives": […]}. The spec lists the path without describing
// it; this follows Clerk's JavaScript backend. The directives carry session
// tokens: do not log them.
func (c *Client) GetHandshakePayload(ctx context.Context, nonce string) ([]string, error) {
	ep := epHandshakePayload
	if len(nonce) > maxNonceBytes || !nonceRE.MatchString(nonce) {
		return nil, invalid(ep, "nonce must be 1..%d bytes matching %s (got %d bytes)", maxNonceBytes, nonceRE, len(nonce))
	}
	data, err := c.do(ctx, request{ep: ep, path: "/v1/clients/handshake_payload", query: url.Values{"nonce": {nonce}}})
	if err != nil {
		return nil, err
	}
	var p struct {
		Directives *[]string `json:"directives"`
	}
	if err := decode(ep, data, &p); err != nil {
		return nil, err
	}
	if p.Directives == nil {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: no \"directives\"", ep)
	}
	return *p.Directives, nil
}

// JWKS returns the instance's JSON Web Key Set as sent: GET /v1/jwks. It
// checks only that the body is a JSON object with a "keys" array; parsing
// the keys is the jwks package's job.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	data, err := c.do(ctx, request{ep: epJWKS, path: "/v1/jwks"})
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := decode(epJWKS, data, &set); err != nil {
		return nil, err
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: no \"keys\" array", epJWKS)
	}
	return data, nil
}
