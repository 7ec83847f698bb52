package clerktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testclock"
)

// newTestClock is a settable clock for Options.Now.
func newTestClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC))
}

// apiResp is one Backend API exchange.
type apiResp struct {
	status int
	header http.Header
	body   []byte
}

// errs decodes a ClerkErrors body.
func (r apiResp) errs(tb testing.TB) clerkErrors {
	tb.Helper()
	var e clerkErrors
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) == 0 {
		tb.Fatalf("status %d: body %s is not ClerkErrors (%v)", r.status, r.body, err)
	}
	return e
}

// wantError checks status and the first error code.
func (r apiResp) wantError(tb testing.TB, status int, code string) clerkErrors {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	e := r.errs(tb)
	if e.Errors[0].Code != code {
		tb.Fatalf("code %q, want %q; body %s", e.Errors[0].Code, code, r.body)
	}
	if e.ClerkTraceID == "" {
		tb.Errorf("no clerk_trace_id in %s", r.body)
	}
	return e
}

// apiSession is the Session JSON, for assertions.
type apiSession struct {
	Object                   string          `json:"object"`
	ID                       string          `json:"id"`
	UserID                   string          `json:"user_id"`
	ClientID                 string          `json:"client_id"`
	Actor                    json.RawMessage `json:"actor"`
	Status                   string          `json:"status"`
	LastActiveOrganizationID *string         `json:"last_active_organization_id"`
	LastActiveAt             int64           `json:"last_active_at"`
	ExpireAt                 int64           `json:"expire_at"`
	AbandonAt                int64           `json:"abandon_at"`
	UpdatedAt                int64           `json:"updated_at"`
	CreatedAt                int64           `json:"created_at"`
}

func (r apiResp) session(tb testing.TB) apiSession {
	tb.Helper()
	if r.status != http.StatusOK {
		tb.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var s apiSession
	if err := json.Unmarshal(r.body, &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// apiClient sends Backend API requests to an instance through the contract
// recorder, so every response is checked against the spec.
type apiClient struct {
	tb     testing.TB
	inst   *Instance
	client *http.Client
	rec    *contractRecorder
}

func newAPIClient(tb testing.TB, inst *Instance) *apiClient {
	tb.Helper()
	c, rec := newContractClient(tb)
	return &apiClient{tb: tb, inst: inst, client: c, rec: rec}
}

// do sends method path with body (none when empty) and the secret key unless
// auth says otherwise ("-" for no Authorization header). hdr adds headers as
// name, value pairs.
func (c *apiClient) do(method, path, body, auth string, hdr ...string) apiResp {
	c.tb.Helper()
	resp, err := c.try(method, path, body, auth, hdr...)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (c *apiClient) try(method, path, body, auth string, hdr ...string) (apiResp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.tb.Context(), method, c.inst.APIURL()+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	switch auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+c.inst.SecretKey())
	case "-":
	default:
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for n := 0; n+1 < len(hdr); n += 2 {
		req.Header.Set(hdr[n], hdr[n+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return apiResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return apiResp{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func (c *apiClient) get(path string) apiResp { c.tb.Helper(); return c.do("GET", path, "", "") }
func (c *apiClient) post(path, body string) apiResp {
	c.tb.Helper()
	return c.do("POST", path, body, "")
}

// list decodes a list answer, plain or paginated.
func (c *apiClient) list(query string) (ids []string, total int) {
	c.tb.Helper()
	r := c.get(SessionsPath + "?" + query)
	if r.status != http.StatusOK {
		c.tb.Fatalf("list %s: status %d, body %s", query, r.status, r.body)
	}
	var page []apiSession
	total = -1
	if strings.Contains(query, "paginated=true") {
		var p struct {
			Data       []apiSession `json:"data"`
			TotalCount int          `json:"total_count"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			c.tb.Fatalf("list %s: %v; body %s", query, err, r.body)
		}
		page, total = p.Data, p.TotalCount
	} else if err := json.Unmarshal(r.body, &page); err != nil {
		c.tb.Fatalf("list %s: %v; body %s", query, err, r.body)
	}
	if page == nil {
		c.tb.Fatalf("list %s: data is null, want an array: %s", query, r.body)
	}
	for _, s := range page {
		ids = append(ids, s.ID)
	}
	return ids, total
}

func TestAPIRequiresSecretKey(t *testing.T) {
	inst := start(t, Options{})
	c := newAPIClient(t, inst)
	sid := inst.CreateSession("")
	inst.RegisterHandshakeNonce("n1", []string{"a=b"})
	inst.SetTemplate("tpl", nil)
	reqs := []struct{ method, path, body string }{
		{"GET", SessionsPath + "?user_id=user_x", ""},
		{"GET", SessionsPath + "/" + sid, ""},
		{"POST", SessionsPath + "/" + sid + "/revoke", ""},
		{"POST", SessionsPath + "/" + sid + "/verify", `{"token":"x"}`},
		{"POST", SessionsPath + "/" + sid + "/tokens", `{}`},
		{"POST", SessionsPath + "/" + sid + "/tokens/tpl", `{}`},
		{"GET", HandshakePayloadPath + "?nonce=n1", ""},
	}
	for _, r := range reqs {
		for _, auth := range []string{"-", "Bearer sk_test_wrong", "Basic " + inst.SecretKey(), inst.SecretKey()} {
			c.do(r.method, r.path, r.body, auth).wantError(t, http.StatusUnauthorized, "authentication_invalid")
		}
	}
	if info, _ := inst.Session(sid); info.Status != statusActive {
		t.Errorf("unauthorized revoke changed the session: %s", info.Status)
	}
}

func TestSessionListValidation(t *testing.T) {
	inst := start(t, Options{})
	c := newAPIClient(t, inst)
	cases := []struct{ query, code, param string }{
		{"", "form_param_missing", "user_id"},
		{"status=active", "form_param_missing", "user_id"},
		{"user_id=u&limit=0", "form_param_value_invalid", "limit"},
		{"user_id=u&limit=501", "form_param_value_invalid", "limit"},
		{"user_id=u&limit=ten", "form_param_format_invalid", "limit"},
		{"user_id=u&offset=-1", "form_param_value_invalid", "offset"},
		{"user_id=u&offset=1.5", "form_param_format_invalid", "offset"},
		{"user_id=u&status=pending", "form_param_value_invalid", "status"},
		{"user_id=u&status=bogus", "form_param_value_invalid", "status"},
		{"user_id=u&paginated=maybe", "form_param_format_invalid", "paginated"},
	}
	for _, tc := range cases {
		e := c.get(SessionsPath+"?"+tc.query).wantError(t, http.StatusUnprocessableEntity, tc.code)
		if got := e.Errors[0].Meta["param_name"]; got != tc.param {
			t.Errorf("%q: meta.param_name %v, want %s", tc.query, got, tc.param)
		}
	}
	for _, q := range []string{"user_id=u&limit=1", "user_id=u&limit=500", "client_id=c&offset=0", "user_id=u&paginated=false"} {
		if ids, _ := c.list(q); len(ids) != 0 {
			t.Errorf("%s: %v, want none", q, ids)
		}
	}
}

func TestSessionListOrderFilterPagination(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	c := newAPIClient(t, inst)
	var userA []string // oldest first
	for n := range 15 {
		userA = append(userA, inst.CreateSession("user_a"))
		if n%3 != 0 { // some share a millisecond: creation order breaks the tie
			clk.Advance(time.Second)
		}
	}
	other := inst.CreateSession("user_b")
	newest := slices.Clone(userA)
	slices.Reverse(newest)

	if ids, _ := c.list("user_id=user_a"); !slices.Equal(ids, newest[:10]) {
		t.Errorf("default page:\n got %v\nwant %v", ids, newest[:10])
	}
	ids, total := c.list("user_id=user_a&paginated=true&limit=5&offset=10")
	if !slices.Equal(ids, newest[10:15]) || total != 15 {
		t.Errorf("last page: %v (total %d), want %v (15)", ids, total, newest[10:15])
	}
	if ids, total := c.list("user_id=user_a&paginated=true&limit=500&offset=15"); len(ids) != 0 || total != 15 {
		t.Errorf("past the end: %v (total %d)", ids, total)
	}
	if ids, _ := c.list("user_id=user_a&limit=500"); !slices.Equal(ids, newest) {
		t.Errorf("limit 500: %d sessions", len(ids))
	}

	info, _ := inst.Session(other)
	if ids, _ := c.list("client_id=" + info.ClientID); !slices.Equal(ids, []string{other}) {
		t.Errorf("client filter: %v", ids)
	}
	if ids, _ := c.list("client_id=" + info.ClientID + "&user_id=user_a"); len(ids) != 0 {
		t.Errorf("client and user filters are ANDed: %v", ids)
	}

	c.post(SessionsPath+"/"+userA[3]+"/revoke", "").session(t)
	if err := inst.SetSessionStatus(userA[4], "ended"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := c.list("user_id=user_a&status=revoked"); !slices.Equal(ids, []string{userA[3]}) {
		t.Errorf("status=revoked: %v", ids)
	}
	if ids, _ := c.list("user_id=user_a&status=ended"); !slices.Equal(ids, []string{userA[4]}) {
		t.Errorf("status=ended: %v", ids)
	}
	if _, total := c.list("user_id=user_a&status=active&paginated=true"); total != 13 {
		t.Errorf("status=active: total %d, want 13", total)
	}
}

func TestSessionGetRevoke(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	c := newAPIClient(t, inst)
	tok := inst.MustMint(t, WithUser("user_1"), WithOrg(Org{ID: "org_1", Role: "admin"}),
		WithActor(Actor{Subject: "user_admin", Type: "impersonation"}))
	sid := parseToken(t, tok).str(t, parseToken(t, tok).claims, "sid")

	s := c.get(SessionsPath + "/" + sid).session(t)
	created := clk.Now().UnixMilli()
	if s.Object != "session" || s.ID != sid || s.UserID != "user_1" || s.Status != "active" ||
		!strings.HasPrefix(s.ClientID, "client_") || s.CreatedAt != created || s.UpdatedAt != created ||
		s.ExpireAt != clk.Now().Add(7*24*time.Hour).UnixMilli() ||
		s.LastActiveOrganizationID == nil || *s.LastActiveOrganizationID != "org_1" ||
		!strings.Contains(string(s.Actor), `"sub":"user_admin"`) {
		t.Errorf("session: %+v actor %s", s, s.Actor)
	}

	c.get(SessionsPath+"/sess_unknown").wantError(t, http.StatusNotFound, "resource_not_found")
	c.post(SessionsPath+"/sess_unknown/revoke", "").wantError(t, http.StatusNotFound, "resource_not_found")
	c.get(SessionsPath+"/"+sid+"/nothing").wantError(t, http.StatusNotFound, "resource_not_found")

	clk.Advance(time.Minute)
	r := c.post(SessionsPath+"/"+sid+"/revoke", "").session(t)
	if r.Status != "revoked" || r.UpdatedAt != clk.Now().UnixMilli() {
		t.Errorf("revoked: status %s updated_at %d", r.Status, r.UpdatedAt)
	}
	clk.Advance(time.Minute)
	if r2 := c.post(SessionsPath+"/"+sid+"/revoke", "").session(t); r2.Status != "revoked" || r2.UpdatedAt != r.UpdatedAt {
		t.Errorf("second revoke: %+v", r2)
	}
	if g := c.get(SessionsPath + "/" + sid).session(t); g.Status != "revoked" {
		t.Errorf("get after revoke: %s", g.Status)
	}
	if info, ok := inst.Session(sid); !ok || info.Status != "revoked" || info.Actor == nil || info.LastActiveOrganizationID != "org_1" {
		t.Errorf("Session: %+v %v", info, ok)
	}
	if err := inst.SetSessionStatus(sid, "weird"); err == nil {
		t.Error("SetSessionStatus accepted an unknown status")
	}
	if err := inst.SetSessionStatus("sess_nope", "ended"); err == nil {
		t.Error("SetSessionStatus accepted an unknown session")
	}
	if _, ok := inst.Session("sess_nope"); ok {
		t.Error("Session found an unknown session")
	}
	// Each session path has its own counter.
	if n := inst.Requests(SessionsPath + "/" + sid); n != 2 {
		t.Errorf("Requests(get path) = %d, want 2", n)
	}
	if n := inst.Requests(SessionsPath + "/" + sid + "/revoke"); n != 2 {
		t.Errorf("Requests(revoke path) = %d, want 2", n)
	}
}

func TestSessionExpiry(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	c := newAPIClient(t, inst)
	old := inst.CreateSession("user_e")
	clk.Advance(24 * time.Hour)
	fresh := inst.CreateSession("user_e")
	revoked := inst.CreateSession("user_e")
	c.post(SessionsPath+"/"+revoked+"/revoke", "").session(t)

	clk.Advance(6*24*time.Hour - time.Millisecond)
	if s := c.get(SessionsPath + "/" + old).session(t); s.Status != "active" {
		t.Errorf("just before expire_at: %s", s.Status)
	}
	clk.Advance(time.Millisecond)
	if s := c.get(SessionsPath + "/" + old).session(t); s.Status != "expired" {
		t.Errorf("at expire_at: %s", s.Status)
	}
	if info, _ := inst.Session(old); info.Status != "expired" {
		t.Errorf("Session: %s", info.Status)
	}
	if ids, _ := c.list("user_id=user_e&status=expired"); !slices.Equal(ids, []string{old}) {
		t.Errorf("status=expired: %v", ids)
	}
	if ids, _ := c.list("user_id=user_e&status=active"); !slices.Equal(ids, []string{fresh}) {
		t.Errorf("status=active: %v", ids)
	}
	c.post(SessionsPath+"/"+old+"/tokens", "").wantError(t, http.StatusNotFound, "resource_not_found")
	clk.Advance(24 * time.Hour)
	if s := c.get(SessionsPath + "/" + revoked).session(t); s.Status != "revoked" {
		t.Errorf("a revoked session stays revoked past expire_at: %s", s.Status)
	}
}

func TestSessionTokens(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now, TokenLifetime: 90 * time.Second})
	c := newAPIClient(t, inst)
	sid := inst.CreateSession("user_t")
	inst.SetTemplate("hasura", map[string]any{
		"https://hasura.io/jwt/claims": map[string]any{"x-hasura-default-role": "user"},
		"role":                         "member",
		"raw":                          json.RawMessage(`[1,2]`),
		"sub":                          "ignored", // reserved
		"exp":                          1,         // reserved
	})
	jwt := func(r apiResp) parsedToken {
		t.Helper()
		var tok struct{ Object, JWT string }
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %s", r.status, r.body)
		}
		if err := json.Unmarshal(r.body, &tok); err != nil || tok.Object != "token" {
			t.Fatalf("token body %s (%v)", r.body, err)
		}
		p := parseToken(t, tok.JWT)
		if err := p.verifyRS256(&inst.SigningKey().Private.PublicKey); err != nil {
			t.Fatalf("signature: %v", err)
		}
		return p
	}
	now := clk.Now().Unix()

	// Session token: instance lifetime, or expires_in_seconds.
	for body, life := range map[string]int64{"": 90, "null": 90, `{}`: 90, `{"expires_in_seconds":null}`: 90, `{"expires_in_seconds":30}`: 30, `{"expires_in_seconds":315360000}`: 315360000} {
		p := jwt(c.post(SessionsPath+"/"+sid+"/tokens", body))
		if p.str(t, p.header, "cat") != CategorySession || p.str(t, p.claims, "sid") != sid ||
			p.str(t, p.claims, "sub") != "user_t" || p.num(t, "exp")-p.num(t, "iat") != life || p.num(t, "iat") != now {
			t.Errorf("body %q: header %s claims %s", body, p.rawHeader, p.rawPayload)
		}
	}

	// Template token: template claims, no sid, 60 s by default.
	p := jwt(c.post(SessionsPath+"/"+sid+"/tokens/hasura", ""))
	if p.str(t, p.header, "cat") != CategoryTemplate {
		t.Errorf("template header %s", p.rawHeader)
	}
	want := []string{"azp", "exp", "https://hasura.io/jwt/claims", "iat", "iss", "jti", "nbf", "raw", "role", "sub"}
	if got := keysOf(p.claims); !slices.Equal(got, want) {
		t.Errorf("template claims %v, want %v", got, want)
	}
	if p.str(t, p.claims, "sub") != "user_t" || p.str(t, p.claims, "role") != "member" ||
		string(p.claims["raw"]) != "[1,2]" || p.str(t, p.claims, "iss") != inst.Issuer() ||
		p.num(t, "exp")-p.num(t, "iat") != 60 || p.num(t, "nbf") != now-5 ||
		string(p.claims["https://hasura.io/jwt/claims"]) != `{"x-hasura-default-role":"user"}` {
		t.Errorf("template claims %s", p.rawPayload)
	}
	if p := jwt(c.post(SessionsPath+"/"+sid+"/tokens/hasura", `{"expires_in_seconds":3600}`)); p.num(t, "exp")-p.num(t, "iat") != 3600 {
		t.Errorf("template lifetime: %s", p.rawPayload)
	}

	// Errors.
	for _, body := range []string{`{"expires_in_seconds":29}`, `{"expires_in_seconds":315360001}`, `{"expires_in_seconds":-1}`} {
		for _, path := range []string{"/tokens", "/tokens/hasura"} {
			c.post(SessionsPath+"/"+sid+path, body).wantError(t, http.StatusUnprocessableEntity, "form_param_value_invalid")
		}
	}
	c.post(SessionsPath+"/"+sid+"/tokens", `{"expires_in_seconds":"60"}`).wantError(t, http.StatusBadRequest, "request_body_invalid")
	c.post(SessionsPath+"/"+sid+"/tokens", `not json`).wantError(t, http.StatusBadRequest, "request_body_invalid")
	c.post(SessionsPath+"/"+sid+"/tokens/nope", "").wantError(t, http.StatusNotFound, "resource_not_found")
	c.post(SessionsPath+"/sess_unknown/tokens", "").wantError(t, http.StatusNotFound, "resource_not_found")
	c.post(SessionsPath+"/sess_unknown/tokens/hasura", "").wantError(t, http.StatusNotFound, "resource_not_found")

	// Only active (and pending) sessions get tokens.
	pending := inst.CreateSession("user_t")
	if err := inst.SetSessionStatus(pending, "pending"); err != nil {
		t.Fatal(err)
	}
	if p := jwt(c.post(SessionsPath+"/"+pending+"/tokens", "")); p.str(t, p.claims, "sts") != "pending" {
		t.Errorf("pending session token: %s", p.rawPayload)
	}
	if s := c.get(SessionsPath + "/" + pending).body; !strings.Contains(string(s), `"tasks":[{"key":"choose-organization"}]`) {
		t.Errorf("pending session has no task: %s", s)
	}
	for _, st := range []string{"revoked", "ended", "removed", "abandoned", "replaced", "expired"} {
		if err := inst.SetSessionStatus(sid, st); err != nil {
			t.Fatal(err)
		}
		c.post(SessionsPath+"/"+sid+"/tokens", "").wantError(t, http.StatusNotFound, "resource_not_found")
		c.post(SessionsPath+"/"+sid+"/tokens/hasura", "").wantError(t, http.StatusNotFound, "resource_not_found")
	}
}

func TestSetTemplatePanicsOnUnencodable(t *testing.T) {
	inst := start(t, Options{})
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	inst.SetTemplate("bad", map[string]any{"f": func() {}})
}

func TestSessionVerify(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	c := newAPIClient(t, inst)
	tok := inst.MustMint(t, WithUser("user_v"))
	sid := parseToken(t, tok).str(t, parseToken(t, tok).claims, "sid")
	path := SessionsPath + "/" + sid + "/verify"
	body := func(tok string) string { return fmt.Sprintf(`{"token":%q}`, tok) }
	const old = "2024-10-01"

	// Current versions: gone.
	for _, v := range []string{"", CurrentAPIVersion, "2025-04-10"} {
		var hdr []string
		if v != "" {
			hdr = []string{"Clerk-API-Version", v}
		}
		c.do("POST", path, body(tok), "", hdr...).wantError(t, http.StatusGone, "deprecated_endpoint")
	}
	c.do("POST", path, body(tok), "", "Clerk-API-Version", "latest").wantError(t, http.StatusBadRequest, "api_version_invalid")

	// Old versions: verified.
	for _, v := range []string{old, "2025-03-12", "2021-02-05"} {
		if s := c.do("POST", path, body(tok), "", "Clerk-API-Version", v).session(t); s.ID != sid || s.Status != "active" {
			t.Errorf("%s: %+v", v, s)
		}
	}
	other := inst.MustMint(t)
	foreign := inst.MustMint(t, WithSession(sid), WithSigningKey(sharedKey(t, 1)))
	confused := inst.MustMint(t, WithSession(sid), WithAlgorithm("HS256"))
	wrongIss := inst.MustMint(t, WithSession(sid), WithClaim("iss", "https://evil.example"))
	for name, bad := range map[string]string{
		"other session": other, "foreign key": foreign, "alg confusion": confused,
		"wrong iss": wrongIss, "garbage": "a.b.c", "not a jws": "x",
	} {
		e := c.do("POST", path, body(bad), "", "Clerk-API-Version", old).wantError(t, http.StatusBadRequest, "token_invalid")
		t.Logf("%s: %s", name, e.Errors[0].LongMessage)
	}
	c.do("POST", path, `{}`, "", "Clerk-API-Version", old).wantError(t, http.StatusBadRequest, "form_param_missing")
	c.do("POST", path, `{"token":1}`, "", "Clerk-API-Version", old).wantError(t, http.StatusBadRequest, "request_body_invalid")
	c.do("POST", SessionsPath+"/sess_unknown/verify", body(tok), "", "Clerk-API-Version", old).wantError(t, http.StatusNotFound, "resource_not_found")

	clk.Advance(61 * time.Second)
	c.do("POST", path, body(tok), "", "Clerk-API-Version", old).wantError(t, http.StatusBadRequest, "token_invalid")
	fresh := inst.MustMint(t, WithSession(sid))
	c.post(SessionsPath+"/"+sid+"/revoke", "").session(t)
	c.do("POST", path, body(fresh), "", "Clerk-API-Version", old).wantError(t, http.StatusBadRequest, "session_not_active")
}

func TestHandshakePayload(t *testing.T) {
	inst := start(t, Options{})
	c := newAPIClient(t, inst)
	dirs := []string{"__session=eyJ...; Path=/; SameSite=Lax", "__client_uat=1716206400; Path=/"}
	inst.RegisterHandshakeNonce("nonce_1", dirs)
	inst.RegisterHandshakeNonce("nonce_empty", nil)
	for range 2 { // reusable
		r := c.get(HandshakePayloadPath + "?nonce=nonce_1")
		var p struct{ Directives []string }
		if err := json.Unmarshal(r.body, &p); r.status != 200 || err != nil || !slices.Equal(p.Directives, dirs) {
			t.Errorf("payload %d %s (%v)", r.status, r.body, err)
		}
	}
	if r := c.get(HandshakePayloadPath + "?nonce=nonce_empty"); r.status != 200 || string(r.body) != `{"directives":[]}` {
		t.Errorf("empty payload %d %s", r.status, r.body)
	}
	c.get(HandshakePayloadPath+"?nonce=unknown").wantError(t, http.StatusBadRequest, "invalid_nonce")
	c.get(HandshakePayloadPath).wantError(t, http.StatusUnprocessableEntity, "form_param_missing")
}

func TestAPIBehaviors(t *testing.T) {
	inst := start(t, Options{})
	c := newAPIClient(t, inst)
	sid := inst.CreateSession("user_b")
	path := SessionsPath + "/" + sid
	paths := []struct{ method, path string }{
		{"GET", SessionsPath + "?user_id=user_b"}, {"GET", path}, {"POST", path + "/revoke"},
		{"POST", path + "/tokens"}, {"GET", HandshakePayloadPath + "?nonce=x"},
	}

	inst.SetAPIBehavior(ServerError)
	for _, p := range paths {
		c.do(p.method, p.path, "", "").wantError(t, http.StatusInternalServerError, "internal_clerk_error")
	}
	// Behaviors come before the key check.
	c.do("GET", path, "", "-").wantError(t, http.StatusInternalServerError, "internal_clerk_error")
	// The JWKS endpoints keep their own behavior.
	if r := c.do("GET", BackendJWKSPath, "", ""); r.status != http.StatusOK {
		t.Errorf("JWKS under API ServerError: %d", r.status)
	}

	inst.SetAPIBehavior(RateLimited)
	r := c.get(path)
	r.wantError(t, http.StatusTooManyRequests, "too_many_requests")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("default Retry-After %q", got)
	}
	inst.SetRetryAfter(1500 * time.Millisecond)
	if got := c.get(path).header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	inst.SetRetryAfter(-1)
	if got := c.get(path).header.Values("Retry-After"); got != nil {
		t.Errorf("Retry-After %q, want none", got)
	}
	if inst.APIBehavior() != RateLimited || RateLimited.String() != "RateLimited" {
		t.Errorf("APIBehavior %v", inst.APIBehavior())
	}

	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	inst.SetAPIBehavior(Garbage)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", inst.APIURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+inst.SecretKey())
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || json.Valid(b) {
		t.Errorf("Garbage: %d %s", resp.StatusCode, b)
	}

	inst.SetAPIBehavior(Reset)
	if _, err := c.try("GET", path, "", ""); err == nil {
		t.Error("Reset: got a response")
	}

	inst.SetAPIBehavior(Slow)
	inst.SetDelay(100 * time.Millisecond)
	begin := time.Now()
	c.get(path).session(t)
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Errorf("Slow answered after %v", d)
	}

	inst.SetAPIBehavior(EmptySet) // means Normal for the API
	c.get(path).session(t)
	inst.SetAPIBehavior(Normal)
	c.get(path).session(t)

	inst.SetAPIBehavior(Down)
	if inst.APIBehavior() != Down {
		t.Errorf("APIBehavior while down: %v", inst.APIBehavior())
	}
	if _, err := c.try("GET", path, "", ""); err == nil {
		t.Error("Down: got a response")
	}
	if err := inst.Up(); err != nil {
		t.Fatal(err)
	}
	c.get(path).session(t)

	// ServerError 1 + unauthenticated 1, RateLimited 3, Garbage 1, Reset 1
	// (counted before the behavior applies), Slow 1, EmptySet and Normal 2,
	// after Up 1; the refused connection while down is not counted.
	if n := inst.Requests(path); n != 2+3+1+1+1+2+1 {
		t.Errorf("Requests(%s) = %d", path, n)
	}
	if c.rec.Checked() == 0 {
		t.Error("nothing checked against the spec")
	}
}

func TestJWKSRateLimited(t *testing.T) {
	inst := start(t, Options{})
	inst.SetJWKSBehavior(RateLimited)
	inst.SetRetryAfter(5 * time.Second)
	resp, body := mustGet(t, inst.FrontendJWKSURL(), "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("JWKS RateLimited: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The API endpoints keep their own behavior.
	sid := inst.CreateSession("")
	c := newAPIClient(t, inst)
	c.get(SessionsPath + "/" + sid).session(t)
}

func TestCreateSession(t *testing.T) {
	inst := start(t, Options{})
	a, b := inst.CreateSession("user_x"), inst.CreateSession("")
	ia, _ := inst.Session(a)
	ib, _ := inst.Session(b)
	if a == b || ia.UserID != "user_x" || !strings.HasPrefix(ib.UserID, "user_") || ia.Status != "active" || ia.ClientID == ib.ClientID {
		t.Errorf("%+v %+v", ia, ib)
	}
	// A token minted for the session belongs to its user.
	p := parseToken(t, inst.MustMint(t, WithSession(a)))
	if p.str(t, p.claims, "sub") != "user_x" {
		t.Errorf("claims %s", p.rawPayload)
	}
	if _, err := inst.Mint(WithSession(a), WithUser("user_y")); err == nil {
		t.Error("minting for another user's session succeeded")
	}
}
