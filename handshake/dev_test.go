package handshake_test

// Development instances (pk_test_ keys): Clerk's dev-browser flow, the
// payloads returned in the URL, the redirect to the cleaned URL, the
// one-day clock-skew retry and the 500 on a payload that fails
// verification.

import (
	"context"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// The development twin of the note's instance: same Frontend API host.
const (
	pkTest    = "pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
	devSuffix = "vWCgMp3A"
)

// newDevEnv is newEnv for a development instance, with Clerk's clock-skew
// retry wired to a Gate on the fake's keys.
func newDevEnv(t *testing.T, mutate func(*handshake.Config)) *env {
	t.Helper()
	var e *env
	e = newEnv(t, func(c *handshake.Config) {
		c.Production = false
		c.CookieSuffix = devSuffix
		c.GateAt = func(at time.Time) (*middleware.Gate, error) {
			return middleware.New(middleware.Config{Issuer: issuer, Keys: jwks.NewMemory(e.inst.PublicKeys()...),
				Now: func() time.Time { return at }, TokenCacheSize: -1})
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return e
}

// Cases 31, 32 and the dev-browser rules: where the dev-browser token is
// read, and what its absence or presence in the URL starts.
func TestDevelopmentDevBrowserToken(t *testing.T) {
	e := newDevEnv(t, nil)
	now := e.clk.Now()
	expired := e.mint(t, clerktest.WithIssuedAt(now.Add(-2*time.Minute)))
	uat := itoa(now.Add(-2 * time.Minute).Unix())
	S, U, D := "__session_"+devSuffix, "__client_uat_"+devSuffix, "__clerk_db_jwt_"+devSuffix
	for _, tc := range []struct {
		name    string
		target  string
		hdr     map[string]string
		cookies []kv
		// want: a handshake with this reason and __clerk_db_jwt, or
		// signed-out with wantOut.
		reason, devBrowser string
		redirectURL        string
		wantOut            middleware.Reason
	}{
		{name: "no dev browser, no cookies: dev-browser-missing even signed out", target: "/", hdr: nav,
			reason: handshake.ReasonDevBrowserMissing, redirectURL: appURL + "/"},
		{name: "dev browser in the URL: dev-browser-sync, sent to the Frontend API, cut from redirect_url",
			target: "/hello?foo=bar&__clerk_db_jwt=x&z=%20", hdr: nav,
			reason: handshake.ReasonDevBrowserSync, devBrowser: "x", redirectURL: appURL + "/hello?foo=bar&z=%20"},
		{name: "an empty __clerk_db_jwt parameter still syncs", target: "/?__clerk_db_jwt=", hdr: nav,
			cookies: []kv{{"__clerk_db_jwt", "c"}}, reason: handshake.ReasonDevBrowserSync, devBrowser: "c", redirectURL: appURL + "/"},
		{name: "the URL's dev browser wins over the cookie", target: "/?__clerk_db_jwt=q", hdr: nav,
			cookies: []kv{{"__clerk_db_jwt", "c"}}, reason: handshake.ReasonDevBrowserSync, devBrowser: "q", redirectURL: appURL + "/"},
		{name: "unsuffixed dev-browser cookie: the normal flow (signed out)", target: "/", hdr: nav,
			cookies: []kv{{"__clerk_db_jwt", "c"}}, wantOut: middleware.ReasonSessionTokenMissing},
		{name: "unsuffixed dev-browser cookie carried to the handshake of an expired session", target: "/", hdr: nav,
			cookies: []kv{{"__clerk_db_jwt", "c"}, {"__session", expired}, {"__client_uat", uat}},
			reason:  "session-token-expired-refresh-non-eligible-no-refresh-cookie", devBrowser: "c", redirectURL: appURL + "/"},
		{name: "suffixed cookies chosen: the suffixed dev browser", target: "/", hdr: nav,
			cookies: []kv{{D, "s"}, {"__clerk_db_jwt", "u"}, {S, expired}, {U, uat}},
			reason:  "session-token-expired-refresh-non-eligible-no-refresh-cookie", devBrowser: "s", redirectURL: appURL + "/"},
		{name: "unsuffixed cookies chosen and only a suffixed dev browser: missing", target: "/", hdr: nav,
			cookies: []kv{{D, "s"}}, reason: handshake.ReasonDevBrowserMissing, redirectURL: appURL + "/"},
		{name: "not a navigation, no dev browser: signed out, never redirected", target: "/", hdr: fetchHdr,
			cookies: []kv{{"__session", e.mint(t)}, {"__client_uat", "1"}}, wantOut: middleware.ReasonSessionTokenStale},
		{name: "not a navigation, dev browser in the URL: signed out", target: "/?__clerk_db_jwt=x", hdr: fetchHdr,
			wantOut: middleware.ReasonSessionTokenMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", tc.target, tc.hdr, tc.cookies...))
			if tc.wantOut != "" {
				wantSignedOut(t, o, tc.wantOut, "")
				return
			}
			u := wantRedirect(t, o, tc.reason)
			q := u.Query()
			if got := q.Get("__clerk_db_jwt"); got != tc.devBrowser || (tc.devBrowser == "" && q.Has("__clerk_db_jwt")) {
				t.Errorf("__clerk_db_jwt = %q, want %q", got, tc.devBrowser)
			}
			if got := q.Get("redirect_url"); got != tc.redirectURL {
				t.Errorf("redirect_url = %q, want %q", got, tc.redirectURL)
			}
			if u.Host != fapiHost || u.Path != handshake.HandshakePath {
				t.Errorf("Location %s", o.Location)
			}
		})
	}

	// A valid session with a dev browser is signed in without a redirect.
	tok := e.mint(t)
	wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__clerk_db_jwt", "c"}, kv{"__session", tok}, kv{"__client_uat", "1"})), "user_1")
}

// A payload in the URL is applied with a 307 to the URL without
// the payload's parameters, every other byte of the query kept.
func TestDevelopmentPayloadInURLRedirectsToCleanedURL(t *testing.T) {
	e := newDevEnv(t, nil)
	k, _ := keys(t)
	tok := e.mint(t)
	signedIn := []string{"__clerk_db_jwt=new; Path=/", "__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + tok + "; Path=/"}
	signedOut := []string{"__clerk_db_jwt=new; Path=/", "__client_uat=0; Path=/", "__session=; Path=/; Max-Age=0"}
	e.exch.fn = func(_ context.Context, nonce string) ([]string, error) { return signedIn, nil }
	const clean = appURL + "/p/q?a=%20b&flag&c=d"
	for _, tc := range []struct {
		name       string
		target     string
		cookies    []kv
		want       []string
		resolution handshake.Status
	}{
		{"signed-in payload", "/p/q?a=%20b&__clerk_handshake=" + handshakeJWT(t, k, nil, "", signedIn, nil) + "&flag&__clerk_help=1&__clerk_db_jwt=z&c=d",
			nil, signedIn, handshake.SignedIn},
		{"signed-out payload", "/p/q?__clerk_handshake=" + handshakeJWT(t, k, nil, "", signedOut, nil) + "&a=%20b&flag&c=d",
			nil, signedOut, handshake.SignedOut},
		{"nonce in the URL", "/p/q?a=%20b&flag&c=d&__clerk_handshake_nonce=n1", nil, signedIn, handshake.SignedIn},
		{"the URL's payload wins over a cookie's", "/p/q?a=%20b&flag&c=d&__clerk_handshake=" + handshakeJWT(t, k, nil, "", signedOut, nil),
			[]kv{{"__clerk_handshake", handshakeJWT(t, k, nil, "", signedIn, nil)}}, signedOut, handshake.SignedOut},
		{"a handshake cookie works too", "/p/q?a=%20b&flag&c=d",
			[]kv{{"__clerk_handshake", handshakeJWT(t, k, nil, "", signedIn, nil)}}, signedIn, handshake.SignedIn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", tc.target, nav, tc.cookies...))
			if o.Status != handshake.Redirect || o.Resolution != tc.resolution {
				t.Fatalf("outcome %v resolution %v (err %v), want a redirect resolving %v", o.Status, o.Resolution, o.Err, tc.resolution)
			}
			if o.Location != clean {
				t.Errorf("Location %q, want %q", o.Location, clean)
			}
			if !slices.Equal(o.SetCookie, tc.want) || !o.NoStore {
				t.Errorf("SetCookie %q (no-store %v), want %q", o.SetCookie, o.NoStore, tc.want)
			}
			w := httptest.NewRecorder()
			o.WriteRedirect(w)
			if w.Code != 307 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Clerk-Auth-Status") != tc.resolution.String() {
				t.Errorf("written %d %v", w.Code, w.Header())
			}
		})
	}

	// The directive allow-list applies to URL payloads too.
	hs := handshakeJWT(t, k, nil, "", append([]string{"evil=1; Path=/", "__client_uat=1\r\nX: y"}, signedIn...), nil)
	o := e.run(request("GET", "/?__clerk_handshake="+url.QueryEscape(hs), nav))
	if o.Status != handshake.Redirect || !slices.Equal(o.SetCookie, signedIn) {
		t.Errorf("filtered: %v %q", o.Status, o.SetCookie)
	}

	// Forward-auth never redirects: the payload is applied on the answer.
	r := request("GET", "/?__clerk_handshake="+handshakeJWT(t, k, nil, "", signedIn, nil), nav)
	o = e.hs.Authenticate(r, middleware.Policy{}, func() string { return appURL + r.URL.RequestURI() }, false)
	wantSignedIn(t, o, "user_1")
	if !slices.Equal(o.SetCookie, signedIn) || o.Location != "" {
		t.Errorf("forward-auth: %q %q", o.SetCookie, o.Location)
	}
}

// A new session token a few minutes off is still accepted (the
// one-day clock-skew retry, which still verifies everything else); a
// payload that fails verification is a 500, not a silent fall-through.
func TestDevelopmentClockSkewAndBadPayload(t *testing.T) {
	e := newDevEnv(t, nil)
	k, foreignKey := keys(t)
	now := e.clk.Now()
	payload := func(tok string) string {
		return handshakeJWT(t, k, nil, "", []string{"__client_uat=1; Path=/", "__session=" + tok + "; Path=/"}, nil)
	}
	for _, tc := range []struct {
		name   string
		tok    string
		accept bool
	}{
		{"10 minutes early (iat and nbf in the future)", e.mint(t, clerktest.WithIssuedAt(now.Add(10*time.Minute))), true},
		{"10 minutes late (expired)", e.mint(t, clerktest.WithIssuedAt(now.Add(-10*time.Minute))), true},
		{"23 hours late", e.mint(t, clerktest.WithIssuedAt(now.Add(-23*time.Hour))), true},
		{"two days late", e.mint(t, clerktest.WithIssuedAt(now.Add(-48*time.Hour))), false},
		{"two days early", e.mint(t, clerktest.WithIssuedAt(now.Add(48*time.Hour))), false},
		{"late and signed by another key", e.mint(t, clerktest.WithIssuedAt(now.Add(-10*time.Minute)), clerktest.WithSigningKey(foreignKey)), false},
		{"late and of another issuer", e.inst.MustMint(t, clerktest.WithUser("user_1"), clerktest.WithIssuedAt(now.Add(-10*time.Minute))), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", "/?__clerk_handshake="+payload(tc.tok), nav, kv{"__clerk_db_jwt", "c"}))
			if tc.accept {
				if o.Status != handshake.Redirect || o.Resolution != handshake.SignedIn || o.Claims == nil || o.Claims.Subject != "user_1" {
					t.Fatalf("outcome %v/%v err %v, want the cleaned-URL redirect signed in", o.Status, o.Resolution, o.Err)
				}
				return
			}
			// Discarded: the request goes on with its own cookies (signed
			// out here), and the payload's cookies are not set.
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, "")
			if len(o.SetCookie) != 0 {
				t.Errorf("a discarded payload set %q", o.SetCookie)
			}
		})
	}
	if e.logs.FilterMessageSnippet("clock skew").Len() == 0 {
		t.Error("the clock-skew retry is not logged")
	}

	// Without Config.GateAt there is no retry.
	e2 := newDevEnv(t, func(c *handshake.Config) { c.GateAt = nil })
	o := e2.run(request("GET", "/?__clerk_handshake="+payload(e2.mint(t, clerktest.WithIssuedAt(now.Add(-10*time.Minute)))), nav, kv{"__clerk_db_jwt", "c"}))
	if o.Status == handshake.Redirect {
		t.Error("retried without GateAt")
	}

	// A payload that fails verification: 500 with a message, from the URL
	// or from a cookie (then deleted), never applied.
	directives := []string{"__session=" + e.mint(t) + "; Path=/", "__client_uat=1; Path=/"}
	for _, tc := range []struct {
		name   string
		tok    string
		reason middleware.Reason
	}{
		{"wrong key", handshakeJWT(t, foreignKey, nil, "", directives, nil), middleware.ReasonTokenInvalidSignature},
		{"template category", handshakeJWT(t, k, map[string]any{"cat": clerktest.CategoryTemplate}, "", directives, nil), middleware.ReasonTokenTypeMismatch},
		{"alg none", handshakeJWT(t, k, map[string]any{"alg": "none"}, "none", directives, nil), ""},
		{"not a JWT", "garbage", middleware.ReasonTokenInvalid},
	} {
		for _, inCookie := range []bool{false, true} {
			name := tc.name + " in the URL"
			r := request("GET", "/?__clerk_handshake="+url.QueryEscape(tc.tok), nav, kv{"__clerk_db_jwt", "c"})
			if inCookie {
				name = tc.name + " in a cookie"
				r = request("GET", "/", nav, kv{"__clerk_db_jwt", "c"}, kv{"__clerk_handshake", tc.tok})
			}
			t.Run(name, func(t *testing.T) {
				o := e.run(r)
				if o.Status != handshake.Failed || o.Err == nil || !strings.Contains(o.Err.Message, "clear this site's cookies") {
					t.Fatalf("outcome %v err %v, want Failed", o.Status, o.Err)
				}
				if tc.reason != "" && o.Err.Reason != tc.reason {
					t.Errorf("reason %s, want %s", o.Err.Reason, tc.reason)
				}
				for _, c := range o.SetCookie {
					if !strings.HasPrefix(c, "__clerk_handshake=;") {
						t.Errorf("Set-Cookie %q on a failure", c)
					}
				}
				if inCookie != (len(o.SetCookie) > 0) {
					t.Errorf("deletions %q (cookie %v)", o.SetCookie, inCookie)
				}
			})
		}
	}
}

// Production keeps reading payloads from cookies only, whatever the URL
// says (the login-CSRF deviation), and never answers 500.
func TestProductionIgnoresURLPayloadsAndNeverFails(t *testing.T) {
	e := newEnv(t, nil)
	k, foreignKey := keys(t)
	good := handshakeJWT(t, k, nil, "", []string{"__session=" + e.mint(t) + "; Path=/", "__client_uat=1; Path=/"}, nil)
	o := e.run(request("GET", "/?__clerk_handshake="+good, nav))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
	bad := handshakeJWT(t, foreignKey, nil, "", nil, nil)
	o = e.run(request("GET", "/", nav, kv{"__clerk_handshake", bad}))
	if o.Status == handshake.Failed {
		t.Error("production answered a bad payload with a failure")
	}
	// No dev-browser step in production.
	o = e.run(request("GET", "/?__clerk_db_jwt=x", nav))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
}

// A development instance's handshake is accepted in
// configuration, on by default, and built.
func TestDevelopmentInstancesAccepted(t *testing.T) {
	cfg := config.Defaults()
	cfg.Clerk.PublishableKey = pkTest
	cfg.Upstream = "http://127.0.0.1:3000"
	on := true
	cfg.Routes = []config.Route{{Path: "/", Handshake: &on}}
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	cfg.Routes[0].Handshake = nil
	if !cfg.Routes[0].HandshakeEnabled(&cfg) {
		t.Error("the handshake is off by default with a pk_test_ key")
	}
	e := newEnv(t, nil)
	if _, err := handshake.New(handshake.Config{Gate: e.gate, FrontendAPI: fapiHost, CookieSuffix: devSuffix}); err != nil {
		t.Errorf("New with a development instance: %v", err)
	}
}

// Rule 6 of the suffixed-cookie choice applies to development instances:
// suffixed signed in, unsuffixed signed out, suffixed session expired.
func TestDevelopmentSuffixedCookieRule6(t *testing.T) {
	e := newDevEnv(t, nil)
	now := e.clk.Now()
	S, U := "__session_"+devSuffix, "__client_uat_"+devSuffix
	expiredS := e.mint(t, clerktest.WithIssuedAt(now.Add(-10*time.Minute)))
	fresh := e.mint(t)
	r := request("GET", "/", nav, kv{"__client_uat", "0"}, kv{S, expiredS}, kv{U, "5"})
	if e.hs.UsesSuffixedCookies(r) {
		t.Error("rule 6: an expired suffixed session with unsuffixed signed out should use the unsuffixed cookies")
	}
	r = request("GET", "/", nav, kv{"__client_uat", "0"}, kv{S, fresh}, kv{U, "5"})
	if !e.hs.UsesSuffixedCookies(r) {
		t.Error("rule 6 only for an expired suffixed session")
	}
}
