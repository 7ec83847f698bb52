package clerkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// Limits of the Sessions calls.
const (
	// MaxListLimit is the largest page size Clerk accepts.
	MaxListLimit = 500
	// DefaultListAllPageSize is ListAll's page size when ListParams.Limit is 0.
	DefaultListAllPageSize = 100
	// MaxListAllPages bounds ListAll, so that a server that never ends a
	// list cannot keep it looping (100 pages of 500 are 50 000 sessions).
	MaxListAllPages = 100
	// MinTokenLifetime and MaxTokenLifetime bound CreateToken's
	// expiresInSeconds (the spec's 30..315360000).
	MinTokenLifetime = 30
	MaxTokenLifetime = 315360000

	maxVerifyTokenBytes = 16 << 10
)

var (
	epListSessions   = endpoint{http.MethodGet, "/v1/sessions"}
	epGetSession     = endpoint{http.MethodGet, "/v1/sessions/{id}"}
	epRevokeSession  = endpoint{http.MethodPost, "/v1/sessions/{id}/revoke"}
	epVerifySession  = endpoint{http.MethodPost, "/v1/sessions/{id}/verify"}
	epCreateToken    = endpoint{http.MethodPost, "/v1/sessions/{id}/tokens"}
	epCreateTemplate = endpoint{http.MethodPost, "/v1/sessions/{id}/tokens/{template}"}

	clientIDRE = regexp.MustCompile(`^client_[A-Za-z0-9]+$`)
	userIDRE   = regexp.MustCompile(`^user_[A-Za-z0-9]+$`)
	templateRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// checkSessionID validates a session id without echoing it.
func checkSessionID(ep endpoint, id string) error {
	if !clerkwire.ValidSessionID(id) {
		return invalid(ep, "session id must be %s (got %d bytes)", clerkwire.SessionIDShape, len(id))
	}
	return nil
}

// checkID validates an ID without echoing it.
func checkID(ep endpoint, what string, re *regexp.Regexp, id string) error {
	if !re.MatchString(id) {
		return invalid(ep, "%s must match %s (got %d bytes)", what, re, len(id))
	}
	return nil
}

// ListParams filters Client.List. At least one of ClientID and UserID is
// required (Clerk deprecated unfiltered lists on 2024-01-01).
type ListParams struct {
	// ClientID lists the sessions of one client, "client_…".
	ClientID string
	// UserID lists the sessions of one user, "user_…".
	UserID string
	// Status filters by status: one of the SessionStatus values except
	// "pending", which the spec's filter does not accept. Empty means all.
	Status string
	// Limit is the page size, 1..500. Zero leaves it to Clerk (10).
	Limit int
	// Offset skips that many sessions. Zero is the first page.
	Offset int
}

func (p ListParams) query() (url.Values, error) {
	ep := epListSessions
	if p.ClientID == "" && p.UserID == "" {
		return nil, invalid(ep, "ClientID or UserID is required")
	}
	q := url.Values{"paginated": {"true"}}
	if p.ClientID != "" {
		if err := checkID(ep, "ClientID", clientIDRE, p.ClientID); err != nil {
			return nil, err
		}
		q.Set("client_id", p.ClientID)
	}
	if p.UserID != "" {
		if err := checkID(ep, "UserID", userIDRE, p.UserID); err != nil {
			return nil, err
		}
		q.Set("user_id", p.UserID)
	}
	if p.Status != "" {
		if st := SessionStatus(p.Status); !st.Known() || st == StatusPending {
			return nil, invalid(ep, "Status must be one of active, revoked, ended, expired, removed, abandoned, replaced")
		}
		q.Set("status", p.Status)
	}
	if p.Limit < 0 || p.Limit > MaxListLimit {
		return nil, invalid(ep, "Limit must be within 0..%d, got %d", MaxListLimit, p.Limit)
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Offset < 0 {
		return nil, invalid(ep, "Offset must not be negative, got %d", p.Offset)
	}
	if p.Offset > 0 {
		q.Set("offset", strconv.Itoa(p.Offset))
	}
	return q, nil
}

// List returns one page of sessions, newest first: GET /v1/sessions with
// paginated=true. It accepts both the spec's plain array (Paginated false)
// and the {"data","total_count"} shape Clerk's SDKs expect.
func (c *Client) List(ctx context.Context, p ListParams) (*SessionList, error) {
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, request{ep: epListSessions, path: "/v1/sessions", query: q})
	if err != nil {
		return nil, err
	}
	return decodeSessionList(body)
}

func decodeSessionList(body []byte) (*SessionList, error) {
	ep := epListSessions
	switch t := bytes.TrimLeft(body, " \t\r\n"); {
	case len(t) > 0 && t[0] == '[':
		var data []Session
		if err := decode(ep, body, &data); err != nil {
			return nil, err
		}
		return &SessionList{Data: data}, nil
	case len(t) > 0 && t[0] == '{':
		var page struct {
			Data       *[]Session `json:"data"`
			TotalCount int64      `json:"total_count"`
		}
		if err := decode(ep, body, &page); err != nil {
			return nil, err
		}
		if page.Data == nil {
			return nil, fmt.Errorf("clerkapi: %s: decoding response: object without \"data\"", ep)
		}
		return &SessionList{Data: *page.Data, TotalCount: page.TotalCount, Paginated: true}, nil
	}
	return nil, fmt.Errorf("clerkapi: %s: decoding response: want a JSON array or object", ep)
}

// ListAll iterates over every session matching p, fetching pages of
// p.Limit (0 means DefaultListAllPageSize) from p.Offset on. It stops after
// a page that is not full, when total_count is reached, at the first error
// (yielded with a zero Session), or after MaxListAllPages pages, yielding
// ErrTooManyPages. Sessions created or removed while it pages may be
// skipped or seen twice: Clerk pages by offset.
func (c *Client) ListAll(ctx context.Context, p ListParams) iter.Seq2[Session, error] {
	return func(yield func(Session, error) bool) {
		if p.Limit == 0 {
			p.Limit = DefaultListAllPageSize
		}
		for range MaxListAllPages {
			page, err := c.List(ctx, p)
			if err != nil {
				yield(Session{}, err)
				return
			}
			for _, s := range page.Data {
				if !yield(s, nil) {
					return
				}
			}
			n := len(page.Data)
			p.Offset += n
			// A page larger than asked means Clerk ignored limit: it was all.
			if n != p.Limit || (page.Paginated && int64(p.Offset) >= page.TotalCount) {
				return
			}
		}
		yield(Session{}, fmt.Errorf("%w: %s: ListAll stopped after %d pages of %d; narrow the filter",
			ErrTooManyPages, epListSessions, MaxListAllPages, p.Limit))
	}
}

// Get returns a session: GET /v1/sessions/{id}.
func (c *Client) Get(ctx context.Context, id string) (*Session, error) {
	return c.sessionCall(ctx, epGetSession, id, "", nil, nil)
}

// Revoke revokes a session and returns it: POST /v1/sessions/{id}/revoke,
// without a body. It is not retried on 5xx or network errors.
func (c *Client) Revoke(ctx context.Context, id string) (*Session, error) {
	return c.sessionCall(ctx, epRevokeSession, id, "/revoke", nil, nil)
}

// Verify asks Clerk to verify token against session id: POST
// /v1/sessions/{id}/verify with {"token": token}. Unlike clerk-sdk-go, it
// does send the token. The token is scrubbed from any error.
//
// Clerk removed the endpoint from API version 2025-04-10 onward; a 410 is
// returned as a *DeprecatedError (matching ErrEndpointGone). It is not
// retried on 5xx or network errors.
//
// Deprecated: verify the session token networklessly against the
// instance's JWKS and call Get for the session's status.
func (c *Client) Verify(ctx context.Context, id, token string) (*Session, error) {
	ep := epVerifySession
	if token == "" || len(token) > maxVerifyTokenBytes {
		return nil, invalid(ep, "token must be 1..%d bytes, got %d", maxVerifyTokenBytes, len(token))
	}
	body, err := json.Marshal(struct {
		Token string `json:"token"`
	}{token})
	if err != nil {
		return nil, fmt.Errorf("clerkapi: %s: encoding request: %w", ep, err)
	}
	s, err := c.sessionCall(ctx, ep, id, "/verify", body, []string{token})
	if apiErr := (*APIError)(nil); errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusGone {
		return nil, &DeprecatedError{Endpoint: ep.String(), APIVersion: c.apiVersion, Err: apiErr}
	}
	return s, err
}

func (c *Client) sessionCall(ctx context.Context, ep endpoint, id, suffix string, body []byte, redact []string) (*Session, error) {
	if err := checkSessionID(ep, id); err != nil {
		return nil, err
	}
	data, err := c.do(ctx, request{ep: ep, path: "/v1/sessions/" + url.PathEscape(id) + suffix, body: body, redact: redact})
	if err != nil {
		return nil, err
	}
	var s Session
	if err := decode(ep, data, &s); err != nil {
		return nil, err
	}
	if s.ID == "" {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: not a session (no id)", ep)
	}
	return &s, nil
}

// CreateToken mints a session token for session sessionID: POST
// /v1/sessions/{id}/tokens, or /v1/sessions/{id}/tokens/{template} when
// template is set. expiresInSeconds overrides the lifetime when above 0 and
// must then be within MinTokenLifetime..MaxTokenLifetime. It is not retried
// on 5xx or network errors.
func (c *Client) CreateToken(ctx context.Context, sessionID, template string, expiresInSeconds int) (*Token, error) {
	ep, suffix := epCreateToken, "/tokens"
	if template != "" {
		ep = epCreateTemplate
		if err := checkID(ep, "template", templateRE, template); err != nil {
			return nil, err
		}
		suffix += "/" + url.PathEscape(template)
	}
	if err := checkSessionID(ep, sessionID); err != nil {
		return nil, err
	}
	var body []byte
	if expiresInSeconds != 0 {
		if expiresInSeconds < MinTokenLifetime || expiresInSeconds > MaxTokenLifetime {
			return nil, invalid(ep, "expiresInSeconds must be 0 or within %d..%d, got %d",
				MinTokenLifetime, MaxTokenLifetime, expiresInSeconds)
		}
		body = []byte(`{"expires_in_seconds":` + strconv.Itoa(expiresInSeconds) + `}`)
	}
	data, err := c.do(ctx, request{ep: ep, path: "/v1/sessions/" + url.PathEscape(sessionID) + suffix, body: body})
	if err != nil {
		return nil, err
	}
	var t Token
	if err := decode(ep, data, &t); err != nil {
		return nil, err
	}
	if t.JWT == "" {
		return nil, fmt.Errorf("clerkapi: %s: decoding response: no jwt", ep)
	}
	return &t, nil
}
