package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// settable clock for max_stale.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

type harness struct {
	*serving
	inst *clerktest.Instance
	app  *app.App
	logs *observer.ObservedLogs
	clk  *clock
}

func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get("X-Sessiongate-User-Id")})
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func start(t *testing.T, mutate func(*config.Config, *clerktest.Instance), up http.HandlerFunc) *harness {
	t.Helper()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	cfg := baseConfig(inst)
	cfg.Upstream = upstream(t, up)
	if mutate != nil {
		mutate(&cfg, inst)
	}
	cfg.Normalize()
	core, logs := observer.New(zap.DebugLevel)
	clk := &clock{}
	a, err := app.New(&cfg, app.Options{Logger: zap.New(core), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{serving: serve(t, a), inst: inst, app: a, logs: logs, clk: clk}
}

func (h *harness) waitReady(t *testing.T, want int) {
	t.Helper()
	waitReady(t, h.adminURL, want)
}

func getWith(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	h := start(t, nil, nil)
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t, clerktest.WithUser("user_e2e"))
	resp, body := getWith(t, h.proxyURL+"/anything", tok)
	if resp.StatusCode != 200 || !strings.Contains(body, "user_e2e") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, _ = getWith(t, h.proxyURL+"/anything", "")
	if resp.StatusCode != 401 || resp.Header.Get("X-Clerk-Auth-Reason") != "session-token-missing" {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	if resp, _ := getWith(t, h.adminURL+"/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

func TestReadinessFollowsTheKeySet(t *testing.T) {
	t.Parallel()
	var inst *clerktest.Instance
	h := start(t, func(c *config.Config, i *clerktest.Instance) {
		inst = i
		i.SetJWKSBehavior(clerktest.ServerError) // JWKS failing at start-up
		c.JWKS.MaxStale = config.Duration(time.Hour)
	}, nil)
	h.waitReady(t, 503)
	resp, body := getWith(t, h.adminURL+"/readyz", "")
	if resp.StatusCode != 503 || !strings.Contains(body, "not loaded") {
		t.Fatalf("readyz before keys: %d %s", resp.StatusCode, body)
	}
	// Requests fail closed while there are no keys.
	resp, _ = getWith(t, h.proxyURL+"/x", inst.MustMint(t))
	if resp.StatusCode != 503 || resp.Header.Get("X-Clerk-Auth-Reason") != "jwk-remote-failed-to-load" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("request without keys: %d %q", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	inst.SetJWKSBehavior(clerktest.Normal) // the retry with backoff picks it up
	h.waitReady(t, 200)
	// The JWKS fails again and the last good set ages past max_stale.
	inst.SetJWKSBehavior(clerktest.ServerError)
	h.clk.Advance(2 * time.Hour)
	h.waitReady(t, 503)
	resp, body = getWith(t, h.adminURL+"/readyz", "")
	if !strings.Contains(body, "max_stale") {
		t.Fatalf("readyz past max_stale: %d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := start(t, nil, nil)
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t)
	getWith(t, h.proxyURL+"/a", tok)
	getWith(t, h.proxyURL+"/a", tok)
	getWith(t, h.proxyURL+"/a", "")
	resp, body := getWith(t, h.adminURL+"/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics %d", resp.StatusCode)
	}
	for _, want := range []string{
		`sessiongate_requests_total{reason="",route="/",status="200"} 2`,
		`sessiongate_requests_total{reason="session-token-missing",route="/",status="401"} 1`,
		"sessiongate_verification_duration_seconds_count 3",
		"sessiongate_token_cache_hits_total 1",
		"sessiongate_token_cache_misses_total 1",
		"sessiongate_jwks_fetches_total",
		"sessiongate_jwks_key_age_seconds",
		`sessiongate_upstream_duration_seconds_count{route="/"} 2`,
		`sessiongate_request_duration_seconds_count{route="/"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) { c.AdminToken = "s3cret-admin" }, nil)
	h.waitReady(t, 200)
	if resp, _ := getWith(t, h.adminURL+"/metrics", ""); resp.StatusCode != 401 {
		t.Fatalf("metrics without the admin token: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.adminURL+"/metrics", "wrong"); resp.StatusCode != 401 {
		t.Fatalf("metrics with a wrong token: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.adminURL+"/metrics", "s3cret-admin"); resp.StatusCode != 200 {
		t.Fatalf("metrics with the admin token: %d", resp.StatusCode)
	}
	// Probes stay open.
	if resp, _ := getWith(t, h.adminURL+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
}

func TestAdminPprof(t *testing.T) {
	t.Parallel()
	off := start(t, func(c *config.Config, _ *clerktest.Instance) { c.AdminToken = "s3cret-admin" }, nil)
	on := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.AdminToken = "s3cret-admin"
		c.AdminPprof = true
	}, nil)
	off.waitReady(t, 200)
	on.waitReady(t, 200)
	if resp, _ := getWith(t, off.adminURL+"/debug/pprof/cmdline", "s3cret-admin"); resp.StatusCode != 404 {
		t.Fatalf("pprof served without admin_pprof: %d", resp.StatusCode)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/goroutine", "/debug/pprof/symbol"} {
		if resp, _ := getWith(t, on.adminURL+path, ""); resp.StatusCode != 401 {
			t.Errorf("%s without the admin token: %d", path, resp.StatusCode)
		}
		if resp, _ := getWith(t, on.adminURL+path, "wrong"); resp.StatusCode != 401 {
			t.Errorf("%s with a wrong token: %d", path, resp.StatusCode)
		}
		if resp, _ := getWith(t, on.adminURL+path, "s3cret-admin"); resp.StatusCode != 200 {
			t.Errorf("%s with the admin token: %d", path, resp.StatusCode)
		}
	}
	resp, body := getWith(t, on.adminURL+"/debug/pprof/profile?seconds=1", "s3cret-admin")
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("CPU profile: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestAccessLogHasOneLinePerRequestAndNoSecrets(t *testing.T) {
	t.Parallel()
	h := start(t, nil, nil)
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t, clerktest.WithUser("user_logged"))
	expired := h.inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Hour)))
	getWith(t, h.proxyURL+"/ok", tok)
	getWith(t, h.proxyURL+"/expired", expired)
	req, _ := http.NewRequest("GET", h.proxyURL+"/cookie", nil)
	req.AddCookie(&http.Cookie{Name: "__session", Value: tok})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	lines := h.logs.FilterMessage("request").All()
	if len(lines) != 3 {
		t.Fatalf("%d access-log lines, want 3", len(lines))
	}
	first := lines[0].ContextMap()
	for _, k := range []string{"route", "status", "reason", "duration", "user_id", "request_id"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access-log line lacks %q: %v", k, first)
		}
	}
	if first["user_id"] != "user_logged" || lines[1].ContextMap()["reason"] != "token-expired" {
		t.Errorf("access-log content: %v / %v", first, lines[1].ContextMap())
	}
	for _, e := range h.logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, secret := range []string{h.inst.SecretKey(), strings.Split(tok, ".")[2], strings.Split(expired, ".")[2], strings.Split(tok, ".")[1]} {
			if strings.Contains(line, secret) {
				t.Fatalf("log line leaks a secret or token: %s", line)
			}
		}
	}
}

func TestGracefulDrain(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", Auth: config.AuthPublic}}
	}, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		fmt.Fprint(w, "finished")
	})
	h.waitReady(t, 200)
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.proxyURL + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	h.cancel() // what SIGTERM does in the binary
	// New connections are refused once the listener is closed.
	testwait.Eventually(t, "the proxy listener to refuse connections once shutdown began", func() bool {
		c, err := net.DialTimeout("tcp", h.proxyAddr, 200*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(release)
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-h.done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	h.done <- nil // for the cleanup
}

// routes[].case_insensitive reaches the proxy: with it, /ADMIN is judged by
// the protected /admin route; without it, by the public catch-all.
func TestRouteCaseInsensitiveFromConfig(t *testing.T) {
	t.Parallel()
	for _, ci := range []bool{false, true} {
		h := start(t, func(c *config.Config, _ *clerktest.Instance) {
			c.Routes = []config.Route{
				{Path: "/admin", Upstream: c.Upstream, CaseInsensitive: ci},
				{Path: "/", Upstream: c.Upstream, Auth: config.AuthPublic},
			}
		}, nil)
		h.waitReady(t, 200)
		want := 200
		if ci {
			want = 401
		}
		if resp, _ := getWith(t, h.proxyURL+"/ADMIN/users", ""); resp.StatusCode != want {
			t.Errorf("case_insensitive %v: /ADMIN/users answered %d, want %d", ci, resp.StatusCode, want)
		}
	}
}

// headers.claims and require.features/plans/reverification from the
// configuration reach the proxy: a mapped claim arrives upstream (and a
// client's copy of it never does), unmet requirements are 403s with their
// reasons, and a control character in a claim is counted, not sent.
func TestClaimHeadersAndRequirementsFromConfig(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Headers.Claims = map[string]string{"X-User-Email": "email"}
		c.Routes = []config.Route{
			{Path: "/billing", Upstream: c.Upstream, Require: config.Require{Plans: []string{"org:pro"}, Features: []string{"user:export"},
				Reverification: &config.Reverification{Preset: "strict"}},
				Headers: config.RouteHeaders{Claims: map[string]string{"X-Plan": "pla"}}},
			{Path: "/", Upstream: c.Upstream},
		}
	}, func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Clone())
	})
	h.waitReady(t, 200)
	var lastBody []byte
	get := func(path string, opts ...clerktest.TokenOption) (*http.Response, http.Header) {
		t.Helper()
		seen.Store(http.Header{})
		req, _ := http.NewRequest("GET", h.proxyURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+h.inst.MustMint(t, opts...))
		req.Header.Set("x_user_email", "attacker@example.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		lastBody, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, seen.Load().(http.Header)
	}
	resp, up := get("/", clerktest.WithClaim("email", "ada@example.com"))
	if resp.StatusCode != 200 || up.Get("X-User-Email") != "ada@example.com" || len(up.Values("X_user_email")) != 0 {
		t.Fatalf("/: %d, upstream got %v", resp.StatusCode, up)
	}
	resp, _ = get("/billing", clerktest.WithPlan("u:pro"), clerktest.WithUserFeatures("export"))
	if resp.StatusCode != 403 || resp.Header.Get("X-Clerk-Auth-Reason") != "missing-plan" {
		t.Fatalf("/billing without the plan: %d %q", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	resp, _ = get("/billing", clerktest.WithPlan("o:pro"), clerktest.WithUserFeatures("export"), clerktest.WithFactorVerificationAge(0, 11))
	if resp.StatusCode != 403 || resp.Header.Get("X-Clerk-Auth-Reason") != "reverification-required" {
		t.Fatalf("/billing with an old second factor: %d %q", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	// The proxy's 403 carries Clerk's clerk_error, for useReverification.
	var rv struct {
		ClerkError struct {
			Type, Reason string
			Metadata     struct{ Reverification any }
		} `json:"clerk_error"`
	}
	if err := json.Unmarshal(lastBody, &rv); err != nil || rv.ClerkError.Type != "forbidden" ||
		rv.ClerkError.Reason != "reverification-error" || rv.ClerkError.Metadata.Reverification != "strict" {
		t.Fatalf("reverification 403 body %s (%v)", lastBody, err)
	}
	resp, up = get("/billing", clerktest.WithPlan("o:pro"), clerktest.WithUserFeatures("export"), clerktest.WithFactorVerificationAge(0, 1),
		clerktest.WithClaim("email", "bad\nvalue"))
	if resp.StatusCode != 200 || up.Get("X-Plan") != "o:pro" || len(up.Values("X-User-Email")) != 0 {
		t.Fatalf("/billing: %d, upstream got %v", resp.StatusCode, up)
	}
	_, body := getWith(t, h.adminURL+"/metrics", "")
	if !strings.Contains(body, `sessiongate_claim_headers_dropped_total{header="X-User-Email",reason="control-character"} 1`) {
		t.Errorf("the dropped claim is not counted:\n%s", grepLines(body, "claim_headers"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
