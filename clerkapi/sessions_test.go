package clerkapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestOperationsSendTheSpecifiedRequest(t *testing.T) {
	t.Parallel()
	tokenBody := `{"object":"token","jwt":"eyJ.a.b"}`
	tests := []struct {
		name      string
		respond   string
		call      func(*Client) (any, error)
		method    string
		path      string
		query     string
		body      string // "" means no body and no Content-Type
		checkResp func(t *testing.T, v any)
	}{
		{
			name:    "Get",
			respond: sessionJSON,
			call:    func(c *Client) (any, error) { return c.Get(context.Background(), "sess_123") },
			method:  "GET", path: "/v1/sessions/sess_123",
			checkResp: func(t *testing.T, v any) {
				s := v.(*Session)
				if s.ID != "sess_123" || s.Status != StatusActive || s.UserID != "user_1" || s.ClientID != "client_1" ||
					s.CreatedAt != 1699999999999 || s.ExpireAt != 1700604800000 || s.Actor != nil ||
					s.LastActiveOrganizationID != nil || s.LatestActivity == nil || s.LatestActivity.BrowserName != "Chrome" {
					t.Errorf("decoded %+v", s)
				}
			},
		},
		{
			name:    "Revoke sends no body",
			respond: strings.Replace(sessionJSON, `"active"`, `"revoked"`, 1),
			call:    func(c *Client) (any, error) { return c.Revoke(context.Background(), "sess_123") },
			method:  "POST", path: "/v1/sessions/sess_123/revoke",
			checkResp: func(t *testing.T, v any) {
				if s := v.(*Session); s.Status != StatusRevoked {
					t.Errorf("status %q", s.Status)
				}
			},
		},
		{
			name:    "Verify sends the token",
			respond: sessionJSON,
			call:    func(c *Client) (any, error) { return c.Verify(context.Background(), "sess_123", "eyJ.x.y") },
			method:  "POST", path: "/v1/sessions/sess_123/verify", body: `{"token":"eyJ.x.y"}`,
		},
		{
			name:    "CreateToken default lifetime has no body",
			respond: tokenBody,
			call:    func(c *Client) (any, error) { return c.CreateToken(context.Background(), "sess_123", "", 0) },
			method:  "POST", path: "/v1/sessions/sess_123/tokens",
			checkResp: func(t *testing.T, v any) {
				if tok := v.(*Token); tok.JWT != "eyJ.a.b" || tok.Object != "token" {
					t.Errorf("token %+v", tok)
				}
			},
		},
		{
			name:    "CreateToken from template with lifetime",
			respond: tokenBody,
			call: func(c *Client) (any, error) {
				return c.CreateToken(context.Background(), "sess_123", "custom_hasura-1", 60)
			},
			method: "POST", path: "/v1/sessions/sess_123/tokens/custom_hasura-1", body: `{"expires_in_seconds":60}`,
		},
		{
			name:    "List sends paginated and filters",
			respond: `{"data":[` + sessionJSON + `],"total_count":1}`,
			call: func(c *Client) (any, error) {
				return c.List(context.Background(), ListParams{UserID: "user_1", ClientID: "client_2", Status: "active", Limit: 20, Offset: 40})
			},
			method: "GET", path: "/v1/sessions",
			query: "client_id=client_2&limit=20&offset=40&paginated=true&status=active&user_id=user_1",
		},
		{
			name:    "List leaves zero limit and offset out",
			respond: `[]`,
			call:    func(c *Client) (any, error) { return c.List(context.Background(), ListParams{UserID: "user_1"}) },
			method:  "GET", path: "/v1/sessions", query: "paginated=true&user_id=user_1",
		},
		{
			name:    "GetHandshakePayload",
			respond: `{"directives":["__session=x; Path=/","__client_uat=1; Path=/"]}`,
			call:    func(c *Client) (any, error) { return c.GetHandshakePayload(context.Background(), "n0nce-Ab_9") },
			method:  "GET", path: "/v1/clients/handshake_payload", query: "nonce=n0nce-Ab_9",
			checkResp: func(t *testing.T, v any) {
				if d := v.([]string); len(d) != 2 || d[0] != "__session=x; Path=/" {
					t.Errorf("directives %q", d)
				}
			},
		},
		{
			name:    "JWKS returns the raw body",
			respond: `{"keys":[{"kid":"k1","kty":"RSA"}]}`,
			call:    func(c *Client) (any, error) { return c.JWKS(context.Background()) },
			method:  "GET", path: "/v1/jwks",
			checkResp: func(t *testing.T, v any) {
				if string(v.([]byte)) != `{"keys":[{"kid":"k1","kty":"RSA"}]}` {
					t.Errorf("body %s", v)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, f := newFake(t, fixed(200, tt.respond), nil)
			v, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.Path != tt.path || r.RawQuery != tt.query || r.Body != tt.body {
				t.Errorf("request %s %s?%s body %q; want %s %s?%s body %q", r.Method, r.Path, r.RawQuery, r.Body,
					tt.method, tt.path, tt.query, tt.body)
			}
			wantHeaders := map[string]string{
				"Authorization":     "Bearer " + testKey,
				"Clerk-Api-Version": "2026-05-12",
				"User-Agent":        "sessiongate",
				"Accept":            "application/json",
			}
			if tt.body != "" {
				wantHeaders["Content-Type"] = "application/json"
			}
			for k, want := range wantHeaders {
				if got := r.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if tt.body == "" && r.Header.Get("Content-Type") != "" {
				t.Errorf("Content-Type %q without a body", r.Header.Get("Content-Type"))
			}
			if tt.checkResp != nil {
				tt.checkResp(t, v)
			}
		})
	}
}

func TestListDecodesBothShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantN     int
		wantTotal int64
		wantPaged bool
		wantErr   bool
	}{
		{name: "spec array", body: sessionsJSON(0, 2), wantN: 2},
		{name: "paginated object", body: `{"data":` + sessionsJSON(0, 2) + `,"total_count":7}`, wantN: 2, wantTotal: 7, wantPaged: true},
		{name: "empty paginated", body: ` {"data":[],"total_count":0}`, wantPaged: true},
		{name: "object without data", body: `{"total_count":3}`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "html", body: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newFake(t, fixed(200, tt.body), nil)
			l, err := c.List(context.Background(), ListParams{UserID: "user_1"})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("List = %+v, want an error", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Data) != tt.wantN || l.TotalCount != tt.wantTotal || l.Paginated != tt.wantPaged {
				t.Errorf("got n=%d total=%d paginated=%v", len(l.Data), l.TotalCount, l.Paginated)
			}
		})
	}
}

func TestListAll(t *testing.T) {
	t.Parallel()
	// pages serves 250 sessions in the asked shape, honouring limit/offset.
	pages := func(paginated bool, total int) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, _ int) {
			q := r.URL.Query()
			limit, offset := atoiOr(q.Get("limit"), 10), atoiOr(q.Get("offset"), 0)
			n := max(min(limit, total-offset), 0)
			body := sessionsJSON(offset, n)
			if paginated {
				body = `{"data":` + body + `,"total_count":` + strconv.Itoa(total) + `}`
			}
			reply(w, 200, body)
		}
	}
	tests := []struct {
		name        string
		h           handlerFunc
		params      ListParams
		wantN       int
		wantQueries []string
		wantErr     error
	}{
		{
			name: "three paginated pages", h: pages(true, 250), params: ListParams{UserID: "user_1"}, wantN: 250,
			wantQueries: []string{
				"limit=100&paginated=true&user_id=user_1",
				"limit=100&offset=100&paginated=true&user_id=user_1",
				"limit=100&offset=200&paginated=true&user_id=user_1",
			},
		},
		{
			name: "total_count reached on a full page", h: pages(true, 200), params: ListParams{UserID: "user_1"}, wantN: 200,
			wantQueries: []string{
				"limit=100&paginated=true&user_id=user_1",
				"limit=100&offset=100&paginated=true&user_id=user_1",
			},
		},
		{
			name: "array shape stops on a short page", h: pages(false, 5), params: ListParams{ClientID: "client_1", Limit: 2}, wantN: 5,
			wantQueries: []string{
				"client_id=client_1&limit=2&paginated=true",
				"client_id=client_1&limit=2&offset=2&paginated=true",
				"client_id=client_1&limit=2&offset=4&paginated=true",
			},
		},
		{
			name: "error on the second page", params: ListParams{UserID: "user_1", Limit: 1}, wantN: 1, wantErr: ErrNotFound,
			h: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					reply(w, 200, sessionsJSON(0, 1))
					return
				}
				reply(w, 404, `{"errors":[{"code":"resource_not_found","message":"gone","long_message":"gone"}]}`)
			},
		},
		{
			name: "endless server is cut at MaxListAllPages", params: ListParams{UserID: "user_1", Limit: 1},
			h: fixed(200, `{"data":`+sessionsJSON(0, 1)+`,"total_count":1000000}`), wantN: MaxListAllPages, wantErr: ErrTooManyPages,
		},
		{
			name: "invalid params make no request", params: ListParams{UserID: "user_1", Limit: 501}, wantErr: ErrInvalidParams,
			h: fixed(200, `[]`), wantQueries: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, f := newFake(t, tt.h, nil)
			n := 0
			var gotErr error
			for s, err := range c.ListAll(context.Background(), tt.params) {
				if err != nil {
					gotErr = err
					continue
				}
				if s.ID == "" {
					t.Fatal("zero session yielded without error")
				}
				n++
			}
			if n != tt.wantN {
				t.Errorf("yielded %d sessions, want %d", n, tt.wantN)
			}
			if !errors.Is(gotErr, tt.wantErr) || (tt.wantErr == nil && gotErr != nil) {
				t.Errorf("error %v, want %v", gotErr, tt.wantErr)
			}
			if tt.wantQueries != nil {
				reqs := f.requests()
				if len(reqs) != len(tt.wantQueries) {
					t.Fatalf("%d requests, want %d", len(reqs), len(tt.wantQueries))
				}
				for i, r := range reqs {
					if r.RawQuery != tt.wantQueries[i] {
						t.Errorf("request %d query %q, want %q", i, r.RawQuery, tt.wantQueries[i])
					}
				}
			}
		})
	}
}

func TestListAllStopsWhenTheLoopBreaks(t *testing.T) {
	t.Parallel()
	c, f := newFake(t, fixed(200, `{"data":`+sessionsJSON(0, 3)+`,"total_count":9}`), nil)
	for range c.ListAll(context.Background(), ListParams{UserID: "user_1", Limit: 3}) {
		break
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests after break, want 1", n)
	}
}

func TestInvalidParamsMakeNoRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*Client) error
	}{
		{"List without client or user", func(c *Client) error { _, err := c.List(ctx, ListParams{}); return err }},
		{"List bad user id", func(c *Client) error { _, err := c.List(ctx, ListParams{UserID: "usr_1"}); return err }},
		{"List bad client id", func(c *Client) error { _, err := c.List(ctx, ListParams{ClientID: "client_1&user_id=x"}); return err }},
		{"List negative limit", func(c *Client) error { _, err := c.List(ctx, ListParams{UserID: "user_1", Limit: -1}); return err }},
		{"List limit above 500", func(c *Client) error { _, err := c.List(ctx, ListParams{UserID: "user_1", Limit: 501}); return err }},
		{"List negative offset", func(c *Client) error { _, err := c.List(ctx, ListParams{UserID: "user_1", Offset: -1}); return err }},
		{"List unknown status", func(c *Client) error {
			_, err := c.List(ctx, ListParams{UserID: "user_1", Status: "zombie"})
			return err
		}},
		{"List pending status (not in the spec's filter)", func(c *Client) error {
			_, err := c.List(ctx, ListParams{UserID: "user_1", Status: string(StatusPending)})
			return err
		}},
		{"Get empty id", func(c *Client) error { _, err := c.Get(ctx, ""); return err }},
		{"Get path traversal", func(c *Client) error { _, err := c.Get(ctx, "sess_1/../../users"); return err }},
		{"Get query injection", func(c *Client) error { _, err := c.Get(ctx, "sess_1?x=1"); return err }},
		{"Get wrong prefix", func(c *Client) error { _, err := c.Get(ctx, "user_1"); return err }},
		{"Revoke bad id", func(c *Client) error { _, err := c.Revoke(ctx, "sess_"); return err }},
		{"Verify bad id", func(c *Client) error { _, err := c.Verify(ctx, "sess_%2F", "eyJ.x.y"); return err }},
		{"Verify empty token", func(c *Client) error { _, err := c.Verify(ctx, "sess_1", ""); return err }},
		{"CreateToken bad template", func(c *Client) error { _, err := c.CreateToken(ctx, "sess_1", "a/b", 0); return err }},
		{"CreateToken long template", func(c *Client) error {
			_, err := c.CreateToken(ctx, "sess_1", strings.Repeat("a", 65), 0)
			return err
		}},
		{"CreateToken lifetime below 30", func(c *Client) error { _, err := c.CreateToken(ctx, "sess_1", "", 29); return err }},
		{"CreateToken negative lifetime", func(c *Client) error { _, err := c.CreateToken(ctx, "sess_1", "", -5); return err }},
		{"CreateToken lifetime above max", func(c *Client) error {
			_, err := c.CreateToken(ctx, "sess_1", "", MaxTokenLifetime+1)
			return err
		}},
		{"CreateToken bad session", func(c *Client) error { _, err := c.CreateToken(ctx, "sess 1", "", 0); return err }},
		{"GetHandshakePayload empty nonce", func(c *Client) error { _, err := c.GetHandshakePayload(ctx, ""); return err }},
		{"GetHandshakePayload nonce with &", func(c *Client) error { _, err := c.GetHandshakePayload(ctx, "a&b=c"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, f := newFake(t, fixed(200, sessionJSON), nil)
			err := tt.call(c)
			if !errors.Is(err, ErrInvalidParams) {
				t.Errorf("error %v, want ErrInvalidParams", err)
			}
			if n := len(f.requests()); n != 0 {
				t.Errorf("%d requests made, want 0", n)
			}
		})
	}
}

func TestVerifyGoneIsDeprecatedError(t *testing.T) {
	t.Parallel()
	c, _ := newFake(t, fixed(410, `{"errors":[{"code":"deprecated_endpoint","message":"gone","long_message":"This endpoint is deprecated"}],"clerk_trace_id":"tr1"}`), nil)
	_, err := c.Verify(context.Background(), "sess_1", "eyJ.x.y")
	var de *DeprecatedError
	if !errors.As(err, &de) || !errors.Is(err, ErrEndpointGone) {
		t.Fatalf("error %v (%T), want *DeprecatedError matching ErrEndpointGone", err, err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.TraceID != "tr1" {
		t.Errorf("unwrapped %+v", apiErr)
	}
	for _, want := range []string{"2025-04-10", "networklessly", "Get", "2026-05-12", "deprecated_endpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func TestSessionDecodesLeniently(t *testing.T) {
	t.Parallel()
	c, _ := newFake(t, fixed(200, strings.Replace(sessionJSON, `"actor":null`, `"actor":{"sub":"user_admin"}`, 1)+"\n"), nil)
	s, err := c.Get(context.Background(), "sess_123")
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Actor) != `{"sub":"user_admin"}` {
		t.Errorf("actor %s", s.Actor)
	}
	c2, _ := newFake(t, fixed(200, `{"object":"session"}`), nil)
	if _, err := c2.Get(context.Background(), "sess_123"); err == nil {
		t.Error("a session without id was accepted")
	}
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
