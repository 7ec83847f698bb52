package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// frontProxyFixture is what the real-front-proxy tests (nginx, Caddy) put
// behind the shipped recipe: an echo app, and sessiongate's forward-auth
// endpoint with a public prefix, a role-protected prefix and a required
// catch-all.
type frontProxyFixture struct {
	inst *clerktest.Instance
	app  *httptest.Server
	sg   *httptest.Server
	hits atomic.Int64 // requests that reached the app
}

func newFrontProxyFixture(t *testing.T) *frontProxyFixture {
	t.Helper()
	fx := &frontProxyFixture{}
	fx.inst = clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	gate, err := middleware.New(middleware.Config{Issuer: fx.inst.Issuer(), Keys: jwks.NewMemory(fx.inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	fx.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fx.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(fx.app.Close)
	appURL := mustURL(t, fx.app.URL)
	p, err := proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{
		{Path: "/public", Upstream: appURL, Auth: proxy.Public},
		{Path: "/admin", Upstream: appURL, Auth: proxy.Required, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"admin"}}}},
		{Path: "/", Upstream: appURL, Auth: proxy.Required},
	}})
	if err != nil {
		t.Fatal(err)
	}
	fx.sg = httptest.NewServer(p)
	t.Cleanup(fx.sg.Close)
	return fx
}

func (fx *frontProxyFixture) sessiongateAddr() string { return fx.sg.Listener.Addr().String() }
func (fx *frontProxyFixture) appAddr() string         { return fx.app.Listener.Addr().String() }

type frontProxyCase struct {
	name     string
	path     string
	setup    []func(*http.Request)
	status   int               // sessiongate's decision (or the app's 200)
	reason   string            // X-Clerk-Auth-Reason on the response
	identity map[string]string // exact X-Sessiongate-* headers the app must see (on 200)
	only     string            // "nginx" or "caddy": a case for that front proxy alone
}

// run sends every case through the front proxy (named name) at addr.
// statusVia maps sessiongate's status to what the front proxy answers with
// it.
func (fx *frontProxyFixture) run(t *testing.T, name, addr string, statusVia func(int) int) {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil}, // never an HTTP_PROXY from the environment
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t.Cleanup(client.CloseIdleConnections)
	for _, tc := range fx.cases(t) {
		if tc.only != "" && tc.only != name {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.path, "#") {
				// Go's client never sends a fragment; an attacker's does.
				req.URL.Opaque, req.URL.Fragment = tc.path, ""
			}
			for _, f := range tc.setup {
				f(req)
			}
			before := fx.hits.Load()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			reached := fx.hits.Load() - before

			if want := statusVia(tc.status); resp.StatusCode != want {
				t.Fatalf("status %d, want %d (reason %q): %s", resp.StatusCode, want, resp.Header.Get("X-Clerk-Auth-Reason"), body.String())
			}
			if got := resp.Header.Get("X-Clerk-Auth-Reason"); got != tc.reason {
				t.Errorf("X-Clerk-Auth-Reason %q, want %q", got, tc.reason)
			}
			if tc.status != 200 {
				if reached != 0 {
					t.Errorf("the app was reached %d time(s) on a %d", reached, resp.StatusCode)
				}
				if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == 401 && !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("WWW-Authenticate %q, want sessiongate's Bearer challenge", got)
				}
				return
			}
			if reached != 1 {
				t.Fatalf("the app was reached %d time(s), want 1", reached)
			}
			var e echoed
			if err := json.Unmarshal(body.Bytes(), &e); err != nil {
				t.Fatalf("app answer: %v: %s", err, body.String())
			}
			if want := strings.SplitN(tc.path, "?", 2)[0]; e.Path != want {
				t.Errorf("app saw path %q, want %q", e.Path, want)
			}
			// Every header the app got whose name is an X-Sessiongate-
			// header in any spelling, must be exactly the expected identity.
			got := map[string]string{}
			for k, vs := range e.Header {
				n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
				if !strings.HasPrefix(n, "x-sessiongate-") {
					continue
				}
				if len(vs) != 1 {
					t.Errorf("app got %s %d times: %q", k, len(vs), vs)
				}
				got[k] = strings.Join(vs, ",")
			}
			for k, v := range got {
				if strings.Contains(v, "attacker") {
					t.Errorf("spoofed %s: %s reached the app", k, v)
				}
				if want, ok := tc.identity[k]; !ok || want != v {
					t.Errorf("app got %s: %q, want %q (present: %v)", k, v, want, ok)
				}
			}
			for k, v := range tc.identity {
				if _, ok := got[k]; !ok {
					t.Errorf("app did not get %s (want %q)", k, v)
				}
			}
		})
	}
}

func (fx *frontProxyFixture) cases(t *testing.T) []frontProxyCase {
	inst := fx.inst
	valid := inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithSession("sess_alice"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_support"}))
	expired := inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithExpiry(time.Now().Add(-time.Minute)))
	member := inst.MustMint(t, clerktest.WithUser("user_bob"), clerktest.WithSession("sess_bob"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "member"}))

	aliceIdentity := map[string]string{
		"X-Sessiongate-User-Id":         "user_alice",
		"X-Sessiongate-Session-Id":      "sess_alice",
		"X-Sessiongate-Org-Id":          "org_1",
		"X-Sessiongate-Org-Slug":        "acme",
		"X-Sessiongate-Org-Role":        "org:admin",
		"X-Sessiongate-Org-Permissions": "org:docs:read,org:docs:write",
		"X-Sessiongate-Actor-Id":        "user_support",
		"X-Sessiongate-Token-Type":      "session_token",
	}
	bobIdentity := map[string]string{
		"X-Sessiongate-User-Id":    "user_bob",
		"X-Sessiongate-Session-Id": "sess_bob",
		"X-Sessiongate-Org-Id":     "org_1",
		"X-Sessiongate-Org-Slug":   "acme",
		"X-Sessiongate-Org-Role":   "org:member",
		"X-Sessiongate-Token-Type": "session_token",
	}

	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	cookie := func(tok string) func(*http.Request) {
		return func(r *http.Request) {
			// __client_uat older than the token's iat: a current cookie.
			uat := time.Now().Add(-time.Hour).Unix()
			r.Header.Set("Cookie", fmt.Sprintf("theme=dark; __session=%s; __client_uat=%d", tok, uat))
		}
	}
	// spoofIdentity sends identity headers a client must never be able to
	// set, in the spellings an app might read as its own.
	spoofIdentity := func(r *http.Request) {
		r.Header["X-Sessiongate-User-Id"] = []string{"user_attacker"}
		r.Header["x-sessiongate-org-role"] = []string{"org:attacker"}
		r.Header["X_Sessiongate_User_Id"] = []string{"user_attacker_underscore"}
		r.Header["x_sessiongate_org_id"] = []string{"org_attacker"}
		r.Header["X-Sessiongate-Session-Id"] = []string{"sess_attacker"}
	}
	// forwarding sends, as a client, the headers a front proxy uses to
	// describe the original request: the front proxy passes them to
	// sessiongate unless the recipe replaces or clears each one.
	forwarding := func(uri string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("X-Forwarded-Uri", uri)
			r.Header.Set("X-Original-URI", uri)
			r.Header.Set("X-Forwarded-Method", "OPTIONS")
			r.Header.Set("X-Original-Method", "OPTIONS")
			r.Header.Set("X-Forwarded-Host", "evil.example")
			r.Header.Set("X-Forwarded-Proto", "gopher")
		}
	}

	return []frontProxyCase{
		{"valid bearer reaches the app with identity", "/app?x=1", []func(*http.Request){bearer(valid)}, 200, "", aliceIdentity, ""},
		{"valid bearer overrides spoofed identity", "/app", []func(*http.Request){bearer(valid), spoofIdentity}, 200, "", aliceIdentity, ""},
		{"valid __session cookie reaches the app with identity", "/app", []func(*http.Request){cookie(valid), spoofIdentity}, 200, "", aliceIdentity, ""},
		{"missing token is 401", "/app", nil, 401, "session-token-missing", nil, ""},
		{"missing token with spoofed identity is 401", "/app", []func(*http.Request){spoofIdentity}, 401, "session-token-missing", nil, ""},
		{"expired token is 401", "/app", []func(*http.Request){bearer(expired), spoofIdentity}, 401, "token-expired", nil, ""},
		{"expired cookie is 401", "/app", []func(*http.Request){cookie(expired)}, 401, "token-expired", nil, ""},
		{"garbage token is 401", "/app", []func(*http.Request){bearer("garbage")}, 401, "token-invalid", nil, ""},
		{"public route without token, spoofed identity dropped", "/public/page", []func(*http.Request){spoofIdentity}, 200, "", map[string]string{}, ""},
		{"public route with a valid token gets no identity", "/public", []func(*http.Request){bearer(valid), spoofIdentity}, 200, "", map[string]string{}, ""},
		// A client's own forwarding headers never choose the route: the
		// recipe sets or clears every one of them.
		{"spoofed X-Forwarded-Uri of a public path does not open a required one", "/app", []func(*http.Request){forwarding("/public")}, 401, "session-token-missing", nil, ""},
		{"spoofed X-Forwarded-Uri of a required path does not pass a role route", "/admin/x", []func(*http.Request){bearer(member), forwarding("/")}, 403, "missing-role", nil, ""},
		{"spoofed forwarding headers do not disturb a valid request", "/app", []func(*http.Request){bearer(member), forwarding("/public")}, 200, "", bobIdentity, ""},
		{"admin route with the admin role", "/admin/x", []func(*http.Request){bearer(valid), forwarding("/public")}, 200, "", aliceIdentity, ""},
		// ';' parameters that would change the route are refused, as are
		// dot segments: a public prefix cannot reach a required path.
		{"path parameter on a protected route's segment fails closed", "/admin;x/y", []func(*http.Request){bearer(member)}, 400, "path-ambiguous", nil, ""},
		// A raw '#' in the request line: nginx hands it to sessiongate and
		// to the app as it is, and many app stacks cut the path there
		// ("/admin#x" is their "/admin"): refused. Caddy re-encodes it
		// ("/admin%23x") for both, so both read the same path.
		{"raw fragment in the request line fails closed", "/admin#x", []func(*http.Request){bearer(member)}, 400, "forwarded-request-invalid", nil, "nginx"},
		{"raw fragment in the request line is one path to both", "/admin#x", []func(*http.Request){bearer(member)}, 200, "", bobIdentity, "caddy"},
		{"dot segments through a public prefix fail closed", "/public/../app", []func(*http.Request){spoofIdentity}, 400, "path-not-clean", nil, ""},
	}
}
