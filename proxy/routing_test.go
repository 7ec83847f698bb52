package proxy_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Java servlet containers (Tomcat, Jetty, Spring) remove ";params" from every
// path segment before routing: to them "/admin;x/users" is "/admin/users"
// and "/public/..;/secret" is "/public/../secret", i.e. "/secret". Most other
// stacks keep the parameter as part of the segment. A path with ';' is
// therefore routed only when both readings select the same route and the
// reading without parameters is clean; anything else is 400, on the proxy
// and on forward-auth alike.
func TestPathParametersCannotChangeTheRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/admin", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"admin"}}}},
			{Path: "/public", Upstream: up, Auth: proxy.Public},
			{Path: "/app", Upstream: up},
			{Path: "/", Upstream: up, Auth: proxy.Public},
		}
	}, nil)
	member := f.inst.MustMint(t, clerktest.WithUser("user_member"), clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "member"}))
	cases := []struct {
		name, path, token string
		status            int
		reason            string
	}{
		{"parameter on the segment that selects a protected route", "/admin;x/users", "", 400, "path-ambiguous"},
		{"parameter on the segment, with a token lacking the role", "/admin;jsessionid=1/users", member, 400, "path-ambiguous"},
		{"parameter alone on a protected route's segment", "/app;x", "", 400, "path-ambiguous"},
		{"dot-dot with a parameter escapes a public prefix", "/public/..;/admin/users", "", 400, "path-not-clean"},
		{"dot-dot with a parameter escapes a public prefix (encoded)", "/public/..%3B/admin/users", "", 400, "path-not-clean"},
		{"empty segment with a parameter", "/;x/admin", "", 400, "path-not-clean"},
		{"encoded semicolon is read as a parameter too", "/admin%3Bx/users", "", 400, "path-ambiguous"},
		// Parameters that do not change the route are passed as they are.
		{"parameter inside a protected route", "/admin/users;x", member, 403, "missing-role"},
		{"parameter inside a protected route, no token", "/app/page;jsessionid=1", "", 401, "session-token-missing"},
		{"parameter inside a public route", "/public/page;jsessionid=1", "", 200, ""},
		{"parameter under the public catch-all", "/other;v=1/x", "", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.example.com/", nil)
			r.URL = mustParseRequestURI(t, tc.path)
			r.RequestURI = tc.path
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w, e := f.do(t, r)
			if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
				t.Fatalf("proxy: %d %q, want %d %q: %s", w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason, w.Body)
			}
			if tc.status == 200 && (e == nil || !strings.Contains(e.Path, ";")) {
				t.Errorf("the upstream did not get the path with its parameter: %+v", e)
			}

			fa := forwardAuthRequest("127.0.0.1:5000", tc.token, map[string][]string{"X-Forwarded-Uri": {tc.path}})
			w = httptest.NewRecorder()
			f.proxy.ServeHTTP(w, fa)
			if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
				t.Fatalf("forward-auth: %d %q, want %d %q", w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
			}
		})
	}
}

func mustParseRequestURI(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Routes match case-sensitively unless CaseInsensitive is set: for an
// upstream that routes "/ADMIN" to its /admin handler (Express by default,
// ASP.NET), the protected route must say so or "/ADMIN" is decided by "/".
func TestCaseInsensitiveRoutes(t *testing.T) {
	t.Parallel()
	routes := func(ci bool) func(up *url.URL) []proxy.Route {
		return func(up *url.URL) []proxy.Route {
			return []proxy.Route{
				{Path: "/admin", Upstream: up, CaseInsensitive: ci},
				{Path: "/", Upstream: up, Auth: proxy.Public},
			}
		}
	}
	sensitive := newFixture(t, routes(false), nil)
	insensitive := newFixture(t, routes(true), nil)
	for _, tc := range []struct {
		path                 string
		sensitive, insensitv int
	}{
		{"/admin/x", 401, 401},
		{"/ADMIN/x", 200, 401},
		{"/Admin", 200, 401},
		{"/aDmIn;x/y", 200, 400}, // its parameter-free reading is the protected route
		{"/adminx", 200, 200},    // whole segments only
		{"/ADMINX/y", 200, 200},
		{"/\u212admin", 200, 200}, // no Unicode folding: the Kelvin sign is not "k"... nor "a"
	} {
		for _, fx := range []struct {
			name string
			f    *fixture
			want int
		}{{"case-sensitive", sensitive, tc.sensitive}, {"case-insensitive", insensitive, tc.insensitv}} {
			r := httptest.NewRequest("GET", "http://app.example.com/", nil)
			r.URL = mustParseRequestURI(t, tc.path)
			w, _ := fx.f.do(t, r)
			if w.Code != fx.want {
				t.Errorf("%s %s: %d, want %d", fx.name, tc.path, w.Code, fx.want)
			}
		}
	}
}

func TestRoutesRefuseSemicolonsAndCaseOverlaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	up := mustURL(t, f.upstream.URL)
	for _, tc := range []struct {
		name   string
		routes []proxy.Route
		want   string
	}{
		{"semicolon in a path", []proxy.Route{{Path: "/a;b", Upstream: up}}, "must not contain ';'"},
		{"case-insensitive overlap", []proxy.Route{{Path: "/Admin", Upstream: up}, {Path: "/admin", Upstream: up, CaseInsensitive: true}}, "when case is ignored"},
		{"case-insensitive overlap, other order", []proxy.Route{{Path: "/admin", Upstream: up, CaseInsensitive: true}, {Path: "/ADMIN/", Upstream: up}}, "when case is ignored"},
	} {
		_, err := proxy.New(proxy.Options{Gate: f.gate, Routes: tc.routes})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Distinct case-sensitive routes that differ by case are allowed.
	if _, err := proxy.New(proxy.Options{Gate: f.gate, Routes: []proxy.Route{{Path: "/Admin", Upstream: up}, {Path: "/admin", Upstream: up}}}); err != nil {
		t.Errorf("case-sensitive routes differing by case: %v", err)
	}
}

// The identity headers are set on the outbound request after ReverseProxy
// has removed the headers the client's Connection header names. Set on the
// inbound request, "Connection: X-Sessiongate-Actor-Id" would remove the
// actor and let an impersonator pass as the user.
func TestConnectionHeaderCannotRemoveIdentityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	tok := f.inst.MustMint(t, clerktest.WithUser("user_1"), clerktest.WithSession("sess_1"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:a:b"}}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_support"}))
	// The headers a session sets (the machine-only ones are covered by the
	// machine-credential tests).
	sessionHeaders := []string{"X-Sessiongate-User-Id", "X-Sessiongate-Session-Id", "X-Sessiongate-Org-Id", "X-Sessiongate-Org-Slug",
		"X-Sessiongate-Org-Role", "X-Sessiongate-Org-Permissions", "X-Sessiongate-Actor-Id", "X-Sessiongate-Token-Type", "X-Request-Id"}
	for _, name := range sessionHeaders {
		for _, conn := range []string{"keep-alive, " + name, strings.ToLower(name), "close," + name} {
			r := get("/", tok)
			r.Header.Set("Connection", conn)
			_, e := f.do(t, r)
			if e == nil {
				t.Fatalf("Connection %q: the upstream was not reached", conn)
			}
			if hdr(e, name) == "" {
				t.Errorf("Connection %q: the upstream did not get %s", conn, name)
			}
		}
	}
}

// A template token replaces Authorization on the outbound request, where a
// client's "Connection: Authorization" cannot remove it.
func TestConnectionHeaderCannotRemoveTemplateToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{{Path: "/", Upstream: up, UpstreamToken: staticToken("tmpl.jwt.value")}}
	}, nil)
	r := get("/", f.inst.MustMint(t))
	r.Header.Set("Connection", "Authorization")
	_, e := f.do(t, r)
	if e == nil {
		t.Fatal("the upstream was not reached")
	}
	if got := hdr(e, "Authorization"); got != "Bearer tmpl.jwt.value" {
		t.Errorf("Authorization %q, want the template token", got)
	}
}

type staticToken string

func (s staticToken) UpstreamToken(context.Context, *middleware.Claims) (string, error) {
	return string(s), nil
}
