package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// hsFixture is a proxy whose routes run the handshake against the fake as a
// production instance (its publishable key, its URL as proxy_url).
type hsFixture struct {
	inst     *clerktest.Instance
	proxy    *proxy.Proxy
	upstream *httptest.Server
	hs       *handshake.Handshaker
	now      time.Time
}

// recordingUpstream answers with what it received, plus its own cookie and
// a cacheable Cache-Control, so tests can see both survive or be overridden.
func recordingUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newHandshake starts a fake production instance whose clock stands
// still, and a Gate and a Handshaker for it; mutate, when set, changes the
// Handshaker's Config (which clk is not put in).
func newHandshake(t *testing.T, mutate func(*handshake.Config)) (inst *clerktest.Instance, gate *middleware.Gate, hs *handshake.Handshaker, clk func() time.Time) {
	t.Helper()
	now := time.Unix(1_760_000_000, 0)
	clk = func() time.Time { return now }
	inst = clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...), Now: clk})
	if err != nil {
		t.Fatal(err)
	}
	cfg := handshake.Config{
		Gate:         gate,
		FrontendAPI:  strings.TrimPrefix(inst.URL(), "http://"),
		CookieSuffix: inst.CookieSuffix(),
		Production:   true,
		BaseURL:      inst.URL(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if hs, err = handshake.New(cfg); err != nil {
		t.Fatal(err)
	}
	return inst, gate, hs, clk
}

func newHSFixture(t *testing.T, routes func(up *url.URL, hs proxy.Handshake) []proxy.Route, mutate func(*proxy.Options)) *hsFixture {
	t.Helper()
	inst, gate, hs, clk := newHandshake(t, nil)
	now := clk()
	up := recordingUpstream(t)
	upURL := mustURL(t, up.URL)
	var rs []proxy.Route
	if routes != nil {
		rs = routes(upURL, hs)
	} else {
		rs = []proxy.Route{{Path: "/", Upstream: upURL, ForwardToken: true, Handshake: hs}}
	}
	opts := proxy.Options{Gate: gate, Routes: rs}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &hsFixture{inst: inst, proxy: p, upstream: up, hs: hs, now: now}
}

func (f *hsFixture) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, r)
	return w
}

func navigation(target string, cookies ...[2]string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.Header.Set("Accept", "text/html")
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c[0], Value: c[1]})
	}
	return r
}

// handshakeToken signs a handshake payload with the fake's key.
func handshakeToken(t *testing.T, inst *clerktest.Instance, directives []string) string {
	t.Helper()
	k := inst.SigningKey()
	h, _ := json.Marshal(map[string]any{"alg": k.Algorithm, "kid": k.ID, "typ": "JWT"})
	p, _ := json.Marshal(map[string]any{"handshake": directives})
	return clerktest.Sign(h, p, k, k.Algorithm)
}

func decodeEcho(t *testing.T, w *httptest.ResponseRecorder) *echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Method == "" {
		t.Fatalf("upstream not reached: %d %s", w.Code, w.Body)
	}
	return &e
}

// TestSpoofedForwardedHostDoesNotSteerTheHandshake: a spoofed
// X-Forwarded-Host from an untrusted peer does not steer redirect_url; a
// trusted proxy's does.
func TestSpoofedForwardedHostDoesNotSteerTheHandshake(t *testing.T) {
	t.Parallel()
	redirectURL := func(t *testing.T, w *httptest.ResponseRecorder) string {
		t.Helper()
		if w.Code != http.StatusTemporaryRedirect || w.Header().Get("X-Clerk-Auth-Status") != "handshake" {
			t.Fatalf("status %d headers %v", w.Code, w.Header())
		}
		u, err := url.Parse(w.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return u.Query().Get("redirect_url")
	}
	spoofed := func() *http.Request {
		r := navigation("http://app.local:8080/x?y=1", [2]string{"__client_uat", "1"})
		r.RemoteAddr = "203.0.113.9:5555"
		r.Header.Set("X-Forwarded-Host", "evil.com")
		r.Header.Set("X-Forwarded-Proto", "https")
		return r
	}
	f := newHSFixture(t, nil, nil)
	if got := redirectURL(t, f.serve(spoofed())); got != "http://app.local:8080/x?y=1" {
		t.Errorf("untrusted peer: redirect_url %q", got)
	}
	f = newHSFixture(t, nil, func(o *proxy.Options) { o.PublicOrigin = mustURL(t, "https://app.example.com") })
	if got := redirectURL(t, f.serve(spoofed())); got != "https://app.example.com/x?y=1" {
		t.Errorf("public origin: redirect_url %q", got)
	}
	f = newHSFixture(t, nil, func(o *proxy.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")} })
	if got := redirectURL(t, f.serve(spoofed())); got != "https://evil.com/x?y=1" {
		t.Errorf("trusted proxy: redirect_url %q", got)
	}
}

// TestHandshakeReturnTripServedByTheUpstream: the return trip of a
// handshake is served by the upstream with the new identity; every
// directive is its own Set-Cookie, before the upstream's own cookies, and
// the answer is not storable.
func TestHandshakeReturnTripServedByTheUpstream(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, nil, nil)
	tok := f.inst.MustMint(t, clerktest.WithUser("user_alice"))
	directives := []string{
		"__clerk_handshake=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
		fmt.Sprintf("__client_uat=%d; Path=/; Max-Age=315360000; SameSite=Lax", f.now.Unix()),
		"__session=" + tok + "; Path=/; SameSite=Lax",
	}
	old := f.inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithIssuedAt(f.now.Add(-time.Hour)))
	r := navigation("http://app.local/page", [2]string{"__clerk_handshake", handshakeToken(t, f.inst, directives)},
		[2]string{"__session", old}, [2]string{"__client_uat", "1"}, [2]string{"other", "keep"})
	w := f.serve(r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := append(append([]string{}, directives...), "app=1; Path=/")
	if got := w.Header().Values("Set-Cookie"); !slices.Equal(got, want) {
		t.Errorf("Set-Cookie\n%q\nwant\n%q", got, want)
	}
	if got := w.Header().Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
		t.Errorf("Cache-Control %q", got)
	}
	e := decodeEcho(t, w)
	if hdr(e, "X-Sessiongate-User-Id") != "user_alice" {
		t.Errorf("identity %q", hdr(e, "X-Sessiongate-User-Id"))
	}
	// The upstream sees the cookies the browser will send from now on.
	c := hdr(e, "Cookie")
	if strings.Contains(c, "__clerk_handshake") || !strings.Contains(c, "other=keep") || strings.Contains(c, old) ||
		!strings.Contains(c, "__session="+tok) || !strings.Contains(c, fmt.Sprintf("__client_uat=%d", f.now.Unix())) {
		t.Errorf("upstream Cookie %q", c)
	}

	// An ordinary signed-in request keeps the upstream's caching.
	w = f.serve(navigation("http://app.local/page", [2]string{"__session", tok}, [2]string{"__client_uat", "1"}))
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "public, max-age=600" {
		t.Errorf("status %d Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
}

// A Bearer token never triggers a handshake (docs/browser-sessions.md), even on a
// document navigation that also carries Clerk's cookies.
func TestBearerNeverHandshakes(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, nil, func(o *proxy.Options) { o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in") })
	expired := f.inst.MustMint(t, clerktest.WithIssuedAt(f.now.Add(-time.Hour)))
	valid := f.inst.MustMint(t, clerktest.WithUser("user_bearer"))
	r := navigation("http://app.local/", [2]string{"__client_uat", "1"}, [2]string{"__session", valid})
	r.Header.Set("Authorization", "Bearer "+expired)
	w := f.serve(r)
	if w.Code == http.StatusTemporaryRedirect && w.Header().Get("X-Clerk-Auth-Status") == "handshake" {
		t.Fatalf("a Bearer request was sent to the handshake: %v", w.Header())
	}
	if w.Code == http.StatusOK {
		t.Fatalf("the cookie was used despite the Bearer token")
	}
	// Signed-out navigations still go to the sign-in page (that is not a
	// handshake), with the Bearer token's reason.
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("X-Clerk-Auth-Reason") != string(middleware.ReasonTokenExpired) ||
		!strings.HasPrefix(w.Header().Get("Location"), "https://accounts.example.com/sign-in?") {
		t.Errorf("status %d headers %v", w.Code, w.Header())
	}
	r.Header.Set("Authorization", "Bearer "+valid)
	r.Header.Del("Cookie")
	if w := f.serve(r); w.Code != http.StatusOK || hdr(decodeEcho(t, w), "X-Sessiongate-User-Id") != "user_bearer" {
		t.Errorf("valid Bearer: %d", w.Code)
	}
}

// Clerk's handshake cookies never reach an upstream, on any route; with
// forward_token false neither do the session and refresh cookies
// (__client_uat, a timestamp, is kept).
func TestUpstreamNeverSeesHandshakeCookies(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, func(up *url.URL, hs proxy.Handshake) []proxy.Route {
		return []proxy.Route{
			{Path: "/public", Upstream: up, Auth: proxy.Public, ForwardToken: true},
			{Path: "/plain", Upstream: up, ForwardToken: true},
			{Path: "/hidden", Upstream: up, ForwardToken: false, Handshake: hs},
			{Path: "/", Upstream: up, ForwardToken: true, Handshake: hs},
		}
	}, nil)
	tok := f.inst.MustMint(t)
	sfx := f.inst.CookieSuffix()
	clerkOnly := []string{"__clerk_handshake", "__clerk_handshake_nonce", "__clerk_redirect_count"}
	for _, tc := range []struct {
		path       string
		bearer     bool
		handshake  bool // the route resolves handshake cookies itself
		keep, drop []string
	}{
		{"/public/x", false, false, []string{"__session", "__client_uat", "__refresh_" + sfx, "a"}, clerkOnly},
		{"/plain", true, false, []string{"__session", "__session_" + sfx, "__client_uat", "a"}, clerkOnly},
		{"/", false, true, []string{"__session", "__session_" + sfx, "__client_uat", "__refresh_" + sfx, "a"}, clerkOnly},
		{"/hidden", false, true, []string{"__client_uat", "__client_uat_" + sfx, "a"},
			append([]string{"__session", "__session_" + sfx, "__refresh", "__refresh_" + sfx}, clerkOnly...)},
	} {
		cookies := [][2]string{{"a", "1"}, {"__session", tok}, {"__client_uat", "1"},
			{"__session_" + sfx, tok}, {"__client_uat_" + sfx, "1"}, {"__refresh", "r"}, {"__refresh_" + sfx, "r"},
			{"__clerk_redirect_count", "1"}}
		if !tc.handshake {
			// On a handshake route these would be resolved (and consumed)
			// rather than forwarded; TestHandshakeReturnTripServedByTheUpstream
			// checks that a resolved one is not forwarded either.
			cookies = append(cookies, [2]string{"__clerk_handshake", "x"}, [2]string{"__clerk_handshake_nonce", "y"})
		}
		r := navigation("http://app.local"+tc.path, cookies...)
		if tc.bearer {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		got := cookieNames(hdr(decodeEcho(t, f.serve(r)), "Cookie"))
		for _, n := range tc.keep {
			if !slices.Contains(got, n) {
				t.Errorf("%s: %s was not forwarded (%q)", tc.path, n, got)
			}
		}
		for _, n := range tc.drop {
			if slices.Contains(got, n) {
				t.Errorf("%s: %s reached the upstream (%q)", tc.path, n, got)
			}
		}
	}
}

func cookieNames(h string) []string {
	var out []string
	for _, part := range strings.Split(h, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// A handshake that ends signed-out on a required route: navigations go to
// the sign-in page and fetches get the JSON 401, both with the payload's
// cookies; on an optional route the upstream is served anonymously with
// them.
func TestSignedOutHandshakeOutcomes(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, func(up *url.URL, hs proxy.Handshake) []proxy.Route {
		return []proxy.Route{
			{Path: "/optional", Upstream: up, Auth: proxy.Optional, ForwardToken: true, Handshake: hs},
			{Path: "/", Upstream: up, ForwardToken: true, Handshake: hs},
		}
	}, func(o *proxy.Options) { o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in") })
	directives := []string{"__client_uat=0; Path=/", "__session=; Path=/; Max-Age=0"}
	hs := handshakeToken(t, f.inst, directives)

	w := f.serve(navigation("http://app.local/page", [2]string{"__clerk_handshake", hs}))
	if w.Code != http.StatusTemporaryRedirect || !strings.HasPrefix(w.Header().Get("Location"), "https://accounts.example.com/sign-in?") ||
		w.Header().Get("X-Clerk-Auth-Reason") != string(middleware.ReasonSessionTokenMissing) {
		t.Errorf("navigation: %d %v", w.Code, w.Header())
	}
	if got := w.Header().Values("Set-Cookie"); !slices.Equal(got, directives) {
		t.Errorf("navigation Set-Cookie %q", got)
	}

	r := navigation("http://app.local/api", [2]string{"__clerk_handshake", hs})
	r.Header.Set("Sec-Fetch-Dest", "empty")
	w = f.serve(r)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"session-token-missing"`) ||
		!slices.Equal(w.Header().Values("Set-Cookie"), directives) || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("fetch: %d %v %s", w.Code, w.Header(), w.Body)
	}

	w = f.serve(navigation("http://app.local/optional", [2]string{"__clerk_handshake", hs}))
	e := decodeEcho(t, w)
	if hdr(e, "X-Sessiongate-User-Id") != "" || !slices.Equal(w.Header().Values("Set-Cookie"), append(append([]string{}, directives...), "app=1; Path=/")) ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("optional: %v", w.Header())
	}

	// An optional route redirects an eligible navigation like a required one.
	w = f.serve(navigation("http://app.local/optional", [2]string{"__client_uat", "1"}))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("X-Clerk-Auth-Status") != "handshake" {
		t.Errorf("optional navigation: %d %v", w.Code, w.Header())
	}
}

// Forward-auth never redirects to the handshake; a resolution's cookies go
// in its answer.
func TestForwardAuthWithHandshake(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, nil, nil)
	fa := func(cookies ...[2]string) *httptest.ResponseRecorder {
		r := navigation("http://sessiongate"+proxy.ForwardAuthPath, cookies...)
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header.Set("X-Forwarded-Uri", "/page")
		return f.serve(r)
	}
	w := fa([2]string{"__client_uat", "1"})
	if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" {
		t.Errorf("forward-auth stale: %d %v", w.Code, w.Header())
	}
	tok := f.inst.MustMint(t, clerktest.WithUser("user_fa"))
	directives := []string{"__client_uat=1; Path=/", "__session=" + tok + "; Path=/"}
	w = fa([2]string{"__clerk_handshake", handshakeToken(t, f.inst, directives)})
	if w.Code != http.StatusOK || w.Header().Get("X-Sessiongate-User-Id") != "user_fa" ||
		!slices.Equal(w.Header().Values("Set-Cookie"), directives) || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("forward-auth resolution: %d %v", w.Code, w.Header())
	}
}

// No redirect (handshake or sign-in) is ever issued to a non-GET or a
// non-navigation request, through the whole proxy.
func TestProxyNoRedirectForNonNavigation(t *testing.T) {
	t.Parallel()
	f := newHSFixture(t, nil, func(o *proxy.Options) { o.SignInURL = mustURL(t, "https://accounts.example.com/sign-in") })
	expired := f.inst.MustMint(t, clerktest.WithIssuedAt(f.now.Add(-time.Hour)))
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		for _, hdrs := range []map[string]string{
			{"Sec-Fetch-Dest": "document", "Accept": "text/html"},
			{"Sec-Fetch-Dest": "iframe"},
			{"Sec-Fetch-Dest": "empty", "Accept": "text/html"},
			{"Sec-Fetch-Dest": "image"},
			{"Accept": "text/html"},
			{"Accept": "application/json"},
			{},
		} {
			for _, cookies := range [][][2]string{
				{{"__client_uat", "1"}},
				{{"__session", expired}, {"__client_uat", "1"}},
				nil,
			} {
				r := httptest.NewRequest(m, "http://app.local/page", nil)
				for k, v := range hdrs {
					r.Header.Set(k, v)
				}
				for _, c := range cookies {
					r.AddCookie(&http.Cookie{Name: c[0], Value: c[1]})
				}
				w := f.serve(r)
				navigation := m == "GET" && (hdrs["Sec-Fetch-Dest"] == "document" || hdrs["Sec-Fetch-Dest"] == "iframe" ||
					hdrs["Sec-Fetch-Dest"] == "" && strings.HasPrefix(hdrs["Accept"], "text/html"))
				redirected := w.Code >= 300 && w.Code < 400 || w.Header().Get("Location") != ""
				if redirected && !navigation {
					t.Errorf("%s %v %v: redirected %d to %s", m, hdrs, cookies, w.Code, w.Header().Get("Location"))
				}
				if !navigation && w.Code != http.StatusUnauthorized {
					t.Errorf("%s %v %v: status %d", m, hdrs, cookies, w.Code)
				}
				if navigation && !redirected {
					t.Errorf("%s %v %v: a navigation was not redirected (%d)", m, hdrs, cookies, w.Code)
				}
			}
		}
	}
}
