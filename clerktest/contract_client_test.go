package clerktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/sessiongate/sessiongate/clerkapi"
)

// The clerkapi client's requests, checked against Clerk's spec: a test server
// validates each request with openapi3filter.ValidateRequest (method, path,
// path and query parameters, the bearerAuth security scheme, the JSON body),
// then forwards it to the fake, whose response is checked too.
//
// Two operations the client calls are not in the 2026-05-12 spec and are
// checked by hand: POST /sessions/{id}/verify (removed in 2025-04-10; its
// body is checked against the {"token": string} schema of the versions that
// had it) and GET /clients/handshake_payload (an empty path item: a GET
// with a non-empty nonce query parameter and no body).

var apiVersionHeader = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// requestChecker is the validating proxy in front of a fake instance.
type requestChecker struct {
	tb   testing.TB
	spec *contractSpec
	inst *Instance

	mu  sync.Mutex // guards following
	ops map[string]int
}

func (c *requestChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		c.tb.Errorf("read request body: %v", err)
		return
	}
	op, err := c.check(r, body)
	if err != nil {
		c.tb.Errorf("contract: request %s %s does not match the spec: %v\nheaders: %v\nbody: %s",
			r.Method, r.URL, err, redactAuth(r.Header), body)
	}
	c.mu.Lock()
	c.ops[op]++
	c.mu.Unlock()

	// Forward to the fake, then check its response as the other tests do.
	fwd := r.Clone(r.Context())
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	c.inst.Handler().ServeHTTP(rec, fwd)
	if _, err := c.spec.checkResponse(r, body, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		c.tb.Errorf("contract: response %s %s → %d does not match the spec: %v", r.Method, r.URL, rec.Code, err)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func redactAuth(h http.Header) http.Header {
	h = h.Clone()
	if v := h.Get("Authorization"); v != "" {
		h.Set("Authorization", v[:min(len(v), 15)]+"…")
	}
	return h
}

// check validates one request and names its operation.
func (c *requestChecker) check(r *http.Request, body []byte) (string, error) {
	var errs []error
	if v := r.Header.Get("Clerk-API-Version"); !apiVersionHeader.MatchString(v) {
		errs = append(errs, fmt.Errorf("Clerk-API-Version %q is not a YYYY-MM-DD version", v))
	}
	if r.Method == http.MethodGet && len(body) > 0 {
		errs = append(errs, fmt.Errorf("GET with a body: %s", body))
	}
	if len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
		errs = append(errs, fmt.Errorf("body sent as %q", r.Header.Get("Content-Type")))
	}
	sr := specRequest(r, body)
	authIn := &openapi3filter.AuthenticationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: sr},
		SecuritySchemeName:     "bearerAuth",
	}
	op := r.Method + " " + r.URL.Path
	switch {
	case r.URL.Path == HandshakePayloadPath:
		op = "GET /clients/handshake_payload"
		errs = append(errs, bearerAuth(r.Context(), authIn))
		if r.Method != http.MethodGet {
			errs = append(errs, fmt.Errorf("method %s, want GET", r.Method))
		}
		if q := r.URL.Query(); q.Get("nonce") == "" || len(q) != 1 {
			errs = append(errs, fmt.Errorf("query %q, want only a non-empty nonce", r.URL.RawQuery))
		}
	case strings.HasPrefix(r.URL.Path, SessionsPath+"/") && strings.HasSuffix(r.URL.Path, "/verify"):
		op = "POST /sessions/{session_id}/verify"
		errs = append(errs, bearerAuth(r.Context(), authIn))
		if r.Method != http.MethodPost || r.URL.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s with query %q, want POST without a query", r.Method, r.URL.RawQuery))
		}
		v, err := decodeJSONValue(body)
		if err == nil {
			err = verifyBodySchema.VisitJSON(v)
		}
		errs = append(errs, err)
	default:
		route, params, err := c.spec.router.FindRoute(sr)
		if err != nil {
			return op, fmt.Errorf("no operation in the spec: %w", err)
		}
		op = route.Method + " " + route.Path
		in := &openapi3filter.RequestValidationInput{
			Request:    sr,
			PathParams: params,
			Route:      route,
			Options: &openapi3filter.Options{
				AuthenticationFunc:                bearerAuth,
				MultiError:                        true,
				RejectWhenRequestBodyNotSpecified: true,
			},
		}
		errs = append(errs, openapi3filter.ValidateRequest(context.Background(), in))
		// kin-openapi checks declared query parameters only: refuse others.
		for name := range r.URL.Query() {
			if !slices.ContainsFunc(route.Operation.Parameters, func(p *openapi3.ParameterRef) bool {
				return p.Value != nil && p.Value.In == "query" && p.Value.Name == name
			}) {
				errs = append(errs, fmt.Errorf("query parameter %q is not in the spec", name))
			}
		}
	}
	return op, errors.Join(errs...)
}

// verifyBodySchema is the request body of POST /sessions/{id}/verify in the
// API versions that had it: {"token": string}.
var verifyBodySchema = &openapi3.Schema{
	Type:                 &openapi3.Types{openapi3.TypeObject},
	Required:             []string{"token"},
	Properties:           openapi3.Schemas{"token": openapi3.NewSchemaRef("", openapi3.NewStringSchema())},
	AdditionalProperties: openapi3.AdditionalProperties{Has: openapi3.Ptr(false)},
}

// newCheckedClient starts the validating proxy and a clerkapi client on it.
func newCheckedClient(t *testing.T, inst *Instance, version string) (*clerkapi.Client, *requestChecker) {
	t.Helper()
	chk := &requestChecker{tb: t, spec: spec(t), inst: inst, ops: map[string]int{}}
	srv := httptest.NewServer(chk)
	t.Cleanup(srv.Close)
	cl, err := clerkapi.New(clerkapi.Config{
		SecretKey:  inst.SecretKey(),
		APIURL:     srv.URL,
		APIVersion: version,
		Sleep:      func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl, chk
}

func TestContractClientRequests(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	ctx := t.Context()
	cl, chk := newCheckedClient(t, inst, "")
	old, oldChk := newCheckedClient(t, inst, "2024-10-01")

	var sids []string
	for range 3 {
		sids = append(sids, inst.CreateSession("user_c"))
		clk.Advance(time.Second)
	}
	info, _ := inst.Session(sids[0])
	inst.SetTemplate("tpl", map[string]any{"role": "x"})
	inst.RegisterHandshakeNonce("nonce_c", []string{"__session=x; Path=/"})

	for _, p := range []clerkapi.ListParams{
		{UserID: "user_c"},
		{ClientID: info.ClientID},
		{UserID: "user_c", ClientID: info.ClientID, Status: "active", Limit: 2, Offset: 1},
		{UserID: "user_c", Limit: 500},
	} {
		if _, err := cl.List(ctx, p); err != nil {
			t.Errorf("List(%+v): %v", p, err)
		}
	}
	n := 0
	for s, err := range cl.ListAll(ctx, clerkapi.ListParams{UserID: "user_c", Limit: 2}) {
		if err != nil {
			t.Fatalf("ListAll: %v", err)
		}
		if s.ID != sids[len(sids)-1-n] {
			t.Errorf("ListAll #%d: %s", n, s.ID)
		}
		n++
	}
	if n != 3 {
		t.Errorf("ListAll: %d sessions", n)
	}
	if s, err := cl.Get(ctx, sids[0]); err != nil || s.ID != sids[0] {
		t.Errorf("Get: %v %v", s, err)
	}
	if _, err := cl.Get(ctx, "sess_unknown"); !errors.Is(err, clerkapi.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	for _, tc := range []struct {
		tpl string
		exp int
	}{{"", 0}, {"", 30}, {"tpl", 0}, {"tpl", 3600}} {
		if tok, err := cl.CreateToken(ctx, sids[1], tc.tpl, tc.exp); err != nil || tok == nil {
			t.Errorf("CreateToken(%q, %d): %v", tc.tpl, tc.exp, err)
		}
	}
	if _, err := cl.CreateToken(ctx, sids[1], "missing", 0); !errors.Is(err, clerkapi.ErrNotFound) {
		t.Errorf("CreateToken unknown template: %v", err)
	}
	if d, err := cl.GetHandshakePayload(ctx, "nonce_c"); err != nil || !slices.Equal(d, []string{"__session=x; Path=/"}) {
		t.Errorf("GetHandshakePayload: %v %v", d, err)
	}
	if _, err := cl.GetHandshakePayload(ctx, "nonce_unknown"); err == nil {
		t.Error("GetHandshakePayload unknown nonce: no error")
	}
	if _, err := cl.JWKS(ctx); err != nil {
		t.Errorf("JWKS: %v", err)
	}

	tok := inst.MustMint(t, WithSession(sids[2]))
	var dep *clerkapi.DeprecatedError
	if _, err := cl.Verify(ctx, sids[2], tok); !errors.As(err, &dep) || !errors.Is(err, clerkapi.ErrEndpointGone) {
		t.Errorf("Verify at %s: %v", clerkapi.DefaultAPIVersion, err)
	}
	if s, err := old.Verify(ctx, sids[2], tok); err != nil || s.ID != sids[2] {
		t.Errorf("Verify at 2024-10-01: %v %v", s, err)
	}
	if s, err := cl.Revoke(ctx, sids[2]); err != nil || s.Status != clerkapi.StatusRevoked {
		t.Errorf("Revoke: %v %v", s, err)
	}

	// Machine credentials: every verify answer (valid, revoked, expired,
	// unknown) is checked against the spec by the requestChecker.
	mch := inst.CreateMachine("contract")
	kid, key := inst.CreateAPIKey(APIKeyOptions{Scopes: []string{"read"}, Claims: map[string]any{"tier": "gold"}, ExpiresIn: time.Hour})
	if k, err := cl.VerifyAPIKey(ctx, key); err != nil || k.ID != kid || k.Revoked || k.Expired {
		t.Errorf("VerifyAPIKey: %+v %v", k, err)
	}
	_ = inst.RevokeMachineCredential(kid, "contract")
	if k, err := cl.VerifyAPIKey(ctx, key); err != nil || !k.Revoked {
		t.Errorf("VerifyAPIKey revoked: %+v %v", k, err)
	}
	if _, err := cl.VerifyAPIKey(ctx, "ak_unknown"); !errors.Is(err, clerkapi.ErrNotFound) {
		t.Errorf("VerifyAPIKey unknown: %v", err)
	}
	mid, m2m, _ := inst.CreateM2MToken(mch.ID, M2MTokenOptions{Scopes: []string{mch.ID}})
	if m, err := cl.VerifyM2MToken(ctx, m2m); err != nil || m.ID != mid || m.Subject != mch.ID {
		t.Errorf("VerifyM2MToken: %+v %v", m, err)
	}
	if _, err := cl.VerifyM2MToken(ctx, "mt_unknown"); !errors.Is(err, clerkapi.ErrNotFound) {
		t.Errorf("VerifyM2MToken unknown: %v", err)
	}
	oid, oat, _ := inst.CreateOAuthAccessToken(OAuthTokenOptions{Scopes: []string{"email"}, ExpiresIn: time.Minute})
	if o, err := cl.VerifyOAuthAccessToken(ctx, oat); err != nil || o.ID != oid {
		t.Errorf("VerifyOAuthAccessToken: %+v %v", o, err)
	}
	_ = inst.ExpireMachineCredential(oid)
	if o, err := cl.VerifyOAuthAccessToken(ctx, oat); err != nil || !o.Expired {
		t.Errorf("VerifyOAuthAccessToken expired: %+v %v", o, err)
	}
	_, oatJWT, _ := inst.CreateOAuthAccessToken(OAuthTokenOptions{JWT: true, ExpiresIn: time.Minute})
	clk.Advance(2 * time.Minute)
	if o, err := cl.VerifyOAuthAccessToken(ctx, oatJWT); err != nil || o.Active == nil || *o.Active {
		t.Errorf("VerifyOAuthAccessToken inactive JWT: %+v %v", o, err)
	}

	// Every operation the client has was exercised.
	want := []string{
		"POST /api_keys/verify", "POST /m2m_tokens/verify", "POST /oauth_applications/access_tokens/verify",
		"GET /sessions", "GET /sessions/{session_id}", "POST /sessions/{session_id}/revoke",
		"POST /sessions/{session_id}/tokens", "POST /sessions/{session_id}/tokens/{template_name}",
		"POST /sessions/{session_id}/verify", "GET /clients/handshake_payload", "GET /jwks",
	}
	chk.mu.Lock()
	oldChk.mu.Lock()
	defer chk.mu.Unlock()
	defer oldChk.mu.Unlock()
	for _, op := range want {
		if chk.ops[op]+oldChk.ops[op] == 0 {
			t.Errorf("operation %s not exercised (seen %v)", op, chk.ops)
		}
	}
}
