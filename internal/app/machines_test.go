package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// machineHarness: /keys takes API keys with the "api" scope, /m2m M2M
// tokens, /oauth OAuth tokens, /any everything, / sessions; the upstream
// echoes the identity headers it got.
func machineHarness(t *testing.T, mutate func(*config.Config)) (*harness, *atomic.Value) {
	t.Helper()
	var seen atomic.Value
	seen.Store(http.Header{})
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{
			{Path: "/keys", Upstream: c.Upstream, Accepts: []string{"api_key"}, Require: config.Require{Scopes: []string{"api"}}},
			{Path: "/m2m", Upstream: c.Upstream, Accepts: []string{"m2m_token"}},
			{Path: "/oauth", Upstream: c.Upstream, Accepts: []string{"oauth_token"}},
			{Path: "/any", Upstream: c.Upstream, Accepts: []string{"any"}},
			{Path: "/", Upstream: c.Upstream},
		}
		c.SignInURL = "https://accounts.example.com/sign-in"
		c.Cache.MachineTTL = config.Duration(time.Millisecond)
		c.Cache.MachineNegativeTTL = config.Duration(time.Millisecond)
		if mutate != nil {
			mutate(c)
		}
	}, func(w http.ResponseWriter, r *http.Request) { seen.Store(r.Header.Clone()) })
	h.waitReady(t, 200)
	return h, &seen
}

func bearerGet(t *testing.T, url, token string, extra ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Through the binary's wiring: each kind reaches the routes that take it
// with the identity headers of docs/machine-auth.md, is refused elsewhere
// without a Backend API call, and Clerk failing is a 503, not a bad key.
func TestMachineCredentialsThroughTheProxy(t *testing.T) {
	t.Parallel()
	h, seen := machineHarness(t, nil)
	mch := h.inst.CreateMachine("svc")
	keyID, key := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Subject: "org_" + strings.Repeat("a", 27), Scopes: []string{"api", "read"}})
	_, noScope := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"read"}})
	m2mID, m2m, _ := h.inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{Scopes: []string{"mch_x"}})
	_, m2mJWT, _ := h.inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{JWT: true})
	oatID, oat, _ := h.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{UserID: "user_" + strings.Repeat("b", 27), ClientID: "client_7", Scopes: []string{"email"}})
	calls := func() int {
		return h.inst.Requests(clerktest.APIKeysVerifyPath) + h.inst.Requests(clerktest.M2MTokensVerifyPath) + h.inst.Requests(clerktest.OAuthTokensVerifyPath)
	}
	for _, tc := range []struct {
		name, path, token string
		status            int
		reason            string
		headers           map[string]string
	}{
		{"API key", "/keys", key, 200, "", map[string]string{"Token-Type": "api_key", "Subject": "org_" + strings.Repeat("a", 27),
			"Org-Id": "org_" + strings.Repeat("a", 27), "Token-Id": keyID, "Scopes": "api,read", "User-Id": "", "Session-Id": ""}},
		{"API key without the scope", "/keys", noScope, 403, "missing-scope", nil},
		{"M2M token", "/m2m", m2m, 200, "", map[string]string{"Token-Type": "m2m_token", "Machine-Id": mch.ID, "Token-Id": m2mID, "Scopes": "mch_x"}},
		{"M2M JWT", "/m2m", m2mJWT, 200, "", map[string]string{"Token-Type": "m2m_token", "Machine-Id": mch.ID}},
		{"OAuth token", "/oauth", oat, 200, "", map[string]string{"Token-Type": "oauth_token", "User-Id": "user_" + strings.Repeat("b", 27),
			"Client-Id": "client_7", "Token-Id": oatID, "Scopes": "email"}},
		{"API key on any", "/any", key, 200, "", map[string]string{"Token-Type": "api_key"}},
		{"session on any", "/any", h.inst.MustMint(t, clerktest.WithUser("user_s")), 200, "", map[string]string{"Token-Type": "session_token", "User-Id": "user_s"}},
		{"API key on a session route", "/", key, 401, "token-type-not-accepted", nil},
		{"API key on the M2M route", "/m2m", key, 401, "token-type-not-accepted", nil},
		{"session on the API-key route", "/keys", h.inst.MustMint(t), 401, "token-type-not-accepted", nil},
		{"made-up API key", "/keys", "ak_madeup", 401, "machine-token-invalid", nil},
	} {
		before := calls()
		resp := bearerGet(t, h.proxyURL+tc.path, tc.token)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Clerk-Auth-Reason") != tc.reason {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
			continue
		}
		if tc.reason == "token-type-not-accepted" && calls() != before {
			t.Errorf("%s: a refused kind cost %d Backend API calls", tc.name, calls()-before)
		}
		got := seen.Load().(http.Header)
		for name, want := range tc.headers {
			if v := got.Get("X-Sessiongate-" + name); v != want {
				t.Errorf("%s: X-Sessiongate-%s = %q, want %q", tc.name, name, v, want)
			}
		}
		rest := got.Clone()
		rest.Del("Authorization") // forward_token: the credential itself goes upstream there
		if tc.status == 200 && strings.Contains(fmt.Sprint(rest), key) {
			t.Errorf("%s: the secret reached the upstream outside Authorization", tc.name)
		}
	}
	// Clerk failing or rate-limiting: 503 with Retry-After, never a bad key.
	for _, b := range []clerktest.Behavior{clerktest.ServerError, clerktest.RateLimited} {
		h.clk.Advance(time.Second) // past cache.machine_ttl
		h.inst.SetAPIBehavior(b)
		resp := bearerGet(t, h.proxyURL+"/keys", key)
		h.inst.SetAPIBehavior(clerktest.Normal)
		if resp.StatusCode != 503 || resp.Header.Get("X-Clerk-Auth-Reason") != "machine-token-verification-unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("Clerk %v: %d %q", b, resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
		}
	}
	// /readyz does not follow the Backend API.
	h.inst.SetAPIBehavior(clerktest.ServerError)
	if resp, _ := getWith(t, h.adminURL+"/readyz", ""); resp.StatusCode != 200 {
		t.Errorf("/readyz %d while the Backend API fails", resp.StatusCode)
	}
	h.inst.SetAPIBehavior(clerktest.Normal)
}

// A machine credential is never read from a cookie and never redirected to
// a sign-in page (or to Clerk's handshake), even on a browser navigation.
func TestMachineCredentialsNeverRedirectedNorFromCookies(t *testing.T) {
	t.Parallel()
	h, _ := machineHarness(t, nil)
	_, key := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"api"}})
	nav := []string{"Sec-Fetch-Dest", "document", "Accept", "text/html"}
	resp := bearerGet(t, h.proxyURL+"/", "ak_madeup", nav...)
	if resp.StatusCode != 401 || resp.Header.Get("Location") != "" {
		t.Errorf("bearer navigation: %d Location %q, want a 401 without redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", h.proxyURL+"/any", nil)
	req.AddCookie(&http.Cookie{Name: "__session", Value: key})
	cresp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cresp.Body.Close()
	if cresp.StatusCode == 200 {
		t.Error("an API key in the __session cookie was accepted")
	}
	if n := h.inst.Requests(clerktest.APIKeysVerifyPath); n != 0 {
		t.Errorf("%d Backend API calls for a key in a cookie", n)
	}
}

// The flood: N distinct made-up ak_… values from one address cost at most
// the address's burst of Backend API calls, and a cached valid key keeps
// getting 200 during the flood.
func TestMachineFloodIsBoundedThroughTheProxy(t *testing.T) {
	t.Parallel()
	h, _ := machineHarness(t, func(c *config.Config) {
		c.Machine.MissRate = 0.5
		c.Machine.MissBurst = 5
		c.Cache.MachineTTL = config.Duration(time.Minute)
	})
	_, key := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"api"}})
	if resp := bearerGet(t, h.proxyURL+"/keys", key); resp.StatusCode != 200 {
		t.Fatalf("valid key: %d", resp.StatusCode)
	}
	base := h.inst.Requests(clerktest.APIKeysVerifyPath)
	const n = 300
	var wg sync.WaitGroup
	var limited, good atomic.Int64
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(2)
		sem <- struct{}{}
		go func(i int) {
			defer func() { wg.Done(); <-sem }()
			if r := bearerGet(t, h.proxyURL+"/keys", fmt.Sprintf("ak_flood_%d", i)); r.StatusCode == 429 && r.Header.Get("Retry-After") != "" {
				limited.Add(1)
			}
		}(i)
		go func() {
			defer wg.Done()
			if r := bearerGet(t, h.proxyURL+"/keys", key); r.StatusCode == 200 {
				good.Add(1)
			}
		}()
	}
	wg.Wait()
	calls := h.inst.Requests(clerktest.APIKeysVerifyPath) - base
	// The budget: the burst, plus what the rate refills while the flood
	// runs (0.5/s: at most a few calls over a few seconds).
	if calls > 5+3 {
		t.Errorf("%d made-up keys cost %d Backend API calls, want at most the burst (5) and its refill", n, calls)
	}
	if limited.Load() < n-8 {
		t.Errorf("%d of %d answered 429 with Retry-After", limited.Load(), n)
	}
	if good.Load() != n {
		t.Errorf("the cached key got 200 %d times of %d during the flood", good.Load(), n)
	}
	t.Logf("%d made-up keys: %d Backend API calls, %d answered 429; the cached key %d/%d", n, calls, limited.Load(), good.Load(), n)
}

// /metrics counts opaque verifications by kind and outcome (cache hits
// included) and the cache hits and misses, exactly.
func TestMachineMetrics(t *testing.T) {
	t.Parallel()
	h, _ := machineHarness(t, func(c *config.Config) {
		c.Cache.MachineTTL = config.Duration(time.Minute)
		c.Cache.MachineNegativeTTL = config.Duration(time.Minute)
		c.Machine.MissRate = 0.001
		c.Machine.MissBurst = 4
	})
	_, key := h.inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"api"}})
	for _, tc := range []struct {
		token  string
		status int
	}{
		{key, 200},          // miss 1
		{key, 200},          // hit
		{"ak_unknown", 401}, // miss 2
		{"ak_unknown", 401}, // hit
		{"ak_x1", 401},      // miss 3
		{"ak_x2", 401},      // miss 4: the burst is spent
		{"ak_x3", 429},      // miss 5, rate-limited
	} {
		if resp := bearerGet(t, h.proxyURL+"/keys", tc.token); resp.StatusCode != tc.status {
			t.Fatalf("%s: %d, want %d", tc.token[:5], resp.StatusCode, tc.status)
		}
	}
	_, body := getWith(t, h.adminURL+"/metrics", "")
	for _, want := range []string{
		`sessiongate_machine_verifications_total{kind="api_key",outcome="valid"} 2`,
		`sessiongate_machine_verifications_total{kind="api_key",outcome="invalid"} 4`,
		`sessiongate_machine_verifications_total{kind="api_key",outcome="rate_limited"} 1`,
		`sessiongate_machine_verifications_total{kind="api_key",outcome="revoked"} 0`,
		`sessiongate_machine_verifications_total{kind="m2m_token",outcome="valid"} 0`,
		`sessiongate_machine_cache_hits_total 2`,
		`sessiongate_machine_cache_misses_total 5`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %q in /metrics:\n%s", want, grepLines(body, "sessiongate_machine_"))
		}
	}
	if n := h.inst.Requests(clerktest.APIKeysVerifyPath); n != 4 {
		t.Errorf("%d Backend API calls, want 4 (the misses within the burst)", n)
	}
}

// On routes where the browser handshake is on (a publishable key), a
// machine credential in Authorization never gets the handshake redirect nor
// the sign-in redirect, whatever Clerk cookies come with it; the same
// navigation without it does get the handshake.
func TestMachineCredentialsNeverTriggerTheHandshake(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, SecretKey: "sk_live_machine_handshake"})
	a := newClerkApp(t, inst, clk, func(c *config.Config) {
		c.SignInURL = "https://accounts.example.com/sign-in"
		c.Routes = []config.Route{
			{Path: "/api", Upstream: c.Upstream, Accepts: []string{"session_token", "api_key"}},
			{Path: "/any", Upstream: c.Upstream, Accepts: []string{"any"}},
			{Path: "/", Upstream: c.Upstream},
		}
	})
	_, key := inst.CreateAPIKey(clerktest.APIKeyOptions{})
	mch := inst.CreateMachine("nav")
	expiredJWT := inst.MustMint(t, clerktest.WithMachine(), clerktest.WithUser(mch.ID), clerktest.WithExpiry(clk.Now().Add(-time.Hour)))
	expiredSession := inst.MustMint(t, clerktest.WithExpiry(clk.Now().Add(-time.Hour)))
	req := func(path, bearer string) *http.Request {
		r := nav("http://app.example.test" + path)
		r.AddCookie(&http.Cookie{Name: "__client_uat", Value: "1"})
		r.AddCookie(&http.Cookie{Name: "__session", Value: expiredSession})
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return r
	}
	// The control: this navigation, without a machine credential, is sent
	// through the handshake.
	if w := serveApp(a, req("/api", "")); w.Code != http.StatusTemporaryRedirect || !strings.Contains(w.Header().Get("Location"), clerktest.HandshakePath) {
		t.Fatalf("without a credential: %d Location %q, want the handshake", w.Code, w.Header().Get("Location"))
	}
	for _, tc := range []struct {
		name, path, token string
		status            int
		reason            string
	}{
		{"valid API key", "/api", key, 200, ""},
		{"made-up API key", "/api", "ak_madeup", 401, "machine-token-invalid"},
		{"API key on a session route", "/", key, 401, "token-type-not-accepted"},
		{"expired M2M JWT", "/any", expiredJWT, 401, "token-expired"},
	} {
		w := serveApp(a, req(tc.path, tc.token))
		if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason || w.Header().Get("Location") != "" {
			t.Errorf("%s: %d %q Location %q, want %d %q and no redirect", tc.name, w.Code, w.Header().Get("X-Clerk-Auth-Reason"),
				w.Header().Get("Location"), tc.status, tc.reason)
		}
	}
}
