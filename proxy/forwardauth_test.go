package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// forwardAuthFixture: a public path, a role-protected path and a required
// catch-all, with 10.0.0.0/8 as the trusted front proxies.
func forwardAuthFixture(t *testing.T) (*fixture, string, string) {
	t.Helper()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/public", Upstream: up, Auth: proxy.Public},
			{Path: "/admin", Upstream: up, Policy: middleware.Policy{Require: middleware.Requirements{Roles: []string{"admin"}}}},
			{Path: "/", Upstream: up},
			{Path: "/", Host: "open.example.com", Upstream: up, Auth: proxy.Public},
		}
	}, func(o *proxy.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	member := f.inst.MustMint(t, clerktest.WithUser("user_member"), clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "member"}))
	admin := f.inst.MustMint(t, clerktest.WithUser("user_admin"), clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "admin"}))
	return f, member, admin
}

func forwardAuthRequest(peer, token string, headers map[string][]string) *http.Request {
	r := httptest.NewRequest("GET", "http://sessiongate:8080"+proxy.ForwardAuthPath, nil)
	r.RemoteAddr = peer
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range headers {
		r.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return r
}

type faResult struct {
	Error, Reason string
}

func decideForwardAuth(t *testing.T, f *fixture, r *http.Request) (int, faResult, string) {
	t.Helper()
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, r)
	var res faResult
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("%d with a body that is not the JSON error shape: %q", w.Code, w.Body)
		}
		if got := w.Header().Get("X-Clerk-Auth-Reason"); got != res.Reason {
			t.Errorf("X-Clerk-Auth-Reason %q, body reason %q", got, res.Reason)
		}
	}
	return w.Code, res, w.Header().Get("X-Sessiongate-User-Id")
}

// The forward-auth request headers choose the route a request is judged by,
// so they are believed only from the front proxy: a loopback peer (nginx and
// Caddy on the same host) or one in TrustedProxies. Anyone else calling the
// endpoint is refused, whatever it sends: deciding it with the headers
// ignored would judge every path as "/", which is public on some set-ups.
func TestForwardAuthBelievesForwardingHeadersOnlyFromTrustedPeers(t *testing.T) {
	t.Parallel()
	f, member, _ := forwardAuthFixture(t)
	uri := func(u string) map[string][]string { return map[string][]string{"X-Forwarded-Uri": {u}} }
	cases := []struct {
		name, peer, token string
		headers           map[string][]string
		status            int
		reason, user      string
	}{
		{"loopback v4 peer", "127.0.0.1:5000", member, uri("/app"), 200, "", "user_member"},
		{"loopback v6 peer", "[::1]:5000", member, uri("/app"), 200, "", "user_member"},
		{"loopback v4-mapped peer", "[::ffff:127.0.0.1]:5000", member, uri("/app"), 200, "", "user_member"},
		{"trusted proxy", "10.1.2.3:5000", member, uri("/app"), 200, "", "user_member"},
		{"untrusted peer with a public URI", "192.0.2.7:5000", "", uri("/public/x"), 403, "forward-auth-untrusted-peer", ""},
		{"untrusted peer with a valid token", "192.0.2.7:5000", member, uri("/app"), 403, "forward-auth-untrusted-peer", ""},
		{"untrusted peer without headers", "192.0.2.7:5000", member, nil, 403, "forward-auth-untrusted-peer", ""},
		{"unparsable peer address", "somewhere", member, uri("/app"), 403, "forward-auth-untrusted-peer", ""},
		{"trusted proxy judging a public path", "10.1.2.3:5000", "", uri("/public/x"), 200, "", ""},
		{"trusted proxy judging a role path", "10.1.2.3:5000", member, uri("/admin/x"), 403, "missing-role", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, res, user := decideForwardAuth(t, f, forwardAuthRequest(tc.peer, tc.token, tc.headers))
			if status != tc.status || res.Reason != tc.reason || user != tc.user {
				t.Fatalf("%d %q user %q, want %d %q user %q", status, res.Reason, user, tc.status, tc.reason, tc.user)
			}
		})
	}
}

// Two headers that name one thing must agree, and each may appear once:
// otherwise the front proxy's value and a client's could be read in either
// order. A request the headers do not describe is refused, never decided as
// some default path.
func TestForwardAuthRejectsMissingRepeatedOrConflictingHeaders(t *testing.T) {
	t.Parallel()
	f, member, admin := forwardAuthFixture(t)
	const peer = "127.0.0.1:5000"
	cases := []struct {
		name    string
		token   string
		headers map[string][]string
		status  int
		reason  string
	}{
		{"URI headers disagree", admin, map[string][]string{"X-Forwarded-Uri": {"/admin/x"}, "X-Original-Uri": {"/public"}}, 400, "forwarded-headers-conflict"},
		{"URI headers disagree the other way", "", map[string][]string{"X-Forwarded-Uri": {"/public"}, "X-Original-Uri": {"/admin/x"}}, 400, "forwarded-headers-conflict"},
		{"URI header repeated", "", map[string][]string{"X-Forwarded-Uri": {"/public", "/admin"}}, 400, "forwarded-headers-conflict"},
		{"original URI repeated", "", map[string][]string{"X-Original-Uri": {"/public", "/admin"}}, 400, "forwarded-headers-conflict"},
		{"methods disagree", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Method": {"GET"}, "X-Original-Method": {"POST"}}, 400, "forwarded-headers-conflict"},
		{"host repeated", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Host": {"a.example", "open.example.com"}}, 400, "forwarded-headers-conflict"},
		{"host as a list", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Host": {"a.example, open.example.com"}}, 400, "forwarded-headers-conflict"},
		{"proto repeated", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Proto": {"https", "http"}}, 400, "forwarded-headers-conflict"},
		{"no URI", member, nil, 400, "forwarded-request-invalid"},
		{"fragment in the raw URI", member, map[string][]string{"X-Forwarded-Uri": {"/admin#x"}}, 400, "forwarded-request-invalid"},
		{"fragment after the query", member, map[string][]string{"X-Forwarded-Uri": {"/admin?a=1#x"}}, 400, "forwarded-request-invalid"},
		{"space in the raw URI", member, map[string][]string{"X-Forwarded-Uri": {"/admin x"}}, 400, "forwarded-request-invalid"},
		{"non-ASCII byte in the raw URI", member, map[string][]string{"X-Forwarded-Uri": {"/admin\xc3\xa9"}}, 400, "forwarded-request-invalid"},
		{"encoded fragment is a path byte", member, map[string][]string{"X-Forwarded-Uri": {"/admin%23x"}}, 200, ""},
		{"absolute URI", member, map[string][]string{"X-Forwarded-Uri": {"http://open.example.com/app"}}, 400, "forwarded-request-invalid"},
		{"malformed method", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Method": {"G T"}}, 400, "forwarded-request-invalid"},
		{"malformed host", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Host": {"a/b"}}, 400, "forwarded-request-invalid"},
		{"bad proto", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Proto": {"gopher"}}, 400, "forwarded-request-invalid"},
		{"unclean URI", member, map[string][]string{"X-Forwarded-Uri": {"/public/../admin"}}, 400, "path-not-clean"},
		// Agreeing headers are fine, and the URI may hold commas.
		{"URI headers agree", member, map[string][]string{"X-Forwarded-Uri": {"/app?a=1,2"}, "X-Original-Uri": {"/app?a=1,2"}}, 200, ""},
		{"methods agree", member, map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Method": {"POST"}, "X-Original-Method": {"POST"}}, 200, ""},
		// The host selects host routes.
		{"forwarded host selects its route", "", map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Host": {"OPEN.example.com"}}, 200, ""},
		{"other host falls to the required route", "", map[string][]string{"X-Forwarded-Uri": {"/app"}, "X-Forwarded-Host": {"app.example.com"}}, 401, "session-token-missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, res, _ := decideForwardAuth(t, f, forwardAuthRequest(peer, tc.token, tc.headers))
			if status != tc.status || res.Reason != tc.reason {
				t.Fatalf("%d %q, want %d %q", status, res.Reason, tc.status, tc.reason)
			}
			if status == 400 && res.Error != "bad_request" {
				t.Errorf("error %q, want bad_request", res.Error)
			}
		})
	}
}
