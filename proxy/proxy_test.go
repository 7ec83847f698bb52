package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

var (
	keyOnce sync.Once
	testKey *clerktest.SigningKey
)

func signingKey(tb testing.TB) *clerktest.SigningKey {
	keyOnce.Do(func() {
		k, err := clerktest.NewSigningKey("ins_proxytest", "RS256")
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// echo is an upstream that answers with what it received.
type echoed struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  string              `json:"query"`
	Host   string              `json:"host"`
	Header map[string][]string `json:"header"`
}

func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type fixture struct {
	inst     *clerktest.Instance
	gate     *middleware.Gate
	proxy    *proxy.Proxy
	upstream *httptest.Server
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newFixture(t *testing.T, routes func(up *url.URL) []proxy.Route, mutate func(*proxy.Options)) *fixture {
	t.Helper()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	up := echoUpstream(t)
	upURL := mustURL(t, up.URL)
	var rs []proxy.Route
	if routes != nil {
		rs = routes(upURL)
	} else {
		rs = []proxy.Route{{Path: "/", Upstream: upURL, ForwardToken: true}}
	}
	opts := proxy.Options{Gate: gate, Routes: rs}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{inst: inst, gate: gate, proxy: p, upstream: up}
}

func (f *fixture) do(t *testing.T, r *http.Request) (*httptest.ResponseRecorder, *echoed) {
	t.Helper()
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, r)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		return w, nil
	}
	var e echoed
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Method == "" {
		return w, nil
	}
	return w, &e
}

func get(path, token string) *http.Request {
	r := httptest.NewRequest("GET", "http://app.example.com"+path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func hdr(e *echoed, name string) string {
	for k, v := range e.Header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// spoof adds every spelling of the identity headers an upstream might read
// as its own.
func spoof(r *http.Request) {
	for _, name := range []string{"X-Sessiongate-User-Id", "x-sessiongate-user-id", "X_Sessiongate_User_Id", "X-SESSIONGATE-ORG-ROLE", "x_sessiongate-session_id", "X-Sessiongate-Anything"} {
		r.Header[name] = append(r.Header[name], "user_attacker")
	}
	r.Header.Add("X-Sessiongate-User-Id", "user_attacker2") // repeated
}

func noSpoofed(t *testing.T, e *echoed) {
	t.Helper()
	for k, vs := range e.Header {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if strings.HasPrefix(n, "x-sessiongate-") {
			for _, v := range vs {
				if strings.Contains(v, "attacker") {
					t.Fatalf("spoofed header %s: %s reached the upstream", k, v)
				}
			}
		}
	}
}

func TestRoutePolicies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/public", Upstream: up, Auth: proxy.Public, ForwardToken: true},
			{Path: "/optional", Upstream: up, Auth: proxy.Optional, ForwardToken: true},
			{Path: "/", Upstream: up, Auth: proxy.Required, ForwardToken: true},
		}
	}, nil)
	valid := f.inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithSession("sess_alice"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_support"}))

	cases := []struct {
		name     string
		path     string
		token    string
		status   int
		identity bool
	}{
		{"public without token", "/public/x", "", 200, false},
		{"public with a valid token gets no identity", "/public/x", valid, 200, false},
		{"public with garbage token", "/public", "garbage", 200, false},
		{"optional without token", "/optional", "", 200, false},
		{"optional with invalid token", "/optional", "garbage", 200, false},
		{"optional with valid token", "/optional/a", valid, 200, true},
		{"required without token", "/app", "", 401, false},
		{"required with invalid token", "/app", "garbage", 401, false},
		{"required with valid token", "/app", valid, 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(tc.path, tc.token)
			spoof(r)
			w, e := f.do(t, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				if w.Header().Get("X-Clerk-Auth-Reason") == "" {
					t.Fatal("no reason header")
				}
				return
			}
			if e == nil {
				t.Fatalf("upstream not reached: %s", w.Body)
			}
			noSpoofed(t, e)
			if got := hdr(e, "X-Sessiongate-User-Id"); (got != "") != tc.identity {
				t.Fatalf("identity header %q, want identity=%v", got, tc.identity)
			}
			if tc.identity {
				want := map[string]string{
					"X-Sessiongate-User-Id": "user_alice", "X-Sessiongate-Session-Id": "sess_alice",
					"X-Sessiongate-Org-Id": "org_1", "X-Sessiongate-Org-Slug": "acme", "X-Sessiongate-Org-Role": "org:admin",
					"X-Sessiongate-Org-Permissions": "org:docs:read,org:docs:write", "X-Sessiongate-Actor-Id": "user_support",
				}
				for k, v := range want {
					if got := hdr(e, k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if n := len(e.Header["X-Sessiongate-User-Id"]); n != 1 {
					t.Errorf("X-Sessiongate-User-Id has %d values", n)
				}
			}
		})
	}
}

func TestOrganizationRequirements(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/org", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Org: true}}},
			{Path: "/admin", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"admin"}}}},
			{Path: "/billing", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"org:admin", "org:billing"}}}},
			{Path: "/docs", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Permissions: []string{"org:docs:read", "org:docs:write"}}}},
			{Path: "/pending-ok", Upstream: up, Policy: middleware.Policy{AllowPending: true}},
			{Path: "/", Upstream: up},
		}
	}, nil)
	noOrg := f.inst.MustMint(t)
	member := f.inst.MustMint(t, clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "member", Permissions: []string{"org:docs:read"}}))
	admin := f.inst.MustMint(t, clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}))
	pending := f.inst.MustMint(t, clerktest.WithPending())
	cases := []struct {
		path, token string
		status      int
		reason      string
	}{
		{"/org", noOrg, 403, "missing-org"},
		{"/org", member, 200, ""},
		{"/admin", noOrg, 403, "missing-org"},
		{"/admin", member, 403, "missing-role"},
		{"/admin", admin, 200, ""},
		{"/billing", member, 403, "missing-role"},
		{"/billing", admin, 200, ""},
		{"/docs", member, 403, "missing-permission"},
		{"/docs", admin, 200, ""},
		{"/docs", noOrg, 403, "missing-org"},
		{"/pending-ok", pending, 200, ""},
		{"/", pending, 401, "session-pending"},
	}
	for _, tc := range cases {
		w, _ := f.do(t, get(tc.path, tc.token))
		if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
			t.Errorf("%s: %d %q, want %d %q", tc.path, w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
		}
		if tc.status == 403 {
			var body map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if body["error"] != "forbidden" || body["reason"] != tc.reason {
				t.Errorf("%s: body %v", tc.path, body)
			}
			if w.Header().Get("WWW-Authenticate") != "" || w.Header().Get("X-Clerk-Auth-Status") != "" {
				t.Errorf("%s: 403 with 401 headers", tc.path)
			}
		}
	}
}

func TestRouteMatching(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/api", Upstream: up, Auth: proxy.Public, Name: "api"},
			{Path: "/api/admin/", Upstream: up, Auth: proxy.Required, Name: "api-admin"},
			{Path: "/", Upstream: up, Auth: proxy.Required, Name: "root"},
			{Path: "/", Host: "public.example.com", Upstream: up, Auth: proxy.Public, Name: "public-host"},
		}
	}, nil)
	cases := []struct {
		host, path string
		status     int
	}{
		{"app.example.com", "/api", 200},
		{"app.example.com", "/api/x", 200},
		{"app.example.com", "/apix", 401},      // segment-aware: not /api
		{"app.example.com", "/api/admin", 401}, // longest prefix
		{"app.example.com", "/api/admin/users", 401},
		{"app.example.com", "/api/administrator", 200}, // not the /api/admin segment
		{"app.example.com", "/", 401},
		{"public.example.com", "/anything", 200},
		{"PUBLIC.example.com:8080", "/anything", 200},
		{"public.example.com", "/api/admin/x", 401}, // a longer path beats the host route
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "http://"+tc.host+tc.path, nil)
		w, _ := f.do(t, r)
		if w.Code != tc.status {
			t.Errorf("%s%s: status %d, want %d", tc.host, tc.path, w.Code, tc.status)
		}
	}
}

func TestUncleanPathsAreRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/public", Upstream: up, Auth: proxy.Public}, {Path: "/", Upstream: up}}
	}, nil)
	for _, p := range []string{"/public/../admin", "/public/./x", "/public//x", "//public", "/public/..", `/public\..\admin`, "/public/%2e%2e/admin"} {
		r := httptest.NewRequest("GET", "http://app.example.com/", nil)
		u, err := url.Parse("http://app.example.com" + p)
		if err != nil {
			t.Fatal(err)
		}
		r.URL = u
		r.RequestURI = p
		w, e := f.do(t, r)
		if w.Code != 400 || e != nil {
			t.Errorf("%q: status %d, upstream reached %v", p, w.Code, e != nil)
		}
	}
}

func TestForwardTokenFalse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/strip", Upstream: up, ForwardToken: false}, {Path: "/", Upstream: up, ForwardToken: true}}
	}, nil)
	tok := f.inst.MustMint(t)
	for _, tc := range []struct {
		path       string
		wantAuth   bool
		wantCookie string
	}{
		{"/strip", false, "theme=dark; lang=en"},
		{"/keep", true, "theme=dark; __session=" + tok + "; lang=en; __session_abc=x"},
	} {
		r := get(tc.path, tok)
		r.Header.Set("Cookie", "theme=dark; __session="+tok+"; lang=en; __session_abc=x")
		_, e := f.do(t, r)
		if e == nil {
			t.Fatalf("%s: upstream not reached", tc.path)
		}
		if (hdr(e, "Authorization") != "") != tc.wantAuth {
			t.Errorf("%s: Authorization forwarded = %v", tc.path, hdr(e, "Authorization") != "")
		}
		if got := hdr(e, "Cookie"); got != tc.wantCookie {
			t.Errorf("%s: Cookie = %q, want %q", tc.path, got, tc.wantCookie)
		}
	}
}

func TestSignInRedirectOnlyForNavigations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, func(o *proxy.Options) {
		o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in?x=1")
		o.PublicOrigin = mustURL(t, "https://app.example.com")
	})
	nav := func(method, dest, accept string) *http.Request {
		r := httptest.NewRequest(method, "http://internal:8080/page?a=1&b=2", nil)
		if dest != "" {
			r.Header.Set("Sec-Fetch-Dest", dest)
		}
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		return r
	}
	cases := []struct {
		name     string
		r        *http.Request
		redirect bool
	}{
		{"document GET", nav("GET", "document", "text/html"), true},
		{"iframe GET", nav("GET", "iframe", "*/*"), true},
		{"no Sec-Fetch-Dest, Accept text/html", nav("GET", "", "text/html,application/xhtml+xml"), true},
		{"fetch (Sec-Fetch-Dest empty) with text/html", nav("GET", "empty", "text/html"), false},
		{"no Sec-Fetch-Dest, Accept JSON", nav("GET", "", "application/json"), false},
		{"no headers (curl)", nav("GET", "", ""), false},
		{"POST document", nav("POST", "document", "text/html"), false},
		{"PUT document", nav("PUT", "document", "text/html"), false},
		{"HEAD document", nav("HEAD", "document", "text/html"), false},
		{"image", nav("GET", "image", "image/*"), false},
	}
	for _, tc := range cases {
		w, _ := f.do(t, tc.r)
		if tc.redirect {
			if w.Code != 307 {
				t.Errorf("%s: status %d, want 307", tc.name, w.Code)
				continue
			}
			loc := mustURL(t, w.Header().Get("Location"))
			if loc.Host != "accounts.example.com" || loc.Query().Get("x") != "1" ||
				loc.Query().Get("redirect_url") != "https://app.example.com/page?a=1&b=2" {
				t.Errorf("%s: Location %s", tc.name, loc)
			}
			if w.Header().Get("X-Clerk-Auth-Reason") != "session-token-missing" {
				t.Errorf("%s: reason %q", tc.name, w.Header().Get("X-Clerk-Auth-Reason"))
			}
		} else if w.Code != 401 || w.Header().Get("Location") != "" {
			t.Errorf("%s: status %d Location %q, want a 401", tc.name, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestRedirectURLTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	mk := func(trusted []netip.Prefix) *fixture {
		return newFixture(t, nil, func(o *proxy.Options) {
			o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in")
			o.TrustedProxies = trusted
		})
	}
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "http://app.internal/page", nil)
		r.RemoteAddr = "10.0.0.5:4000"
		r.Header.Set("Sec-Fetch-Dest", "document")
		r.Header.Set("X-Forwarded-Host", "evil.com")
		r.Header.Set("X-Forwarded-Proto", "https")
		return r
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer", nil, "http://app.internal/page"},
		{"other trusted network", []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, "http://app.internal/page"},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "https://evil.com/page"},
	} {
		w, _ := mk(tc.trusted).do(t, req())
		loc := mustURL(t, w.Header().Get("Location"))
		if got := loc.Query().Get("redirect_url"); got != tc.want {
			t.Errorf("%s: redirect_url %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNoRedirectFor403(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Org: true}}}}
	}, func(o *proxy.Options) { o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in") })
	r := get("/", f.inst.MustMint(t))
	r.Header.Set("Sec-Fetch-Dest", "document")
	w, _ := f.do(t, r)
	if w.Code != 403 {
		t.Fatalf("status %d, want 403", w.Code)
	}
}

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/public", Upstream: up, Auth: proxy.Public},
			{Path: "/admin", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"admin"}}}},
			{Path: "/", Upstream: up},
		}
	}, func(o *proxy.Options) { o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in") })
	valid := f.inst.MustMint(t, clerktest.WithUser("user_fa"), clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "member"}))
	expired := f.inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Minute)))
	auth := func(uriHeader, uri, token string) *http.Request {
		r := httptest.NewRequest("GET", "http://sessiongate:8080/_sessiongate/auth", nil)
		r.RemoteAddr = "127.0.0.1:40000" // the front proxy, on loopback
		r.Header.Set(uriHeader, uri)
		r.Header.Set("Sec-Fetch-Dest", "document") // navigations are never redirected here
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		spoof(r)
		return r
	}
	cases := []struct {
		name   string
		r      *http.Request
		status int
		reason string
		user   string
	}{
		{"valid (Traefik header)", auth("X-Forwarded-Uri", "/app?x=1", valid), 200, "", "user_fa"},
		{"valid (nginx header)", auth("X-Original-Uri", "/app", valid), 200, "", "user_fa"},
		{"missing", auth("X-Original-Uri", "/app", ""), 401, "session-token-missing", ""},
		{"expired", auth("X-Original-Uri", "/app", expired), 401, "token-expired", ""},
		{"public route", auth("X-Original-Uri", "/public/x", ""), 200, "", ""},
		{"role required", auth("X-Forwarded-Uri", "/admin", valid), 403, "missing-role", ""},
		{"unclean URI", auth("X-Forwarded-Uri", "/public/../admin", valid), 400, "path-not-clean", ""},
	}
	for _, tc := range cases {
		w := httptest.NewRecorder()
		f.proxy.ServeHTTP(w, tc.r)
		if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
		}
		if got := w.Header().Get("X-Sessiongate-User-Id"); got != tc.user {
			t.Errorf("%s: identity %q, want %q", tc.name, got, tc.user)
		}
		if tc.status == 200 && tc.user != "" && w.Header().Get("X-Sessiongate-Org-Role") != "org:member" {
			t.Errorf("%s: org role %q", tc.name, w.Header().Get("X-Sessiongate-Org-Role"))
		}
	}
}

func TestForwardAuthWithoutMatchingRouteFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/public", Upstream: up, Auth: proxy.Public}}
	}, nil)
	r := httptest.NewRequest("GET", "http://sessiongate/_sessiongate/auth", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("X-Forwarded-Uri", "/other")
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("status %d, want 401", w.Code)
	}
}

func TestReservedPathsAndNoRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/only", Upstream: up, Auth: proxy.Public}}
	}, nil)
	for _, p := range []string{"/_sessiongate/unknown", "/_sessiongate/webhooks/clerk", "/elsewhere"} {
		w, e := f.do(t, get(p, ""))
		if w.Code != 404 || e != nil {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	mk := func(trusted []netip.Prefix) *fixture {
		return newFixture(t, func(up *url.URL) []proxy.Route {
			return []proxy.Route{{Path: "/", Upstream: up, Auth: proxy.Public}}
		}, func(o *proxy.Options) { o.TrustedProxies = trusted })
	}
	req := func() *http.Request {
		r := get("/x", "")
		r.RemoteAddr = "10.1.2.3:5555"
		r.Header.Set("X-Forwarded-For", "6.6.6.6")
		r.Header.Set("X-Forwarded-Host", "evil.com")
		return r
	}
	_, e := mk(nil).do(t, req())
	if got := hdr(e, "X-Forwarded-For"); got != "10.1.2.3" {
		t.Errorf("untrusted: X-Forwarded-For %q", got)
	}
	if got := hdr(e, "X-Forwarded-Host"); got != "app.example.com" {
		t.Errorf("untrusted: X-Forwarded-Host %q", got)
	}
	if hdr(e, "X-Request-Id") == "" {
		t.Error("no X-Request-Id upstream")
	}
	_, e = mk([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}).do(t, req())
	if got := hdr(e, "X-Forwarded-For"); got != "6.6.6.6, 10.1.2.3" {
		t.Errorf("trusted: X-Forwarded-For %q", got)
	}
	if got := hdr(e, "X-Forwarded-Host"); got != "evil.com" {
		t.Errorf("trusted: X-Forwarded-Host %q", got)
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	// A reserved port nothing listens on: connection refused.
	down := mustURL(t, "http://"+testport.Reserve(t))
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/down", Upstream: down, Auth: proxy.Public},
			{Path: "/slow", Upstream: mustURL(t, slow.URL), Auth: proxy.Public},
		}
	}, func(o *proxy.Options) {
		o.Transport = proxy.NewTransport(proxy.TransportOptions{ResponseHeaderTimeout: 200 * time.Millisecond})
	})
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/down", 502, "bad_gateway"},
		{"/slow", 504, "gateway_timeout"},
	} {
		w, _ := f.do(t, get(tc.path, ""))
		var body map[string]string
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tc.status || body["error"] != tc.code {
			t.Errorf("%s: %d %v", tc.path, w.Code, body)
		}
		if strings.Contains(w.Body.String(), "127.0.0.1") || strings.Contains(w.Body.String(), "dial") {
			t.Errorf("%s: body leaks internals: %s", tc.path, w.Body)
		}
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	// The upstream accepts the upgrade and echoes raw bytes: the proxy must
	// pass the 101 and then the bytes both ways, whatever the framing.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("X-Sessiongate-User-Id") == "" {
			http.Error(w, "not an authenticated upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(up.Close)
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Upstream: mustURL(t, up.URL)}}
	}, nil)
	srv := httptest.NewServer(f.proxy)
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer %s\r\n\r\n", f.inst.MustMint(t))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if _, err := conn.Write([]byte("ping-123")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping-123" {
		t.Fatalf("echo %q, %v", buf, err)
	}

	// Without a token the upgrade is refused before reaching the upstream.
	resp2, err := http.Get(srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 401 {
		t.Fatalf("unauthenticated upgrade: %d", resp2.StatusCode)
	}
}

func TestServerSentEventsStream(t *testing.T) {
	t.Parallel()
	finish := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-finish:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: last\n\n")
	}))
	t.Cleanup(func() { up.Close() })
	f := newFixture(t, func(*url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Upstream: mustURL(t, up.URL), Auth: proxy.Public}}
	}, nil)
	srv := httptest.NewServer(f.proxy)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive before the upstream finished")
	}
	close(finish)
}
