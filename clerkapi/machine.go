package clerkapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Machine credentials: verification of API keys, M2M tokens and OAuth
// access tokens (the Backend API's /v1/api_keys/verify,
// /v1/m2m_tokens/verify and /v1/oauth_applications/access_tokens/verify).
// None of these calls is retried: a verification is on a request's path,
// and the caller decides what a failure means. The credential is sent in
// the JSON body only and scrubbed from anything the server echoes.

var (
	epVerifyAPIKey     = endpoint{http.MethodPost, "/v1/api_keys/verify"}
	epVerifyM2MToken   = endpoint{http.MethodPost, "/v1/m2m_tokens/verify"}
	epVerifyOAuthToken = endpoint{http.MethodPost, "/v1/oauth_applications/access_tokens/verify"}
)

// APIKey is the verify answer for an API key (the spec's 200 body).
type APIKey struct {
	Object           string          `json:"object"`            // "api_key"
	ID               string          `json:"id"`                // ak_…
	Type             string          `json:"type"`              // the key's kind, "api_key"
	Subject          string          `json:"subject"`           // user_…, org_… or mch_…
	Name             string          `json:"name"`              // the name given at creation
	Description      *string         `json:"description"`       // nil: none
	Claims           json.RawMessage `json:"claims"`            // custom claims set on the key; JSON null: none
	Scopes           []string        `json:"scopes"`            // the scopes granted
	Revoked          bool            `json:"revoked"`           // revoked at Clerk: the key no longer works
	RevocationReason *string         `json:"revocation_reason"` // why, when Revoked; nil: not given
	Expired          bool            `json:"expired"`           // past Expiration: the key no longer works
	// Expiration is when the key expires, in Unix milliseconds; nil: never.
	Expiration *int64  `json:"expiration"`
	CreatedBy  *string `json:"created_by"`   // the user_… who created it; nil: not a user
	LastUsedAt *int64  `json:"last_used_at"` // Unix milliseconds; nil: never used
	CreatedAt  int64   `json:"created_at"`   // Unix milliseconds
	UpdatedAt  int64   `json:"updated_at"`   // Unix milliseconds
}

// M2MToken is the verify answer for an opaque M2M token.
type M2MToken struct {
	Object           string          `json:"object"`            // "machine_to_machine_token"
	ID               string          `json:"id"`                // mt_…
	Subject          string          `json:"subject"`           // mch_…
	Claims           json.RawMessage `json:"claims"`            // custom claims set on the token; JSON null: none
	Scopes           []string        `json:"scopes"`            // the machines it may call
	Revoked          bool            `json:"revoked"`           // revoked at Clerk: the token no longer works
	RevocationReason *string         `json:"revocation_reason"` // why, when Revoked; nil: not given
	Expired          bool            `json:"expired"`           // past Expiration: the token no longer works
	Expiration       *int64          `json:"expiration"`        // Unix milliseconds
	LastUsedAt       *int64          `json:"last_used_at"`      // Unix milliseconds; nil: never used
	CreatedAt        int64           `json:"created_at"`        // Unix milliseconds
	UpdatedAt        int64           `json:"updated_at"`        // Unix milliseconds
}

// OAuthAccessToken is the verify answer for an OAuth access token. For a
// JWT access token that is no longer active, Clerk answers {"active":
// false}: Active is then false and the other fields empty.
type OAuthAccessToken struct {
	Object           string   `json:"object"`            // "clerk_idp_oauth_access_token"
	ID               string   `json:"id"`                // oat_…
	ClientID         string   `json:"client_id"`         // the OAuth application it was issued to
	Subject          string   `json:"subject"`           // user_…
	Scopes           []string `json:"scopes"`            // the scopes granted
	Revoked          bool     `json:"revoked"`           // revoked at Clerk: the token no longer works
	RevocationReason *string  `json:"revocation_reason"` // why, when Revoked; nil: not given
	Expired          bool     `json:"expired"`           // past Expiration: the token no longer works
	Expiration       *int64   `json:"expiration"`        // Unix milliseconds
	CreatedAt        int64    `json:"created_at"`        // Unix milliseconds
	UpdatedAt        int64    `json:"updated_at"`        // Unix milliseconds
	Active           *bool    `json:"active"`            // false: an inactive JWT access token; nil otherwise
}

// VerifyAPIKey verifies an API key secret (ak_…): POST
// /v1/api_keys/verify {"secret"}. Clerk answers 404 for an unknown secret,
// and 200 with Revoked or Expired set for one that no longer works.
func (c *Client) VerifyAPIKey(ctx context.Context, secret string) (*APIKey, error) {
	var k APIKey
	if err := c.verify(ctx, epVerifyAPIKey, map[string]string{"secret": secret}, secret, &k); err != nil {
		return nil, err
	}
	if k.ID == "" {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: not an API key (no id)", epVerifyAPIKey)
	}
	return &k, nil
}

// VerifyM2MToken verifies an opaque M2M token (mt_…): POST
// /v1/m2m_tokens/verify {"token"}. The Client may be built with the
// instance's secret key (any token of the instance) or with a machine's
// secret key (tokens granted to that machine).
func (c *Client) VerifyM2MToken(ctx context.Context, token string) (*M2MToken, error) {
	var t M2MToken
	if err := c.verify(ctx, epVerifyM2MToken, map[string]string{"token": token}, token, &t); err != nil {
		return nil, err
	}
	if t.ID == "" {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: not an M2M token (no id)", epVerifyM2MToken)
	}
	return &t, nil
}

// VerifyOAuthAccessToken verifies an OAuth access token: POST
// /v1/oauth_applications/access_tokens/verify {"access_token"}.
func (c *Client) VerifyOAuthAccessToken(ctx context.Context, token string) (*OAuthAccessToken, error) {
	var t OAuthAccessToken
	if err := c.verify(ctx, epVerifyOAuthToken, map[string]string{"access_token": token}, token, &t); err != nil {
		return nil, err
	}
	if t.ID == "" && (t.Active == nil || *t.Active) {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: not an OAuth access token (no id)", epVerifyOAuthToken)
	}
	return &t, nil
}

func (c *Client) verify(ctx context.Context, ep endpoint, body map[string]string, secret string, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("clerkapi: %s: %w", ep, err)
	}
	data, err := c.do(ctx, request{ep: ep, path: ep.route, body: b, redact: []string{secret}})
	if err != nil {
		return err
	}
	return decode(ep, c.scrub(data, []string{secret}), v)
}
