package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Request hostility at the proxy, in process: identity-header spoofing in
// every spelling an upstream stack may fold into the same variable, odd
// Authorization headers, several __session cookies, and header/cookie
// conflicts. The wire-level cases (oversized headers, request smuggling)
// need Go's real server: internal/app/hostile_http_test.go.

var (
	hostileKeyOnce sync.Once
	hostileKey     *clerktest.SigningKey
)

// hostileEnv is a proxy with a public, an optional and a required route in
// front of an upstream that records what it receives.
type hostileEnv struct {
	inst  *clerktest.Instance
	proxy *proxy.Proxy
	valid string // user_hostile
	// expired is signed by the instance but expired.
	expired string

	mu   sync.Mutex
	seen []http.Header // headers the upstream received
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	hostileKeyOnce.Do(func() {
		k, err := clerktest.NewSigningKey("ins_hostile", "RS256")
		if err != nil {
			panic(err)
		}
		hostileKey = k
	})
	h := &hostileEnv{}
	h.inst = clerktest.Start(t, clerktest.Options{SigningKey: hostileKey})
	gate, err := middleware.New(middleware.Config{Issuer: h.inst.Issuer(), Keys: jwks.NewMemory(h.inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Header.Clone())
		h.mu.Unlock()
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	h.proxy, err = proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{
		{Path: "/public", Upstream: u, Auth: proxy.Public, ForwardToken: true},
		{Path: "/optional", Upstream: u, Auth: proxy.Optional, ForwardToken: true},
		{Path: "/", Upstream: u, Auth: proxy.Required, ForwardToken: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.valid = h.inst.MustMint(t, clerktest.WithUser("user_hostile"), clerktest.WithOrg(clerktest.Org{ID: "org_real", Role: "member"}))
	h.expired = h.inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Hour)))
	return h
}

// serve runs r through the proxy and returns the response and the headers
// the upstream received (nil when it was not reached).
func (h *hostileEnv) serve(t *testing.T, r *http.Request) (*httptest.ResponseRecorder, http.Header) {
	t.Helper()
	h.mu.Lock()
	before := len(h.seen)
	h.mu.Unlock()
	w := httptest.NewRecorder()
	h.proxy.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("%s: status %d: %s", r.URL.Path, w.Code, w.Body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch len(h.seen) - before {
	case 0:
		return w, nil
	case 1:
		return w, h.seen[before]
	default:
		t.Fatalf("one request reached the upstream %d times", len(h.seen)-before)
		return nil, nil
	}
}

// spoofNames are spellings of the identity headers (and of other names under
// the prefix) that CGI, PHP, Rack, WSGI, Node and nginx with
// underscores_in_headers may treat as the header sessiongate sets.
var spoofNames = []string{
	"X-Sessiongate-User-Id",
	"x-sessiongate-user-id",
	"X-SESSIONGATE-USER-ID",
	"X_Sessiongate_User_Id",
	"x_sessiongate_user_id",
	"X-Sessiongate_User-Id",
	"X_Sessiongate-User_Id",
	"X-Sessiongate-Session-Id",
	"X-Sessiongate-Org-Id",
	"x_sessiongate_org_role",
	"X-Sessiongate-Org-Permissions",
	"X-Sessiongate-Org-Slug",
	"X-Sessiongate-Actor-Id",
	"X-Sessiongate-Admin",    // not an identity header, but under the prefix
	"X-Sessiongate-",         // the bare prefix
	"X-SessionGate-User-ID ", // a trailing space (only possible in process)
}

func addSpoofs(r *http.Request) {
	for _, n := range spoofNames {
		// Raw map access keeps the exact spelling, as a client on the wire
		// can; Add would canonicalize it.
		r.Header[n] = append(r.Header[n], "spoofed-1", "spoofed-2")
	}
}

// assertNoSpoof fails if any header under the prefix, in any spelling,
// carries a spoofed value, or if the real identity headers have more than one
// value.
func assertNoSpoof(t *testing.T, where string, h http.Header, wantUser string) {
	t.Helper()
	for name, vals := range h {
		norm := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "_", "-"))
		if !strings.HasPrefix(norm, "x-sessiongate-") {
			continue
		}
		for _, v := range vals {
			if strings.HasPrefix(v, "spoofed") {
				t.Fatalf("%s: spoofed %q: %q passed", where, name, v)
			}
		}
		if len(vals) != 1 {
			t.Fatalf("%s: %s has %d values", where, name, len(vals))
		}
	}
	if got := h.Get("X-Sessiongate-User-Id"); got != wantUser {
		t.Fatalf("%s: X-Sessiongate-User-Id %q, want %q", where, got, wantUser)
	}
}

func TestIdentityHeaderSpoofing(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t)
	cases := []struct {
		name, path, token string
		status            int
		user              string // identity the upstream must see ("" none)
	}{
		{"public without token", "/public/x", "", 200, ""},
		{"public with a valid token (never verified)", "/public/x", h.valid, 200, ""},
		{"optional without token", "/optional", "", 200, ""},
		{"optional with an invalid token", "/optional", "garbage", 200, ""},
		{"optional with an expired token", "/optional", h.expired, 200, ""},
		{"optional with a valid token", "/optional", h.valid, 200, "user_hostile"},
		{"required with a valid token", "/app", h.valid, 200, "user_hostile"},
		{"required without token", "/app", "", 401, ""},
		{"required with an expired token", "/app", h.expired, 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.example.com"+tc.path, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			addSpoofs(r)
			w, up := h.serve(t, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				if up != nil {
					t.Fatal("a rejected request reached the upstream")
				}
				assertNoSpoof(t, "response", w.Header(), "")
				return
			}
			if up == nil {
				t.Fatal("the upstream was not reached")
			}
			assertNoSpoof(t, "upstream", up, tc.user)
			if tc.user != "" && up.Get("X-Sessiongate-Org-Id") != "org_real" {
				t.Fatalf("org id %q", up.Get("X-Sessiongate-Org-Id"))
			}
		})
	}
}

// TestIdentityHeaderSpoofingForwardAuth: the forward-auth answer is what
// nginx/Traefik/Caddy copy to the upstream, so spoofed request headers must
// not be reflected in it, whatever the decision.
func TestIdentityHeaderSpoofingForwardAuth(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t)
	for _, tc := range []struct {
		name, uri, token string
		status           int
		user             string
	}{
		{"public", "/public/x", "", 200, ""},
		{"optional anonymous", "/optional", "garbage", 200, ""},
		{"optional signed in", "/optional", h.valid, 200, "user_hostile"},
		{"required signed in", "/app", h.valid, 200, "user_hostile"},
		{"required signed out", "/app", "", 401, ""},
		{"no route matches (fails closed)", "/_other", "", 401, ""},
	} {
		for _, uriHeader := range []string{"X-Forwarded-Uri", "X-Original-Uri"} {
			r := httptest.NewRequest("GET", "http://gate/_sessiongate/auth", nil)
			r.RemoteAddr = "[::1]:40000" // the front proxy, on loopback
			r.Header.Set(uriHeader, tc.uri)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			addSpoofs(r)
			w, up := h.serve(t, r)
			if up != nil {
				t.Fatalf("%s: forward-auth reached the upstream", tc.name)
			}
			if w.Code != tc.status {
				t.Fatalf("%s (%s): status %d, want %d", tc.name, uriHeader, w.Code, tc.status)
			}
			assertNoSpoof(t, tc.name+" response", w.Header(), tc.user)
		}
	}
}

// TestAuthorizationHeaderVariants pins how odd Authorization headers are
// read (docs/security.md, middleware.ExtractToken): the scheme is Bearer in any
// case followed by one or more spaces, surrounding spaces are trimmed, any
// other scheme (a tab is not a separator) is "no token" and the cookie is
// consulted, and two Authorization headers are refused.
func TestAuthorizationHeaderVariants(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t)
	other := h.inst.MustMint(t, clerktest.WithUser("user_cookie"))
	cases := []struct {
		name   string
		auth   []string
		cookie string
		status int
		reason string
		user   string
	}{
		{"Bearer", []string{"Bearer " + h.valid}, "", 200, "", "user_hostile"},
		{"lower-case scheme", []string{"bearer " + h.valid}, "", 200, "", "user_hostile"},
		{"upper-case scheme", []string{"BEARER " + h.valid}, "", 200, "", "user_hostile"},
		{"mixed-case scheme", []string{"bEaReR " + h.valid}, "", 200, "", "user_hostile"},
		{"double spaces around the token", []string{"Bearer  " + h.valid + "  "}, "", 200, "", "user_hostile"},
		{"tab after the scheme is not a separator", []string{"Bearer\t" + h.valid}, "", 401, "session-token-missing", ""},
		{"tab after the scheme, cookie present", []string{"Bearer\t" + h.valid}, other, 200, "", "user_cookie"},
		{"token followed by a tab", []string{"Bearer " + h.valid + "\t"}, "", 401, "token-invalid", ""},
		{"Bearer alone", []string{"Bearer"}, "", 401, "session-token-missing", ""},
		{"Bearer and a space", []string{"Bearer "}, "", 401, "session-token-missing", ""},
		{"Bearer and spaces, cookie present", []string{"Bearer   "}, other, 200, "", "user_cookie"},
		{"Token scheme", []string{"Token " + h.valid}, "", 401, "session-token-missing", ""},
		{"Token scheme, cookie present", []string{"Token " + h.valid}, other, 200, "", "user_cookie"},
		{"Basic scheme, cookie present", []string{"Basic dXNlcjpwYXNz"}, other, 200, "", "user_cookie"},
		{"bare token without scheme", []string{h.valid}, "", 401, "session-token-missing", ""},
		{"Bearer with two tokens", []string{"Bearer " + h.valid + " " + other}, "", 401, "token-invalid", ""},
		{"Bearer with a comma list", []string{"Bearer " + h.valid + ", Bearer " + other}, "", 401, "token-invalid", ""},
		{"two Authorization headers, same token", []string{"Bearer " + h.valid, "Bearer " + h.valid}, "", 401, "token-invalid", ""},
		{"two Authorization headers, other scheme first", []string{"Basic dXNlcjpwYXNz", "Bearer " + h.valid}, "", 401, "token-invalid", ""},
		{"header wins over the cookie", []string{"Bearer " + h.expired}, other, 401, "token-expired", ""},
		{"header wins over an expired cookie", []string{"Bearer " + h.valid}, h.expired, 200, "", "user_hostile"},
		{"header wins over a garbage cookie", []string{"Bearer " + h.valid}, "garbage", 200, "", "user_hostile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.example.com/app", nil)
			r.Header["Authorization"] = tc.auth
			if tc.cookie != "" {
				r.Header.Set("Cookie", "__session="+tc.cookie)
			}
			w, up := h.serve(t, r)
			if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
			}
			if (up != nil) != (tc.status == 200) {
				t.Fatalf("upstream reached: %v", up != nil)
			}
			if up != nil && up.Get("X-Sessiongate-User-Id") != tc.user {
				t.Fatalf("user %q, want %q", up.Get("X-Sessiongate-User-Id"), tc.user)
			}
		})
	}
}

// TestSessionCookieQuirks documents what happens with several __session
// cookies and odd spellings, as observed. The rule (middleware/http.go) is
// "the first __session cookie net/http's parser keeps", as in Clerk's SDKs,
// which read the first cookie of that name:
//   - of two cookies the first wins, whether it is valid or not;
//   - an empty first cookie hides the others (no token: session-token-missing);
//   - a cookie whose value has bytes a cookie cannot hold (a quote inside, a
//     backslash) is dropped by net/http, so the next one is used;
//   - a DQUOTE-wrapped value is unwrapped (RFC 6265 cookie-value);
//   - names are case-sensitive, and __session_<suffix> is only read in the
//     handshake (publishable key) mode;
//   - several Cookie lines are read in order;
//   - a space right after "=" stays in the value (token-invalid).
func TestSessionCookieQuirks(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t)
	v, x := h.valid, h.expired
	cases := []struct {
		name    string
		cookies []string
		status  int
		reason  string
	}{
		{"valid then expired: the first wins", []string{"__session=" + v + "; __session=" + x}, 200, ""},
		{"expired then valid: the first wins", []string{"__session=" + x + "; __session=" + v}, 401, "token-expired"},
		{"garbage then valid: the first wins", []string{"__session=garbage; __session=" + v}, 401, "token-invalid"},
		{"empty then valid: no token", []string{"__session=; __session=" + v}, 401, "session-token-missing"},
		{"unparseable then valid: the parser skips the first", []string{`__session=a"b; __session=` + v}, 200, ""},
		{"backslash then valid", []string{`__session=a\b; __session=` + v}, 200, ""},
		{"quoted valid", []string{`__session="` + v + `"`}, 200, ""},
		{"two Cookie lines: the first line first", []string{"__session=" + x, "__session=" + v}, 401, "token-expired"},
		{"other cookies around it", []string{"a=1; __session=" + v + "; b=2"}, 200, ""},
		{"name in another case", []string{"__Session=" + v}, 401, "session-token-missing"},
		{"suffixed name without a publishable key", []string{"__session_Abc123=" + v}, 401, "session-token-missing"},
		// net/http trims the pair but keeps a space after "=" in the value
		// (0x20 is a legal cookie byte): the token then fails its alphabet.
		{"space after the equals sign", []string{"__session = " + v + " "}, 401, "token-invalid"},
		{"spaces around the pair", []string{"  __session=" + v + "  ;x=1"}, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.example.com/app", nil)
			r.Header["Cookie"] = tc.cookies
			w, up := h.serve(t, r)
			if w.Code != tc.status || w.Header().Get("X-Clerk-Auth-Reason") != tc.reason {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Header().Get("X-Clerk-Auth-Reason"), tc.status, tc.reason)
			}
			if (up != nil) != (tc.status == 200) {
				t.Fatalf("upstream reached: %v", up != nil)
			}
		})
	}
}
