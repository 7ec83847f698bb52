package handshake_test

// The numbered test cases of Clerk's handshake behaviour, each named after
// its number. Cases 19 (spoofed X-Forwarded-Host) and 21's proxy half live in
// proxy/handshake_test.go. The development instances, satellites and the
// cross-origin sync have table tests named by behaviour in dev_test.go and
// satellite_test.go.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

// Case 1: publishable-key decoding.
func TestCase01PublishableKeyDecoding(t *testing.T) {
	for _, tc := range []struct {
		pk, host string
		live     bool
	}{
		{pkLive, fapiHost, true},
		{"pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA", fapiHost, false},
		{"pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=", "fake-clerk-test.clerk.accounts.dev", true},
		{"pk_test_Y2xlcmsuY2xlcmsuZGV2JA", "clerk.clerk.dev", false},
	} {
		k, err := config.ParsePublishableKey(tc.pk)
		if err != nil || k.FrontendAPI != tc.host || k.Live != tc.live {
			t.Errorf("%s: %+v %v, want host %s live %v", tc.pk, k, err, tc.host, tc.live)
		}
	}
	b64 := map[string]string{
		"clerk.example.com":   "Y2xlcmsuZXhhbXBsZS5jb20",
		"clerk.$example.com$": "Y2xlcmsuJGV4YW1wbGUuY29tJA",
		"localhost$":          "bG9jYWxob3N0JA",
		"clerk.example.com$":  "Y2xlcmsuZXhhbXBsZS5jb20k",
	}
	for name, pk := range map[string]string{
		"missing $":       "pk_live_" + b64["clerk.example.com"],
		"extra $":         "pk_live_" + b64["clerk.$example.com$"],
		"no dot":          "pk_live_" + b64["localhost$"],
		"two underscores": "pk_live",
		"four parts":      "pk_live_" + b64["clerk.example.com$"] + "_x",
		"bad base64":      "pk_live_!!!",
		"sk_ prefix":      "sk_live_" + b64["clerk.example.com$"],
	} {
		if k, err := config.ParsePublishableKey(pk); err == nil {
			t.Errorf("%s: %q accepted as %+v", name, pk, k)
		}
	}
}

// Case 2: the cookie suffix.
func TestCase02CookieSuffix(t *testing.T) {
	for pk, want := range map[string]string{
		pkLive: suffix,
		"pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA":                   "vWCgMp3A",
		"pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=":             "qReyu04C",
		"pk_test_Y2xlcmsuY2xlcmsuZGV2JA":                                       "QvfNY2dr",
		"pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k": "jtYvyt_H",
		"pk_test_eHh4eHh4LXhhYWFhYS1hYS5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k": "tZJdb-5s",
	} {
		k, err := config.ParsePublishableKey(pk)
		if err != nil || k.CookieSuffix != want {
			t.Errorf("%s: suffix %q (%v), want %q", pk, k.CookieSuffix, err, want)
		}
	}
}

// Case 3: usesSuffixedCookies, one row per rule (rule 6 is for
// development instances only), plus the cookie actually read.
func TestCase03SuffixedCookieRules(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now()
	sess := func(iat time.Time) string { return e.mint(t, clerktest.WithIssuedAt(iat)) }
	other := e.inst.MustMint(t, clerktest.WithClaim("iss", "https://clerk.other-app.example.com"))
	noIss := e.inst.MustMint(t, clerktest.WithoutClaim("iss"))
	older, newer := sess(now.Add(-20*time.Second)), sess(now.Add(-10*time.Second))
	expiredS := sess(now.Add(-10 * time.Minute))
	S, U := "__session_"+suffix, "__client_uat_"+suffix
	for _, tc := range []struct {
		name    string
		cookies []kv
		want    bool
	}{
		{"1 unsuffixed token without iss", []kv{{"__session", noIss}, {S, newer}, {U, "5"}}, false},
		{"1 malformed unsuffixed token", []kv{{"__session", "garbage"}, {S, newer}, {U, "5"}}, false},
		{"2 unsuffixed token of another instance", []kv{{"__session", other}, {"__client_uat", "5"}, {S, newer}, {U, "5"}}, true},
		{"3 no suffixed cookies", []kv{{"__session", newer}, {"__client_uat", "5"}}, false},
		{"3 no cookies at all", nil, false},
		{"4 both signed in, unsuffixed newer", []kv{{"__session", newer}, {"__client_uat", "5"}, {S, older}, {U, "5"}}, false},
		{"5 suffixed signed out, unsuffixed signed in", []kv{{"__session", newer}, {"__client_uat", "5"}, {U, "0"}}, false},
		{"6 (dev only) ignored in production", []kv{{"__client_uat", "0"}, {S, expiredS}, {U, "5"}}, true},
		{"7 suffixed session without its client_uat", []kv{{S, newer}}, false},
		{"8 suffixed newer", []kv{{"__session", older}, {"__client_uat", "5"}, {S, newer}, {U, "5"}}, true},
		{"8 only suffixed", []kv{{S, newer}, {U, "5"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("GET", "/", nav, tc.cookies...)
			if got := e.hs.UsesSuffixedCookies(r); got != tc.want {
				t.Errorf("UsesSuffixedCookies = %v, want %v", got, tc.want)
			}
		})
	}

	// The suffixed cookies are the ones read: an unsuffixed token of another
	// app is ignored and the suffixed one signs in.
	r := request("GET", "/", nav, kv{"__session", other}, kv{"__client_uat", "1"}, kv{S, newer}, kv{U, "1"})
	wantSignedIn(t, e.run(r), "user_1")

	// __refresh is always read suffixed (here it only shows in the expired
	// reason: without a Refresher the refresh cannot run; refresh_test.go).
	expired := sess(now.Add(-2 * time.Minute))
	base := []kv{{"__session", expired}, {"__client_uat", itoa(now.Add(-2 * time.Minute).Unix())}}
	o := e.run(request("GET", "/", nav, append(base, kv{"__refresh", "r"})...))
	wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	o = e.run(request("GET", "/", nav, append(base, kv{"__refresh", "r"}, kv{"__refresh_" + suffix, "r"})...))
	wantRedirect(t, o, "session-token-expired-refresh-missing-api-client")
}

// Case 4: __client_uat without a session on a document navigation.
func TestCase04ClientUATWithoutSession(t *testing.T) {
	e := newEnv(t, nil)
	o := e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "document"}, kv{"__client_uat", "1"}))
	u := wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
	if got := u.Query().Get("suffixed_cookies"); got != "false" {
		t.Errorf("suffixed_cookies = %q", got)
	}
	if u.Query().Has("__session") {
		t.Error("__session param without a session")
	}
}

// Case 5: iframe is eligible, fetch (Sec-Fetch-Dest: empty) is not.
func TestCase05IframeAndEmpty(t *testing.T) {
	e := newEnv(t, nil)
	o := e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "iframe"}, kv{"__client_uat", "1"}))
	wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
	o = e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "empty", "Accept": "text/html"}, kv{"__client_uat", "1"}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
	if o.ClerkReason != handshake.ReasonClientUATButNoSessionToken {
		t.Errorf("ClerkReason %q", o.ClerkReason)
	}
}

// Case 6: without Sec-Fetch-Dest, Accept decides.
func TestCase06AcceptWithoutSecFetchDest(t *testing.T) {
	e := newEnv(t, nil)
	o := e.run(request("GET", "/", map[string]string{"Accept": "text/html,application/xhtml+xml"}, kv{"__client_uat", "1"}))
	wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
	o = e.run(request("GET", "/", map[string]string{"Accept": "application/json"}, kv{"__client_uat", "1"}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
}

// Case 7: POST, PUT and HEAD are never redirected.
func TestCase07NonGetMethods(t *testing.T) {
	e := newEnv(t, nil)
	for _, m := range []string{"POST", "PUT", "HEAD"} {
		o := e.run(request(m, "/", map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"}, kv{"__client_uat", "1"}))
		wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
	}
}

// Case 8: signed out by the cookies: no redirect.
func TestCase08SignedOutCookies(t *testing.T) {
	e := newEnv(t, nil)
	for _, cookies := range [][]kv{{{"__client_uat", "0"}}, nil, {{"__client_uat", "garbage"}}} {
		o := e.run(request("GET", "/", nav, cookies...))
		wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
		if len(o.SetCookie) != 0 || o.NoStore {
			t.Errorf("cookies %q no-store %v", o.SetCookie, o.NoStore)
		}
	}
}

// Case 9: a session cookie without __client_uat.
func TestCase09SessionWithoutClientUAT(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	o := e.run(request("GET", "/", nav, kv{"__session", tok}))
	u := wantRedirect(t, o, handshake.ReasonSessionTokenButNoClientUAT)
	if u.Query().Get("__session") != tok {
		t.Error("__session param is not the cookie's token")
	}
	o = e.run(request("GET", "/", fetchHdr, kv{"__session", tok}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenStale, handshake.ReasonSessionTokenButNoClientUAT)
}

// Case 10: a valid token older than __client_uat.
func TestCase10IatBeforeClientUAT(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t)
	uat := itoa(e.now() + 10)
	o := e.run(request("GET", "/", nav, kv{"__session", tok}, kv{"__client_uat", uat}))
	u := wantRedirect(t, o, handshake.ReasonSessionTokenIATBeforeClientUAT)
	if u.Query().Get("__session") != tok {
		t.Error("the still-valid token is not sent as __session")
	}
	o = e.run(request("GET", "/", fetchHdr, kv{"__session", tok}, kv{"__client_uat", uat}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenStale, handshake.ReasonSessionTokenIATBeforeClientUAT)
}

// Case 11: an expired token (exp + 6 s) with client_uat = iat.
func TestCase11Expired(t *testing.T) {
	e := newEnv(t, nil)
	iat := e.clk.Now().Add(-66 * time.Second)
	tok := e.mint(t, clerktest.WithIssuedAt(iat))
	cookies := []kv{{"__session", tok}, {"__client_uat", itoa(iat.Unix())}}
	o := e.run(request("GET", "/", nav, cookies...))
	wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	o = e.run(request("GET", "/", fetchHdr, cookies...))
	wantSignedOut(t, o, middleware.ReasonTokenExpired, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	if !strings.HasPrefix(o.Err.Message, "the session token has expired") {
		t.Errorf("message %q", o.Err.Message)
	}
	o = e.run(request("POST", "/", nav, cookies...))
	wantSignedOut(t, o, middleware.ReasonTokenExpired, "session-token-expired-refresh-non-eligible-non-get")
}

// Case 12: expired by only 4 s is within the 5 s skew.
func TestCase12ExpiredWithinSkew(t *testing.T) {
	e := newEnv(t, nil)
	iat := e.clk.Now().Add(-64 * time.Second)
	tok := e.mint(t, clerktest.WithIssuedAt(iat))
	wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__session", tok}, kv{"__client_uat", itoa(iat.Unix())})), "user_1")
}

// Case 13: nbf and iat in the future.
func TestCase13NotYetValid(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now()
	nbf := e.mint(t, clerktest.WithNotBefore(now.Add(time.Minute)))
	o := e.run(request("GET", "/", nav, kv{"__session", nbf}, kv{"__client_uat", "1"}))
	wantRedirect(t, o, handshake.ReasonSessionTokenNBF)
	o = e.run(request("GET", "/", fetchHdr, kv{"__session", nbf}, kv{"__client_uat", "1"}))
	wantSignedOut(t, o, middleware.ReasonTokenNotActiveYet, handshake.ReasonSessionTokenNBF)

	future := e.mint(t, clerktest.WithIssuedAt(now.Add(time.Minute)), clerktest.WithNotBefore(now.Add(-5*time.Second)))
	o = e.run(request("GET", "/", nav, kv{"__session", future}, kv{"__client_uat", "1"}))
	wantRedirect(t, o, handshake.ReasonSessionTokenIATInTheFuture)
	o = e.run(request("GET", "/", fetchHdr, kv{"__session", future}, kv{"__client_uat", "1"}))
	wantSignedOut(t, o, middleware.ReasonTokenIatInTheFuture, handshake.ReasonSessionTokenIATInTheFuture)
}

// Case 14: a broken token never redirects.
func TestCase14BrokenTokenNeverRedirects(t *testing.T) {
	e := newEnv(t, nil)
	_, foreignKey := keys(t)
	for _, tc := range []struct {
		name string
		tok  string
		want middleware.Reason
	}{
		{"bad signature", e.mint(t, clerktest.WithSigningKey(foreignKey)), middleware.ReasonTokenInvalidSignature},
		{"unknown kid", e.mint(t, clerktest.WithHeader("kid", "ins_unknown")), middleware.ReasonKidMismatch},
		{"HS256", e.mint(t, clerktest.WithAlgorithm("HS256")), middleware.ReasonTokenInvalidAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", "/", nav, kv{"__session", tc.tok}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, tc.want, "")
		})
	}
}

// Case 15: malformed and non-session tokens.
func TestCase15MalformedAndTypeMismatch(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name string
		tok  string
		want middleware.Reason
	}{
		{"malformed", "not-a-jwt", middleware.ReasonTokenInvalid},
		{"malformed segments", "a.b.c", middleware.ReasonTokenInvalid},
		{"template category", e.inst.MustMint(t, clerktest.WithTemplate("tpl"), clerktest.WithClaim("iss", issuer)), middleware.ReasonTokenTypeMismatch},
		{"machine token", e.inst.MustMint(t, clerktest.WithMachine(), clerktest.WithClaim("iss", issuer)), middleware.ReasonTokenTypeMismatch},
		{"mch_ subject without category", e.inst.MustMint(t, clerktest.WithMachine(), clerktest.WithoutHeader("cat"), clerktest.WithClaim("iss", issuer)), middleware.ReasonTokenTypeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", "/", nav, kv{"__session", tc.tok}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, tc.want, "")
		})
	}
}

// Case 16: the redirect's URL and parameters.
func TestCase16RedirectShape(t *testing.T) {
	e := newEnv(t, nil)
	iat := e.clk.Now().Add(-2 * time.Minute)
	tok := e.mint(t, clerktest.WithIssuedAt(iat))
	cookies := []kv{{"__session", tok}, {"__client_uat", itoa(iat.Unix())}}

	o := e.run(request("GET", "/hello?foo=bar", nav, cookies...))
	u := wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	if u.Scheme != "https" || u.Host != fapiHost || u.Path != "/v1/client/handshake" {
		t.Errorf("Location %s", o.Location)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"redirect_url":        appURL + "/hello?foo=bar",
		"__clerk_api_version": "2026-05-12",
		"suffixed_cookies":    "false",
		"format":              "nonce",
		"__session":           tok,
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q) != 6 {
		t.Errorf("params %v", q)
	}

	// Dev-browser params are cut out; every other byte of the query stays.
	o = e.run(request("GET", "/p?a=%20b&__clerk_db_jwt=x&flag&c=d+e&__dev_session=y", nav, cookies...))
	u = wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	if got, want := u.Query().Get("redirect_url"), appURL+"/p?a=%20b&flag&c=d+e"; got != want {
		t.Errorf("redirect_url = %q, want %q", got, want)
	}
	o = e.run(request("GET", "/p?__clerk_db_jwt=x", nav, cookies...))
	u = wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
	if got, want := u.Query().Get("redirect_url"), appURL+"/p"; got != want {
		t.Errorf("redirect_url = %q, want %q", got, want)
	}
}

// Case 17: the redirect's headers.
func TestCase17RedirectHeaders(t *testing.T) {
	e := newEnv(t, nil)
	o := e.run(request("GET", "/", nav, kv{"__client_uat", "1"}))
	w := httptest.NewRecorder()
	o.WriteRedirect(w)
	res := w.Result()
	if res.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d", res.StatusCode)
	}
	h := res.Header
	if h.Get("Location") != o.Location || h.Get("Cache-Control") != "no-store" ||
		h.Get("X-Clerk-Auth-Status") != "handshake" || h.Get("X-Clerk-Auth-Reason") != handshake.ReasonClientUATButNoSessionToken {
		t.Errorf("headers %v", h)
	}
	sc := h.Values("Set-Cookie")
	if len(sc) != 1 || !strings.HasPrefix(sc[0], "__clerk_redirect_count=1;") ||
		!strings.Contains(sc[0], "HttpOnly") || !strings.Contains(sc[0], "Max-Age=2") ||
		!strings.Contains(sc[0], "SameSite=Lax") || !strings.Contains(sc[0], "Path=/") {
		t.Errorf("Set-Cookie %q", sc)
	}
	if w.Body.Len() != 0 {
		t.Errorf("body %q", w.Body.String())
	}
}

// Case 18: the loop guard.
func TestCase18LoopGuard(t *testing.T) {
	e := newEnv(t, nil)
	o := e.run(request("GET", "/", nav, kv{"__client_uat", "1"}, kv{"__clerk_redirect_count", "2"}))
	wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
	if !slices.ContainsFunc(o.SetCookie, func(c string) bool { return strings.HasPrefix(c, "__clerk_redirect_count=3;") }) {
		t.Errorf("Set-Cookie %q", o.SetCookie)
	}
	for _, n := range []string{"3", "7"} {
		o = e.run(request("GET", "/", nav, kv{"__client_uat", "1"}, kv{"__clerk_redirect_count", n}))
		wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
		if len(o.SetCookie) != 0 {
			t.Errorf("Set-Cookie %q", o.SetCookie)
		}
	}
	if e.logs.FilterMessageSnippet("redirect loop").Len() == 0 {
		t.Error("the loop is not logged")
	}
}

// Case 20: a proxy URL keeps its path prefix, with or without a trailing
// slash.
func TestCase20ProxyURL(t *testing.T) {
	for _, base := range []string{"https://example.com/clerk", "https://example.com/clerk/", "https://example.com/clerk//"} {
		e := newEnv(t, func(c *handshake.Config) { c.BaseURL = base })
		o := e.run(request("GET", "/", nav, kv{"__client_uat", "1"}))
		u := wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
		if got := u.Scheme + "://" + u.Host + u.Path; got != "https://example.com/clerk/v1/client/handshake" {
			t.Errorf("%s: %s", base, o.Location)
		}
	}
}

// Case 21: a __clerk_handshake cookie signs in, with every directive, in
// order, and no-store. (The proxy half: proxy/handshake_test.go.)
func TestCase21HandshakeCookieSignsIn(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	tok := e.mint(t)
	directives := []string{
		"__clerk_handshake=; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
		"__client_uat=" + itoa(e.now()) + "; Path=/; Domain=example.com; Max-Age=315360000; Secure; SameSite=Lax",
		"__session=" + tok + "; Path=/; Secure",
	}
	hs := handshakeJWT(t, k, nil, "", directives, map[string]any{"iat": e.now()})
	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", hs}))
	wantSignedIn(t, o, "user_1")
	if !slices.Equal(o.SetCookie, directives) {
		t.Errorf("SetCookie\n%q\nwant\n%q", o.SetCookie, directives)
	}
	if !o.NoStore {
		t.Error("no no-store")
	}
	w := httptest.NewRecorder()
	o.AddCookies(w.Header())
	if got := w.Header().Values("Set-Cookie"); !slices.Equal(got, directives) {
		t.Errorf("headers %q", got)
	}
}

// Case 22: the handshake JWT in the query is ignored in production.
func TestCase22HandshakeInQueryIgnored(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	hs := handshakeJWT(t, k, nil, "", []string{"__session=" + e.mint(t) + "; Path=/", "__client_uat=1; Path=/"}, nil)
	for _, param := range []string{"__clerk_handshake", "__clerk_handshake_nonce"} {
		o := e.run(request("GET", "/?"+param+"="+hs, nav))
		wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
		if len(o.SetCookie) != 0 {
			t.Errorf("%s: cookies %q", param, o.SetCookie)
		}
	}
	if len(e.exch.calls()) != 0 {
		t.Error("a query nonce was exchanged")
	}
}

// Case 23: a handshake JWT that fails verification is not applied and never
// answers 500; the flow goes on with the request's cookies.
func TestCase23BadHandshakeToken(t *testing.T) {
	e := newEnv(t, nil)
	k, foreignKey := keys(t)
	directives := []string{"__session=" + e.mint(t) + "; Path=/", "__client_uat=1; Path=/"}
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"wrong key", handshakeJWT(t, foreignKey, nil, "", directives, nil)},
		{"template category", handshakeJWT(t, k, map[string]any{"cat": clerktest.CategoryTemplate}, "", directives, nil)},
		{"typ at+jwt", handshakeJWT(t, k, map[string]any{"typ": "at+jwt"}, "", directives, nil)},
		{"alg none", handshakeJWT(t, k, map[string]any{"alg": "none"}, "none", directives, nil)},
		{"HS256", handshakeJWT(t, k, map[string]any{"alg": "HS256"}, "HS256", directives, nil)},
		{"expired exp", handshakeJWT(t, k, nil, "", directives, map[string]any{"exp": e.now() - 60})},
		{"future nbf", handshakeJWT(t, k, nil, "", directives, map[string]any{"nbf": e.now() + 60})},
		{"no handshake array", handshakeJWT(t, k, nil, "", nil, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", tc.tok}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
			for _, c := range o.SetCookie {
				if !strings.HasPrefix(c, "__clerk_handshake=;") {
					t.Errorf("Set-Cookie %q: only the deletion of the rejected cookie is expected", c)
				}
			}
			if len(o.SetCookie) == 0 {
				t.Error("the rejected handshake cookie is not deleted")
			}
		})
	}
	// With exp and nbf in range the same payload is accepted.
	ok := handshakeJWT(t, k, map[string]any{"cat": clerktest.CategorySession}, "", directives, map[string]any{"exp": e.now() + 60, "nbf": e.now() - 1})
	wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__clerk_handshake", ok})), "user_1")
}

// Case 24: a handshake whose new session is expired (or otherwise invalid),
// with the old expired cookies: another handshake, the counter going up.
func TestCase24StaleHandshake(t *testing.T) {
	e := newEnv(t, nil)
	k, foreignKey := keys(t)
	old := e.clk.Now().Add(-10 * time.Minute)
	oldTok := e.mint(t, clerktest.WithIssuedAt(old))
	for name, newTok := range map[string]string{
		"expired":       e.mint(t, clerktest.WithIssuedAt(old)),
		"bad signature": e.mint(t, clerktest.WithSigningKey(foreignKey)),
	} {
		t.Run(name, func(t *testing.T) {
			hs := handshakeJWT(t, k, nil, "", []string{"__session=" + newTok + "; Path=/", "__client_uat=" + itoa(old.Unix()) + "; Path=/"}, nil)
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", hs}, kv{"__session", oldTok},
				kv{"__client_uat", itoa(old.Unix())}, kv{"__clerk_redirect_count", "1"}))
			wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
			for _, c := range o.SetCookie {
				if strings.HasPrefix(c, "__session") {
					t.Errorf("a discarded directive was emitted: %q", c)
				}
			}
			if last := o.SetCookie[len(o.SetCookie)-1]; !strings.HasPrefix(last, "__clerk_redirect_count=2;") {
				t.Errorf("Set-Cookie %q", o.SetCookie)
			}
		})
	}
}

// Case 25: a signed-out payload (deletions only).
func TestCase25SignedOutPayload(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	directives := []string{
		"__clerk_handshake=; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
		"__client_uat=; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
		"__client_uat=0; Domain=example.com; Max-Age=315360000",
		"__client_uat_" + suffix + "=0; Domain=example.com",
		"__session_" + suffix + "=; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
	}
	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", directives, nil)}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
	if !slices.Equal(o.SetCookie, directives) || !o.NoStore {
		t.Errorf("SetCookie %q no-store %v", o.SetCookie, o.NoStore)
	}
}

// recorder records the headers of Backend API requests.
type recorder struct {
	mu  sync.Mutex
	hdr []http.Header
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hdr = append(r.hdr, req.Header.Clone())
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func apiClient(t *testing.T, e *env, rec *recorder) *clerkapi.Client {
	t.Helper()
	c, err := clerkapi.New(clerkapi.Config{
		SecretKey: e.inst.SecretKey(), APIURL: e.inst.APIURL(),
		HTTPClient: &http.Client{Transport: rec, Timeout: 10 * time.Second},
		MaxRetries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Case 26: the nonce is exchanged once at the Backend API, with the secret
// key and the API version; its directives sign in.
func TestCase26NonceExchange(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, func(c *handshake.Config) { c.CookieDomain = "example.com" })
	e.exch.fn = apiClient(t, e, rec).GetHandshakePayload
	directives := []string{"__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + e.mint(t) + "; Path=/"}
	e.inst.RegisterHandshakeNonce("nonce_abc", directives)

	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_abc"}))
	wantSignedIn(t, o, "user_1")
	if n := e.inst.Requests(clerktest.HandshakePayloadPath); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
	if len(rec.hdr) != 1 || rec.hdr[0].Get("Authorization") != "Bearer "+e.inst.SecretKey() || rec.hdr[0].Get("Clerk-API-Version") != "2026-05-12" {
		t.Errorf("exchange headers %v", rec.hdr)
	}
	// sessiongate's own deletions of the consumed nonce come first, then
	// the directives in order.
	want := append([]string{
		"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0",
		"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.com",
	}, directives...)
	if !slices.Equal(o.SetCookie, want) || !o.NoStore {
		t.Errorf("SetCookie\n%q\nwant\n%q", o.SetCookie, want)
	}

	// Without an exchanger (no secret key) a nonce ends signed-out.
	e2 := newEnv(t, func(c *handshake.Config) { c.Exchanger = nil })
	o = e2.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_abc"}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
}

// Case 27: a failed exchange ends signed-out at once, the nonce deleted.
func TestCase27NonceExchangeFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*clerktest.Instance)
	}{
		{"400 unknown nonce", func(*clerktest.Instance) {}},
		{"500", func(i *clerktest.Instance) { i.SetAPIBehavior(clerktest.ServerError) }},
		{"timeout", func(i *clerktest.Instance) { i.SetDelay(5 * time.Second); i.SetAPIBehavior(clerktest.Slow) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *handshake.Config) { c.CookieDomain = "example.com"; c.ExchangeTimeout = 200 * time.Millisecond })
			api := apiClient(t, e, &recorder{})
			e.exch.fn = api.GetHandshakePayload
			tc.setup(e.inst)
			start := time.Now()
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_x"}))
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
			if n := e.inst.Requests(clerktest.HandshakePayloadPath); n != 1 {
				t.Errorf("%d exchanges, want 1", n)
			}
			want := []string{
				"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0",
				"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.com",
			}
			if !slices.Equal(o.SetCookie, want) || !o.NoStore {
				t.Errorf("SetCookie %q", o.SetCookie)
			}
		})
	}
}

// Case 28: with both a nonce and a token the nonce wins.
func TestCase28NonceWins(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	fromNonce := []string{"__client_uat=1; Path=/", "__session=" + e.mint(t, clerktest.WithUser("user_nonce")) + "; Path=/"}
	e.exch.fn = func(ctx context.Context, nonce string) ([]string, error) {
		if nonce != "n1" {
			return nil, errors.New("unknown nonce")
		}
		return fromNonce, nil
	}
	hs := handshakeJWT(t, k, nil, "", []string{"__session=" + e.mint(t, clerktest.WithUser("user_token")) + "; Path=/"}, nil)
	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", hs}, kv{"__clerk_handshake_nonce", "n1"}))
	wantSignedIn(t, o, "user_nonce")
	if got := e.exch.calls(); len(got) != 1 {
		t.Errorf("exchanges %q", got)
	}
}

// Case 29: directives for cookies outside the allow-list, or with CR/LF,
// are dropped; suffixed names pass.
func TestCase29DirectiveFilter(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	tok := e.mint(t)
	good := []string{
		"__client_uat_" + suffix + "=" + itoa(e.now()) + "; Path=/",
		"__session_" + suffix + "=" + tok + "; Path=/",
		"__refresh_" + suffix + "=r; Path=/; HttpOnly",
		"__clerk_db_jwt=x; Path=/",
		"__client_uat=" + itoa(e.now()) + "; Path=/",
	}
	bad := []string{
		"foo=bar;path=/;domain=example.com",
		"x__session=1; Path=/",
		"__client_uat=1\r\nSet-Cookie: evil=1",
		"__session=" + tok + "\n; Path=/",
		"__client_uat=1; Path=/\x00",
		"=nameless",
	}
	all := []string{bad[0], good[0], bad[1], good[1], bad[2], good[2], bad[3], good[3], bad[4], bad[5], good[4]}
	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", all, nil)}))
	wantSignedIn(t, o, "user_1")
	if !slices.Equal(o.SetCookie, good) {
		t.Errorf("SetCookie\n%q\nwant\n%q", o.SetCookie, good)
	}
	if e.logs.FilterMessageSnippet("dropped").Len() != len(bad) {
		t.Errorf("%d drops logged, want %d", e.logs.FilterMessageSnippet("dropped").Len(), len(bad))
	}
}

// Case 30: the last __session* directive decides the identity.
func TestCase30LastSessionDirectiveWins(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	set := "__session=" + e.mint(t) + "; Path=/"
	del := "__session_" + suffix + "=; Path=/; Max-Age=0"
	o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", []string{set, del}, nil)}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
	o = e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", []string{del, set}, nil)}))
	wantSignedIn(t, o, "user_1")
}
