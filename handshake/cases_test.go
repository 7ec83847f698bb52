package handshake_test

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

// TestHandshake is Clerk's handshake behaviour for a production instance,
// one subtest per behaviour: which requests are redirected to the
// handshake and which end signed in or signed out, the redirect's shape,
// and how a returning handshake (a __clerk_handshake token or a nonce) is
// applied. A spoofed X-Forwarded-Host and the proxy's half of the return
// trip are in proxy/handshake_test.go; development instances, satellites,
// the cross-origin sync and the __refresh flow in dev_test.go,
// satellite_test.go and refresh_test.go.
func TestHandshake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		test func(t *testing.T)
	}{
		// The publishable key and the cookies it names.
		{"a publishable key decodes to its Frontend API host and instance type", func(t *testing.T) {
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
		}},
		{"a malformed publishable key is refused", func(t *testing.T) {
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
		}},
		{"the cookie suffix derives from the publishable key", func(t *testing.T) {
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
		}},
		{"suffixed cookies are used by Clerk's rules, and then read", testSuffixedCookieRules},

		// Which requests are redirected.
		{"client_uat without a session cookie on a document navigation → handshake", func(t *testing.T) {
			e := newEnv(t, nil)
			o := e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "document"}, kv{"__client_uat", "1"}))
			u := wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
			if got := u.Query().Get("suffixed_cookies"); got != "false" {
				t.Errorf("suffixed_cookies = %q", got)
			}
			if u.Query().Has("__session") {
				t.Error("__session param without a session")
			}
		}},
		{"an iframe navigation → handshake", func(t *testing.T) {
			e := newEnv(t, nil)
			o := e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "iframe"}, kv{"__client_uat", "1"}))
			wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
		}},
		{"a fetch (Sec-Fetch-Dest: empty) is signed out, not redirected, whatever its Accept", func(t *testing.T) {
			e := newEnv(t, nil)
			o := e.run(request("GET", "/", map[string]string{"Sec-Fetch-Dest": "empty", "Accept": "text/html"}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
			if o.ClerkReason != handshake.ReasonClientUATButNoSessionToken {
				t.Errorf("ClerkReason %q", o.ClerkReason)
			}
		}},
		{"without Sec-Fetch-Dest, Accept: text/html is a navigation → handshake", func(t *testing.T) {
			e := newEnv(t, nil)
			o := e.run(request("GET", "/", map[string]string{"Accept": "text/html,application/xhtml+xml"}, kv{"__client_uat", "1"}))
			wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
		}},
		{"without Sec-Fetch-Dest, Accept: application/json is signed out", func(t *testing.T) {
			e := newEnv(t, nil)
			o := e.run(request("GET", "/", map[string]string{"Accept": "application/json"}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
		}},
		{"POST, PUT and HEAD are never redirected", func(t *testing.T) {
			e := newEnv(t, nil)
			for _, m := range []string{"POST", "PUT", "HEAD"} {
				o := e.run(request(m, "/", map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"}, kv{"__client_uat", "1"}))
				wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonClientUATButNoSessionToken)
			}
		}},
		{"signed-out cookies end signed out, without a redirect or cookies", func(t *testing.T) {
			e := newEnv(t, nil)
			for _, cookies := range [][]kv{{{"__client_uat", "0"}}, nil, {{"__client_uat", "garbage"}}} {
				o := e.run(request("GET", "/", nav, cookies...))
				wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
				if len(o.SetCookie) != 0 || o.NoStore {
					t.Errorf("cookies %q no-store %v", o.SetCookie, o.NoStore)
				}
			}
		}},
		{"a session cookie without client_uat: navigation → handshake with the token, fetch → stale", func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.mint(t)
			o := e.run(request("GET", "/", nav, kv{"__session", tok}))
			u := wantRedirect(t, o, handshake.ReasonSessionTokenButNoClientUAT)
			if u.Query().Get("__session") != tok {
				t.Error("__session param is not the cookie's token")
			}
			o = e.run(request("GET", "/", fetchHdr, kv{"__session", tok}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenStale, handshake.ReasonSessionTokenButNoClientUAT)
		}},
		{"a valid token older than client_uat: navigation → handshake with the token, fetch → stale", func(t *testing.T) {
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
		}},
		{"an expired session cookie (exp + 6 s): navigation → handshake, fetch → token-expired, POST → signed out", func(t *testing.T) {
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
		}},
		{"a token expired by 4 s is within the 5 s skew and signs in", func(t *testing.T) {
			e := newEnv(t, nil)
			iat := e.clk.Now().Add(-64 * time.Second)
			tok := e.mint(t, clerktest.WithIssuedAt(iat))
			wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__session", tok}, kv{"__client_uat", itoa(iat.Unix())})), "user_1")
		}},
		{"nbf in the future: navigation → handshake, fetch → token-not-active-yet", func(t *testing.T) {
			e := newEnv(t, nil)
			nbf := e.mint(t, clerktest.WithNotBefore(e.clk.Now().Add(time.Minute)))
			o := e.run(request("GET", "/", nav, kv{"__session", nbf}, kv{"__client_uat", "1"}))
			wantRedirect(t, o, handshake.ReasonSessionTokenNBF)
			o = e.run(request("GET", "/", fetchHdr, kv{"__session", nbf}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, middleware.ReasonTokenNotActiveYet, handshake.ReasonSessionTokenNBF)
		}},
		{"iat in the future: navigation → handshake, fetch → token-iat-in-the-future", func(t *testing.T) {
			e := newEnv(t, nil)
			now := e.clk.Now()
			future := e.mint(t, clerktest.WithIssuedAt(now.Add(time.Minute)), clerktest.WithNotBefore(now.Add(-5*time.Second)))
			o := e.run(request("GET", "/", nav, kv{"__session", future}, kv{"__client_uat", "1"}))
			wantRedirect(t, o, handshake.ReasonSessionTokenIATInTheFuture)
			o = e.run(request("GET", "/", fetchHdr, kv{"__session", future}, kv{"__client_uat", "1"}))
			wantSignedOut(t, o, middleware.ReasonTokenIatInTheFuture, handshake.ReasonSessionTokenIATInTheFuture)
		}},
		{"a token with a bad signature, an unknown kid or HS256 never redirects", func(t *testing.T) {
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
		}},
		{"a malformed or non-session token never redirects", func(t *testing.T) {
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
		}},

		// The redirect.
		{"the handshake URL carries the page, the API version, the suffix flag, the format and the token", func(t *testing.T) {
			e := newEnv(t, nil)
			iat := e.clk.Now().Add(-2 * time.Minute)
			tok := e.mint(t, clerktest.WithIssuedAt(iat))
			o := e.run(request("GET", "/hello?foo=bar", nav, kv{"__session", tok}, kv{"__client_uat", itoa(iat.Unix())}))
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
		}},
		{"redirect_url loses the dev-browser parameters and keeps every other byte of the query", func(t *testing.T) {
			e := newEnv(t, nil)
			iat := e.clk.Now().Add(-2 * time.Minute)
			cookies := []kv{{"__session", e.mint(t, clerktest.WithIssuedAt(iat))}, {"__client_uat", itoa(iat.Unix())}}
			o := e.run(request("GET", "/p?a=%20b&__clerk_db_jwt=x&flag&c=d+e&__dev_session=y", nav, cookies...))
			u := wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
			if got, want := u.Query().Get("redirect_url"), appURL+"/p?a=%20b&flag&c=d+e"; got != want {
				t.Errorf("redirect_url = %q, want %q", got, want)
			}
			o = e.run(request("GET", "/p?__clerk_db_jwt=x", nav, cookies...))
			u = wantRedirect(t, o, "session-token-expired-refresh-non-eligible-no-refresh-cookie")
			if got, want := u.Query().Get("redirect_url"), appURL+"/p"; got != want {
				t.Errorf("redirect_url = %q, want %q", got, want)
			}
		}},
		{"the redirect is a bodiless 307 with no-store, the auth headers and the loop counter", func(t *testing.T) {
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
		}},
		{"after three redirects in a row the loop guard ends signed out, and logs it", func(t *testing.T) {
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
		}},
		{"a proxy URL keeps its path prefix, with or without a trailing slash", func(t *testing.T) {
			for _, base := range []string{"https://example.com/clerk", "https://example.com/clerk/", "https://example.com/clerk//"} {
				e := newEnv(t, func(c *handshake.Config) { c.BaseURL = base })
				o := e.run(request("GET", "/", nav, kv{"__client_uat", "1"}))
				u := wantRedirect(t, o, handshake.ReasonClientUATButNoSessionToken)
				if got := u.Scheme + "://" + u.Host + u.Path; got != "https://example.com/clerk/v1/client/handshake" {
					t.Errorf("%s: %s", base, o.Location)
				}
			}
		}},

		// The return trip: a __clerk_handshake token.
		{"a __clerk_handshake cookie signs in, passing every directive in order, with no-store", func(t *testing.T) {
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
		}},
		{"a handshake token or nonce in the query is ignored in production", func(t *testing.T) {
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
		}},
		{"a handshake token that fails verification is deleted and not applied, never a 500", testBadHandshakeToken},
		{"a handshake whose new session is unusable redirects again, counting the redirect", func(t *testing.T) {
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
		}},
		{"a signed-out handshake passes its deletions and ends signed out", func(t *testing.T) {
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
		}},
		{"directives for cookies outside the allow-list, or with CR, LF or NUL, are dropped and logged", func(t *testing.T) {
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
		}},
		{"the last __session directive decides the identity", func(t *testing.T) {
			e := newEnv(t, nil)
			k, _ := keys(t)
			set := "__session=" + e.mint(t) + "; Path=/"
			del := "__session_" + suffix + "=; Path=/; Max-Age=0"
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", []string{set, del}, nil)}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
			o = e.run(request("GET", "/", nav, kv{"__clerk_handshake", handshakeJWT(t, k, nil, "", []string{del, set}, nil)}))
			wantSignedIn(t, o, "user_1")
		}},

		// The return trip: a nonce.
		{"a nonce is exchanged once, with the secret key and the API version, and its directives sign in", testNonceExchange},
		{"a nonce without an exchanger (no secret key) ends signed out", func(t *testing.T) {
			e := newEnv(t, func(c *handshake.Config) { c.Exchanger = nil })
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_abc"}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
		}},
		{"a failed nonce exchange ends signed out within its timeout, the nonce deleted", testNonceExchangeFails},
		{"with both a nonce and a handshake token the nonce wins", func(t *testing.T) {
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
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t)
		})
	}
}

// testSuffixedCookieRules: Clerk's usesSuffixedCookies, one row per rule
// (the rule for development instances only is ignored in production), and
// the cookies then read.
func testSuffixedCookieRules(t *testing.T) {
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
		{"unsuffixed token without iss", []kv{{"__session", noIss}, {S, newer}, {U, "5"}}, false},
		{"malformed unsuffixed token", []kv{{"__session", "garbage"}, {S, newer}, {U, "5"}}, false},
		{"unsuffixed token of another instance", []kv{{"__session", other}, {"__client_uat", "5"}, {S, newer}, {U, "5"}}, true},
		{"no suffixed cookies", []kv{{"__session", newer}, {"__client_uat", "5"}}, false},
		{"no cookies at all", nil, false},
		{"both signed in, unsuffixed newer", []kv{{"__session", newer}, {"__client_uat", "5"}, {S, older}, {U, "5"}}, false},
		{"suffixed signed out, unsuffixed signed in", []kv{{"__session", newer}, {"__client_uat", "5"}, {U, "0"}}, false},
		{"development-only rule ignored in production", []kv{{"__client_uat", "0"}, {S, expiredS}, {U, "5"}}, true},
		{"suffixed session without its client_uat", []kv{{S, newer}}, false},
		{"suffixed newer", []kv{{"__session", older}, {"__client_uat", "5"}, {S, newer}, {U, "5"}}, true},
		{"only suffixed", []kv{{S, newer}, {U, "5"}}, true},
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

// testBadHandshakeToken: a handshake token that fails verification is not
// applied; the flow goes on with the request's cookies, and the same
// payload with exp and nbf in range is accepted.
func testBadHandshakeToken(t *testing.T) {
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
	ok := handshakeJWT(t, k, map[string]any{"cat": clerktest.CategorySession}, "", directives, map[string]any{"exp": e.now() + 60, "nbf": e.now() - 1})
	wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__clerk_handshake", ok})), "user_1")
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

// testNonceExchange: the nonce is exchanged once at the Backend API; the
// deletions of the consumed nonce come first, then the directives in order.
func testNonceExchange(t *testing.T) {
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
	rec.mu.Lock()
	hdr := rec.hdr
	rec.mu.Unlock()
	if len(hdr) != 1 || hdr[0].Get("Authorization") != "Bearer "+e.inst.SecretKey() || hdr[0].Get("Clerk-API-Version") != "2026-05-12" {
		t.Errorf("exchange headers %v", hdr)
	}
	want := append([]string{
		"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0",
		"__clerk_handshake_nonce=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.com",
	}, directives...)
	if !slices.Equal(o.SetCookie, want) || !o.NoStore {
		t.Errorf("SetCookie\n%q\nwant\n%q", o.SetCookie, want)
	}
}

// testNonceExchangeFails: a failed exchange (unknown nonce, Clerk failing,
// Clerk slower than the exchange timeout) ends signed out at once, the
// nonce deleted and never retried.
func testNonceExchangeFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*clerktest.Instance)
	}{
		{"400 unknown nonce", func(*clerktest.Instance) {}},
		{"500", func(i *clerktest.Instance) { i.SetAPIBehavior(clerktest.ServerError) }},
		// Clerk answers after a minute (or when the request goes away),
		// far past the 200 ms exchange timeout.
		{"timeout", func(i *clerktest.Instance) { i.SetDelay(time.Minute); i.SetAPIBehavior(clerktest.Slow) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *handshake.Config) { c.CookieDomain = "example.com"; c.ExchangeTimeout = 200 * time.Millisecond })
			api := apiClient(t, e, &recorder{})
			e.exch.fn = api.GetHandshakePayload
			tc.setup(e.inst)
			start := time.Now()
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_x"}))
			// Generous: the bound tells the 200 ms timeout from Clerk's
			// minute, not how fast a loaded machine is.
			if d := time.Since(start); d > 20*time.Second {
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
