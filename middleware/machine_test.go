package middleware_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/machine"
	"github.com/sessiongate/sessiongate/middleware"
)

// machineEnv is a Gate with a machine.Verifier against the fake Clerk, and
// handlers that report what authenticated them.
type machineEnv struct {
	inst *clerktest.Instance
	gate *middleware.Gate
	mch  clerktest.Machine
}

func newMachineEnv(t *testing.T) *machineEnv {
	t.Helper()
	testKeys(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: mainKey})
	api, err := clerkapi.New(clerkapi.Config{SecretKey: inst.SecretKey(), APIURL: inst.APIURL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// All requests here come from one address (httptest's): a large budget.
	v, err := machine.New(machine.Config{API: api, TTL: time.Nanosecond, NegativeTTL: time.Nanosecond, MissRate: 1000, MissBurst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	g, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...), Machines: v})
	if err != nil {
		t.Fatal(err)
	}
	return &machineEnv{inst: inst, gate: g, mch: inst.CreateMachine("worker")}
}

// call sends token as Bearer (or as the __session cookie) to a handler
// under policy p and returns the status, the reason and what the handler
// saw ("type subject id scopes").
func (e *machineEnv) call(t *testing.T, p middleware.Policy, token string, cookie bool) (int, string, string) {
	t.Helper()
	var seen string
	h := e.gate.RequireWith(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := middleware.AuthFromContext(r.Context())
		if !ok {
			t.Error("no Auth in the context")
			return
		}
		if a.Machine != nil {
			seen = string(a.Type) + " " + a.Machine.Subject + " " + a.Machine.ID + " " + strings.Join(a.Machine.Scopes, ",")
		} else {
			seen = string(a.Type) + " " + a.Session.Subject
		}
	}))
	r := httptest.NewRequest("GET", "/", nil)
	if cookie {
		r.AddCookie(&http.Cookie{Name: "__session", Value: token})
	} else {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header().Get("X-Clerk-Auth-Reason"), seen
}

func policy(accepts ...middleware.TokenType) middleware.Policy {
	return middleware.Policy{Accepts: accepts}
}

// Each kind × valid, revoked, expired, unknown, a route that does not take
// it, Clerk down, Clerk rate-limiting, a scope missing — through the Go
// middleware.
func TestMachineCredentialsThroughTheMiddleware(t *testing.T) {
	t.Parallel()
	e := newMachineEnv(t)
	type creds struct{ valid, revoked, expired, unknown string }
	mk := map[middleware.TokenType]creds{}
	{
		_, v := e.inst.CreateAPIKey(clerktest.APIKeyOptions{Subject: e.mch.ID, Scopes: []string{"read"}})
		rid, r := e.inst.CreateAPIKey(clerktest.APIKeyOptions{})
		_ = e.inst.RevokeMachineCredential(rid, "x")
		xid, x := e.inst.CreateAPIKey(clerktest.APIKeyOptions{ExpiresIn: time.Hour})
		_ = e.inst.ExpireMachineCredential(xid)
		mk[middleware.APIKey] = creds{v, r, x, "ak_unknown"}
	}
	{
		_, v, _ := e.inst.CreateM2MToken(e.mch.ID, clerktest.M2MTokenOptions{Scopes: []string{"read"}})
		rid, r, _ := e.inst.CreateM2MToken(e.mch.ID, clerktest.M2MTokenOptions{})
		_ = e.inst.RevokeMachineCredential(rid, "x")
		xid, x, _ := e.inst.CreateM2MToken(e.mch.ID, clerktest.M2MTokenOptions{ExpiresIn: time.Hour})
		_ = e.inst.ExpireMachineCredential(xid)
		mk[middleware.M2MToken] = creds{v, r, x, "mt_unknown"}
	}
	{
		_, v, _ := e.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{Scopes: []string{"read"}})
		rid, r, _ := e.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{})
		_ = e.inst.RevokeMachineCredential(rid, "x")
		xid, x, _ := e.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{ExpiresIn: time.Hour})
		_ = e.inst.ExpireMachineCredential(xid)
		mk[middleware.OAuthToken] = creds{v, r, x, "oat_unknown"}
	}
	other := map[middleware.TokenType]middleware.TokenType{
		middleware.APIKey: middleware.M2MToken, middleware.M2MToken: middleware.OAuthToken, middleware.OAuthToken: middleware.APIKey}
	for kind, c := range mk {
		t.Run(string(kind), func(t *testing.T) {
			p := policy(kind)
			scoped := p
			scoped.Require.Scopes = []string{"write"}
			for _, tc := range []struct {
				name   string
				p      middleware.Policy
				token  string
				status int
				reason string
			}{
				{"valid", p, c.valid, 200, ""},
				{"valid on an any route", policy(middleware.AnyToken), c.valid, 200, ""},
				{"revoked", p, c.revoked, 401, "machine-token-revoked"},
				{"expired", p, c.expired, 401, "machine-token-expired"},
				{"unknown", p, c.unknown, 401, "machine-token-invalid"},
				{"wrong kind for the route", policy(other[kind]), c.valid, 401, "token-type-not-accepted"},
				{"session-only route", policy(), c.valid, 401, "token-type-not-accepted"},
				{"scope missing", scoped, c.valid, 403, "missing-scope"},
				{"session requirement", middleware.Policy{Accepts: []middleware.TokenType{kind}, Require: middleware.Requirements{Org: true}}, c.valid, 403, "missing-org"},
			} {
				before := e.inst.Requests(clerktest.APIKeysVerifyPath) + e.inst.Requests(clerktest.M2MTokensVerifyPath) + e.inst.Requests(clerktest.OAuthTokensVerifyPath)
				status, reason, seen := e.call(t, tc.p, tc.token, false)
				if status != tc.status || reason != tc.reason {
					t.Errorf("%s: %d %q, want %d %q", tc.name, status, reason, tc.status, tc.reason)
				}
				if status == 200 && !strings.HasPrefix(seen, string(kind)+" ") {
					t.Errorf("%s: the handler saw %q", tc.name, seen)
				}
				after := e.inst.Requests(clerktest.APIKeysVerifyPath) + e.inst.Requests(clerktest.M2MTokensVerifyPath) + e.inst.Requests(clerktest.OAuthTokensVerifyPath)
				if reason == "token-type-not-accepted" && after != before {
					t.Errorf("%s: a refused kind cost %d Backend API calls", tc.name, after-before)
				}
			}
			for _, b := range []clerktest.Behavior{clerktest.Down, clerktest.ServerError, clerktest.RateLimited} {
				e.inst.SetAPIBehavior(b)
				status, reason, _ := e.call(t, p, c.valid, false)
				if b == clerktest.Down {
					if err := e.inst.Up(); err != nil {
						t.Fatal(err)
					}
				}
				e.inst.SetAPIBehavior(clerktest.Normal)
				if status != 503 || reason != "machine-token-verification-unavailable" {
					t.Errorf("Clerk %v: %d %q, want 503 unavailable", b, status, reason)
				}
			}
			// Never read from a cookie: a machine credential there is no
			// session token.
			if status, reason, _ := e.call(t, policy(middleware.AnyToken), c.valid, true); status != 401 || reason == "" {
				t.Errorf("as a cookie: %d %q, want a 401", status, reason)
			}
		})
	}
}

// The same table for the JWT forms (M2M JWT, RFC 9068 OAuth JWT) through
// the Go middleware. They are verified networklessly, so Clerk down or
// rate-limiting changes nothing and no column costs a Backend API call;
// "unknown" is a JWT signed by a key outside the instance's set. A JWT
// cannot be revoked before its exp (docs/machine-auth.md): no "revoked"
// column.
func TestMachineJWTCredentialsThroughTheMiddleware(t *testing.T) {
	t.Parallel()
	e := newMachineEnv(t)
	m2m := func(opts ...clerktest.TokenOption) string {
		return e.inst.MustMint(t, append([]clerktest.TokenOption{clerktest.WithMachine(), clerktest.WithUser(e.mch.ID),
			clerktest.WithClaim("jti", "m2m_jti"), clerktest.WithClaim("scopes", "read")}, opts...)...)
	}
	oauth := func(opts ...clerktest.TokenOption) string {
		return e.inst.MustMint(t, append([]clerktest.TokenOption{clerktest.WithMachine(), clerktest.WithUser("user_oauth"),
			clerktest.WithHeader("typ", "at+jwt"), clerktest.WithoutHeader("cat"), clerktest.WithClaim("jti", "oat_jti"),
			clerktest.WithClaim("client_id", "client_1"), clerktest.WithClaim("scope", "read")}, opts...)...)
	}
	past := clerktest.WithExpiry(time.Now().Add(-time.Hour))
	foreign := clerktest.WithSigningKey(otherKey)
	calls := func() int {
		return e.inst.Requests(clerktest.APIKeysVerifyPath) + e.inst.Requests(clerktest.M2MTokensVerifyPath) +
			e.inst.Requests(clerktest.OAuthTokensVerifyPath)
	}
	for _, k := range []struct {
		kind                    middleware.TokenType
		valid, expired, unknown string
		other                   middleware.TokenType
		seen                    string
	}{
		{middleware.M2MToken, m2m(), m2m(past), m2m(foreign), middleware.OAuthToken, "m2m_token " + e.mch.ID + " m2m_jti read"},
		{middleware.OAuthToken, oauth(), oauth(past), oauth(foreign), middleware.APIKey, "oauth_token user_oauth oat_jti read"},
	} {
		t.Run(string(k.kind)+" JWT", func(t *testing.T) {
			p := policy(k.kind)
			scoped := p
			scoped.Require.Scopes = []string{"write"}
			for _, tc := range []struct {
				name     string
				p        middleware.Policy
				token    string
				behavior clerktest.Behavior
				status   int
				reason   string
			}{
				{"valid", p, k.valid, clerktest.Normal, 200, ""},
				{"valid on an any route", policy(middleware.AnyToken), k.valid, clerktest.Normal, 200, ""},
				{"expired", p, k.expired, clerktest.Normal, 401, "token-expired"},
				{"unknown key", p, k.unknown, clerktest.Normal, 401, "jwk-kid-mismatch"},
				{"wrong kind for the route", policy(k.other), k.valid, clerktest.Normal, 401, "token-type-not-accepted"},
				{"Clerk down", p, k.valid, clerktest.Down, 200, ""},
				{"Clerk 429", p, k.valid, clerktest.RateLimited, 200, ""},
				{"Clerk 5xx", p, k.valid, clerktest.ServerError, 200, ""},
				{"scope missing", scoped, k.valid, clerktest.Normal, 403, "missing-scope"},
			} {
				e.inst.SetAPIBehavior(tc.behavior)
				status, reason, seen := e.call(t, tc.p, tc.token, false)
				if tc.behavior == clerktest.Down {
					if err := e.inst.Up(); err != nil {
						t.Fatal(err)
					}
				}
				e.inst.SetAPIBehavior(clerktest.Normal)
				if status != tc.status || reason != tc.reason {
					t.Errorf("%s: %d %q, want %d %q", tc.name, status, reason, tc.status, tc.reason)
				}
				if status == 200 && seen != k.seen {
					t.Errorf("%s: the handler saw %q, want %q", tc.name, seen, k.seen)
				}
			}
			if n := calls(); n != 0 {
				t.Errorf("JWTs cost %d Backend API calls", n)
			}
			// Counted by kind and outcome (valid, invalid, expired,
			// unavailable); the refused kind was not verified.
			if got, want := e.gate.Stats().MachineJWTs[k.kind], [4]uint64{6, 1, 1, 0}; got != want {
				t.Errorf("Stats().MachineJWTs[%s] = %v, want %v", k.kind, got, want)
			}
		})
	}
}

// M2M and OAuth JWTs verify networklessly against the instance's keys; a
// JWT of the wrong category, a foreign issuer or an expired one is refused.
func TestMachineJWTs(t *testing.T) {
	t.Parallel()
	e := newMachineEnv(t)
	_, m2m, err := e.inst.CreateM2MToken(e.mch.ID, clerktest.M2MTokenOptions{JWT: true, Scopes: []string{"mch_target"}})
	if err != nil {
		t.Fatal(err)
	}
	_, oat, err := e.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{JWT: true, ClientID: "client_9", Scopes: []string{"email", "profile"}})
	if err != nil {
		t.Fatal(err)
	}
	sessionCat := e.inst.MustMint(t, clerktest.WithMachine(), clerktest.WithHeader("cat", clerktest.CategorySession))
	expired := e.inst.MustMint(t, clerktest.WithMachine(), clerktest.WithExpiry(time.Now().Add(-time.Hour)))
	calls := func() int {
		return e.inst.Requests(clerktest.M2MTokensVerifyPath) + e.inst.Requests(clerktest.OAuthTokensVerifyPath)
	}
	for _, tc := range []struct {
		name   string
		p      middleware.Policy
		token  string
		status int
		reason string
		seen   string
	}{
		{"M2M JWT", policy(middleware.M2MToken), m2m, 200, "", "m2m_token " + e.mch.ID},
		{"OAuth JWT", policy(middleware.OAuthToken), oat, 200, "", "oauth_token user_"},
		{"OAuth JWT scopes", middleware.Policy{Accepts: []middleware.TokenType{middleware.OAuthToken}, Require: middleware.Requirements{Scopes: []string{"profile"}}}, oat, 200, "", "oauth_token"},
		{"M2M JWT on an OAuth route", policy(middleware.OAuthToken), m2m, 401, "token-type-not-accepted", ""},
		{"M2M JWT on a session route", policy(), m2m, 401, "token-type-mismatch", ""},
		{"OAuth JWT on a session route", policy(), oat, 401, "token-type-mismatch", ""},
		{"machine subject with the session category", policy(middleware.M2MToken), sessionCat, 401, "token-type-mismatch", ""},
		{"expired M2M JWT", policy(middleware.M2MToken), expired, 401, "token-expired", ""},
		{"a session on an M2M route", policy(middleware.M2MToken), e.inst.MustMint(t), 401, "token-type-not-accepted", ""},
		{"a session on an any route", policy(middleware.AnyToken), e.inst.MustMint(t, clerktest.WithUser("user_s")), 200, "", "session_token user_s"},
	} {
		status, reason, seen := e.call(t, tc.p, tc.token, false)
		if status != tc.status || reason != tc.reason || !strings.HasPrefix(seen, tc.seen) {
			t.Errorf("%s: %d %q %q, want %d %q %q", tc.name, status, reason, seen, tc.status, tc.reason, tc.seen)
		}
	}
	if calls() != 0 {
		t.Errorf("JWTs cost %d Backend API calls", calls())
	}
}

// The 429 of a rate limit names when to come back.
func TestMachineRateLimitAnswer(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	middleware.WriteError(w, &middleware.Error{Reason: middleware.ReasonMachineRateLimited, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, "x")
	var body struct{ Error, Reason string }
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" || body.Error != "rate-limited" {
		t.Errorf("%d Retry-After %q body %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// BenchmarkMachineCredentials: a cached opaque API key (no Backend API call:
// an HMAC and a cache lookup) and a networkless M2M JWT (a full signature
// check every time: machine JWTs are not cached).
func BenchmarkMachineCredentials(b *testing.B) {
	testKeys(b)
	inst := clerktest.Start(b, clerktest.Options{SigningKey: mainKey})
	api, err := clerkapi.New(clerkapi.Config{SecretKey: inst.SecretKey(), APIURL: inst.APIURL(), MaxRetries: -1})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := machine.New(machine.Config{API: api, TTL: time.Hour})
	g, _ := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...), Machines: v})
	_, key := inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"read"}})
	mch := inst.CreateMachine("bench")
	_, m2m, _ := inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{JWT: true, ExpiresIn: time.Hour})
	p := middleware.Policy{Accepts: []middleware.TokenType{middleware.AnyToken}}
	ctx := b.Context()
	for _, bc := range []struct{ name, token string }{{"cached-api-key", key}, {"m2m-jwt", m2m}} {
		if _, err := g.VerifyAny(ctx, bc.token, p); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.VerifyAny(ctx, bc.token, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
