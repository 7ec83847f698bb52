package proxy_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/proxy"
)

type droppedClaims struct {
	mu   sync.Mutex
	seen []string
}

func (d *droppedClaims) Observe(proxy.Event) {}
func (d *droppedClaims) ClaimHeaderDropped(header, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = append(d.seen, header+" "+reason)
}

func (d *droppedClaims) list() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.seen, ";")
}

// Custom claims reach the upstream under the mapped names, encoded as
// strings, JSON text, comma-joined string arrays or compact JSON; a value
// with a control character or over 4 KiB is not sent (and counted); a
// missing claim sends nothing.
func TestClaimHeaders(t *testing.T) {
	t.Parallel()
	obs := &droppedClaims{}
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/billing", Upstream: up, ClaimHeaders: map[string]string{"X-Plan": "pla", "X-Email": "public_metadata.contact"}},
			{Path: "/spelled", Upstream: up, ClaimHeaders: map[string]string{"x_email": "name"}},
			{Path: "/", Upstream: up},
		}
	}, func(o *proxy.Options) {
		o.Observer = obs
		o.ClaimHeaders = map[string]string{
			"X-Email":   "email",
			"X-Name":    "name",
			"X-Seats":   "public_metadata.seats",
			"X-Beta":    "public_metadata.beta",
			"X-Tags":    "public_metadata.tags",
			"X-Mixed":   "public_metadata.mixed",
			"X-Meta":    "public_metadata.nested",
			"X-Deep":    "public_metadata.nested.deep",
			"X-Missing": "public_metadata.absent",
			"X-Null":    "public_metadata.nothing",
			"X-Evil":    "evil",
			"X-Big":     "big",
			"X-Org":     "o.slg",
		}
	})
	tok := f.inst.MustMint(t,
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme"}),
		clerktest.WithPlan("o:pro"),
		clerktest.WithClaim("email", "ada@example.com"),
		clerktest.WithClaim("name", "Zoë Ångström"),
		clerktest.WithClaim("evil", "x\r\nX-Sessiongate-User-Id: user_admin"),
		clerktest.WithClaim("big", strings.Repeat("a", proxy.MaxClaimHeaderValue+1)),
		clerktest.WithClaim("public_metadata", map[string]any{
			"seats": 5, "beta": true, "tags": []string{"a", "b c"}, "mixed": []any{"a", 1},
			"nested": map[string]any{"deep": "d", "n": 1}, "nothing": nil, "contact": "billing@example.com",
		}))
	want := map[string]string{
		"X-Email": "ada@example.com",
		"X-Name":  "Zoë Ångström",
		"X-Seats": "5",
		"X-Beta":  "true",
		"X-Tags":  "a,b c",
		"X-Mixed": `["a",1]`,
		"X-Meta":  `{"deep":"d","n":1}`,
		"X-Deep":  "d",
		"X-Org":   "acme",
	}
	_, e := f.do(t, get("/", tok))
	if e == nil {
		t.Fatal("upstream not reached")
	}
	for name, v := range want {
		if got := hdr(e, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	for _, name := range []string{"X-Missing", "X-Null", "X-Evil", "X-Big", "X-Plan"} {
		if _, ok := e.Header[name]; ok {
			t.Errorf("%s sent: %q", name, e.Header[name])
		}
	}
	if got := obs.list(); !strings.Contains(got, "X-Evil control-character") || !strings.Contains(got, "X-Big too-long") {
		t.Errorf("dropped values counted as %q", got)
	}

	// A route's mappings are added to the top level's; its entry wins.
	_, e = f.do(t, get("/billing", tok))
	if e == nil {
		t.Fatal("upstream not reached")
	}
	if hdr(e, "X-Plan") != "o:pro" || hdr(e, "X-Email") != "billing@example.com" || hdr(e, "X-Seats") != "5" {
		t.Errorf("route mappings: plan %q email %q seats %q", hdr(e, "X-Plan"), hdr(e, "X-Email"), hdr(e, "X-Seats"))
	}

	// A route's entry replaces the top level's in another spelling too:
	// stacks that read "_" as "-" would otherwise see two values.
	_, e = f.do(t, get("/spelled", tok))
	if e == nil {
		t.Fatal("upstream not reached")
	}
	var emails []string
	for k, vs := range e.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Email") {
			emails = append(emails, k+": "+strings.Join(vs, ","))
		}
	}
	if len(emails) != 1 || !strings.HasSuffix(emails[0], ": Zoë Ångström") {
		t.Errorf("route entry in another spelling: upstream got %q", emails)
	}

	// Forward-auth answers carry them too, for the front proxy to copy.
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, forwardAuthRequest("127.0.0.1:1", tok, map[string][]string{"X-Forwarded-Uri": {"/x"}}))
	if w.Code != 200 || w.Header().Get("X-Email") != "ada@example.com" {
		t.Errorf("forward-auth: %d %q", w.Code, w.Header().Get("X-Email"))
	}
}

// A mapped name sent by a client never reaches the upstream, in any
// spelling, on any route, with or without a session, whether or not the
// token has the claim: the same stripping as the identity headers.
func TestClaimHeadersSpoofedInEverySpelling(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(up *url.URL) []proxy.Route {
		return []proxy.Route{
			{Path: "/public", Upstream: up, Auth: proxy.Public},
			{Path: "/optional", Upstream: up, Auth: proxy.Optional},
			{Path: "/mapped", Upstream: up, ClaimHeaders: map[string]string{"X-Route-Only": "email"}},
			{Path: "/", Upstream: up},
		}
	}, func(o *proxy.Options) { o.ClaimHeaders = map[string]string{"X-User-Email": "email"} })
	withClaim := f.inst.MustMint(t, clerktest.WithClaim("email", "real@example.com"))
	without := f.inst.MustMint(t)
	spellings := []string{"X-User-Email", "x-user-email", "X_User_Email", "x_user-email", "X-USER-EMAIL",
		"X-Route-Only", "x_route_only"}
	for _, path := range []string{"/public/x", "/optional", "/mapped", "/other"} {
		for _, tok := range []string{"", withClaim, without} {
			r := get(path, tok)
			for _, s := range spellings {
				r.Header[s] = []string{"attacker@example.com"}
			}
			_, e := f.do(t, r)
			if e == nil {
				if tok == "" && path != "/public/x" && path != "/optional" {
					continue // 401: nothing reached the upstream
				}
				t.Fatalf("%s: upstream not reached", path)
			}
			for k, vs := range e.Header {
				for _, v := range vs {
					if strings.Contains(v, "attacker") {
						t.Errorf("%s (token %v): %s: %s reached the upstream", path, tok != "", k, v)
					}
				}
			}
		}
	}
}

func TestClaimHeaderNamesRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	up := mustURL(t, f.upstream.URL)
	for _, tc := range []struct {
		name, header, path, want string
	}{
		{"invalid name", "X Email", "email", "not a valid header name"},
		{"hop-by-hop", "Connection", "email", "hop-by-hop"},
		{"hop-by-hop in another spelling", "transfer_encoding", "email", "hop-by-hop"},
		{"credentials", "Authorization", "email", "credentials"},
		{"cookie", "cookie", "email", "credentials"},
		{"forwarding", "X-Forwarded-User", "email", "forwarding"},
		{"identity header", "X-Sessiongate-User-Id", "email", "identity header"},
		{"identity header, underscores", "x_sessiongate_org_id", "email", "identity header"},
		{"empty path", "X-Email", "", "empty claim path"},
		{"empty segment", "X-Email", "a..b", "empty segment"},
	} {
		_, err := proxy.New(proxy.Options{Gate: f.gate, Routes: []proxy.Route{{Path: "/", Upstream: up}},
			ClaimHeaders: map[string]string{tc.header: tc.path}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	_, err := proxy.New(proxy.Options{Gate: f.gate, Routes: []proxy.Route{{Path: "/", Upstream: up,
		ClaimHeaders: map[string]string{"X-Email": "email", "x_email": "other"}}}})
	if err == nil || !strings.Contains(err.Error(), "name one header") {
		t.Errorf("two spellings of one name: %v", err)
	}
	// A name under the identity prefix that is not an identity header is
	// allowed: it is stripped like every prefixed name, then set.
	if _, err := proxy.New(proxy.Options{Gate: f.gate, Routes: []proxy.Route{{Path: "/", Upstream: up}},
		ClaimHeaders: map[string]string{"X-Sessiongate-Email": "email"}}); err != nil {
		t.Errorf("prefixed custom name: %v", err)
	}
}
