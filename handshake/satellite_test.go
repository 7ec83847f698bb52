package handshake_test

// Satellite domains, a development primary's answer to a satellite's sync,
// and the primary domain's cross-origin sync (case 36).

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

const (
	satelliteFAPI = "https://clerk.satellite.example"
	satelliteApp  = "https://satellite.example"
	primarySignIn = "https://app.example.com/sign-in"
)

// runAt authenticates r as a page of origin.
func (e *env) runAt(origin string, r *http.Request) *handshake.Outcome {
	return e.hs.Authenticate(r, middleware.Policy{}, func() string { return origin + r.URL.RequestURI() }, true)
}

// The satellite sync, production and development: who syncs, where to, and
// who is left alone.
func TestSatelliteSync(t *testing.T) {
	prod := newEnv(t, func(c *handshake.Config) { c.Satellite, c.BaseURL = true, satelliteFAPI })
	auto := newEnv(t, func(c *handshake.Config) {
		c.Satellite, c.BaseURL, c.SatelliteAutoSync = true, satelliteFAPI, true
	})
	dev := newDevEnv(t, func(c *handshake.Config) { c.Satellite, c.SignInURL = true, primarySignIn+"?x=1" })
	now := prod.clk.Now()
	expired := prod.mint(t, clerktest.WithIssuedAt(now.Add(-2*time.Minute)))
	valid := prod.mint(t)
	uat := itoa(now.Add(-2 * time.Minute).Unix())
	doc := map[string]string{"Sec-Fetch-Dest": "document"}
	for _, tc := range []struct {
		name    string
		e       *env
		method  string
		target  string
		hdr     map[string]string
		cookies []kv
		// reason: a redirect with this Clerk reason to location (a prefix);
		// "" and signedIn: signed in; else signed out.
		reason, location string
		signedIn         bool
	}{
		{name: "first visit without cookies: signed out, no sync (satelliteAutoSync false)", e: prod, target: "/", hdr: doc},
		{name: "back from signing in (__clerk_synced=false): sync through the satellite's Frontend API", e: prod,
			target: "/p?__clerk_synced=false", hdr: doc, reason: handshake.ReasonSatelliteNeedsSyncing, location: satelliteFAPI + "/v1/client/handshake?"},
		{name: "satelliteAutoSync: the first visit syncs", e: auto, target: "/", hdr: doc,
			reason: handshake.ReasonSatelliteNeedsSyncing, location: satelliteFAPI + "/v1/client/handshake?"},
		{name: "a completed sync (__clerk_synced=true) does not sync again", e: auto, target: "/?__clerk_synced=true", hdr: doc},
		{name: "cookies present: the normal flow renews an expired session", e: prod, target: "/", hdr: doc,
			cookies: []kv{{"__session", expired}, {"__client_uat", uat}},
			reason:  "session-token-expired-refresh-non-eligible-no-refresh-cookie", location: satelliteFAPI + "/v1/client/handshake?"},
		{name: "cookies present: a valid session is signed in", e: prod, target: "/", hdr: doc,
			cookies: []kv{{"__session", valid}, {"__client_uat", "1"}}, signedIn: true},
		{name: "cookies present and __clerk_synced=false: sync anyway", e: prod, target: "/?__clerk_synced=false", hdr: doc,
			cookies: []kv{{"__session", valid}, {"__client_uat", "1"}}, reason: handshake.ReasonSatelliteNeedsSyncing, location: satelliteFAPI},
		{name: "an iframe never syncs", e: auto, target: "/?__clerk_synced=false", hdr: map[string]string{"Sec-Fetch-Dest": "iframe"}},
		{name: "no Sec-Fetch-Dest never syncs", e: auto, target: "/?__clerk_synced=false", hdr: map[string]string{"Accept": "text/html"}},
		{name: "a POST never syncs", e: auto, method: "POST", target: "/?__clerk_synced=false", hdr: doc},
		{name: "the loop guard stops a sync", e: prod, target: "/?__clerk_synced=false", hdr: doc, cookies: []kv{{"__clerk_redirect_count", "3"}}},
		{name: "development: sync through the primary's sign-in page with __clerk_redirect_url", e: dev,
			target: "/p?__clerk_synced=false", hdr: doc, cookies: []kv{{"__clerk_db_jwt", "c"}},
			reason: handshake.ReasonSatelliteNeedsSyncing, location: primarySignIn + "?"},
		{name: "development: back from the primary with its dev browser, sync it", e: dev,
			target: "/p?__clerk_db_jwt=prim&__clerk_synced=true", hdr: doc, cookies: []kv{{"__clerk_db_jwt", "c"}},
			reason: handshake.ReasonDevBrowserSync, location: "https://" + fapiHost + "/v1/client/handshake?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := request(method, tc.target, tc.hdr, tc.cookies...)
			o := tc.e.runAt(satelliteApp, r)
			switch {
			case tc.reason != "":
				if strings.HasPrefix(tc.location, primarySignIn) {
					if o.Status != handshake.Redirect || o.ClerkReason != tc.reason {
						t.Fatalf("outcome %v %q, want a redirect %s", o.Status, o.ClerkReason, tc.reason)
					}
				} else {
					wantRedirect(t, o, tc.reason)
				}
				if !strings.HasPrefix(o.Location, tc.location) {
					t.Errorf("Location %s, want %s…", o.Location, tc.location)
				}
				if last := o.SetCookie[len(o.SetCookie)-1]; !strings.HasPrefix(last, "__clerk_redirect_count=") {
					t.Errorf("no loop counter: %q", o.SetCookie)
				}
			case tc.signedIn:
				wantSignedIn(t, o, "user_1")
			default:
				wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, "")
			}
		})
	}

	// The production sync keeps the page's URL, __clerk_synced=false
	// included, as redirect_url.
	o := prod.runAt(satelliteApp, request("GET", "/p?a=1&__clerk_synced=false", doc))
	u, _ := url.Parse(o.Location)
	if got := u.Query().Get("redirect_url"); got != satelliteApp+"/p?a=1&__clerk_synced=false" {
		t.Errorf("redirect_url %q", got)
	}
	// The development sync names the page in __clerk_redirect_url and keeps
	// the sign-in URL's own query.
	o = dev.runAt(satelliteApp, request("GET", "/p?__clerk_synced=false", doc, kv{"__clerk_db_jwt", "c"}))
	u, _ = url.Parse(o.Location)
	if u.Query().Get(handshake.RedirectURLParam) != satelliteApp+"/p?__clerk_synced=false" || u.Query().Get("x") != "1" {
		t.Errorf("development sync Location %s", o.Location)
	}
	// A development satellite whose sign-in page is on its own origin would
	// loop: signed out instead, logged.
	o = dev.runAt("https://app.example.com", request("GET", "/p?__clerk_synced=false", doc, kv{"__clerk_db_jwt", "c"}))
	wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSatelliteNeedsSyncing)
	if dev.logs.FilterMessageSnippet("own origin").Len() == 0 {
		t.Error("the same-origin sign-in URL is not logged")
	}
	// A development satellite needs a sign-in URL.
	if _, err := handshake.New(handshake.Config{Gate: prod.gate, FrontendAPI: fapiHost, CookieSuffix: devSuffix, Satellite: true}); err == nil {
		t.Error("a development satellite without SignInURL was accepted")
	}
}

// A development primary answers a satellite's sync request with its
// dev-browser token, but only to the configured satellites' origins (Clerk's
// SDK answers any URL: an open redirect that hands out the token).
func TestPrimaryAnswersSatelliteSync(t *testing.T) {
	e := newDevEnv(t, func(c *handshake.Config) { c.SyncOrigins = []string{satelliteApp, "http://127.0.0.2:8080"} })
	prod := newEnv(t, func(c *handshake.Config) { c.SyncOrigins = []string{satelliteApp} })
	for _, tc := range []struct {
		name     string
		e        *env
		target   string
		hdr      map[string]string
		location string // "" : ignored (no redirect to it)
	}{
		{"a configured satellite gets the dev browser and __clerk_synced=true", e,
			"/sign-in?__clerk_redirect_url=" + url.QueryEscape(satelliteApp+"/p?x=1&__clerk_synced=false"), nav,
			satelliteApp + "/p?__clerk_db_jwt=c&__clerk_synced=true&x=1"},
		{"another port of a configured host", e, "/?__clerk_redirect_url=" + url.QueryEscape("http://127.0.0.2:8080/"), nav,
			"http://127.0.0.2:8080/?__clerk_db_jwt=c&__clerk_synced=true"},
		// Clerk's #7018: answered before the primary's own dev-browser-sync,
		// which would otherwise loop between the domains.
		{"a dev browser in the URL too: the sync is answered first, with the URL's token", e,
			"/?__clerk_db_jwt=q&__clerk_redirect_url=" + url.QueryEscape(satelliteApp+"/"), nav,
			satelliteApp + "/?__clerk_db_jwt=q&__clerk_synced=true"},
		{"an unknown origin is ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape("https://attacker.example/steal"), nav, ""},
		{"a look-alike origin is ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape("https://satellite.example.attacker.example/"), nav, ""},
		{"user info is ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape("https://satellite.example@attacker.example/"), nav, ""},
		{"another scheme is ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape("javascript:alert(1)"), nav, ""},
		{"http for an https satellite is ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape("http://satellite.example/"), nav, ""},
		{"not a navigation: ignored", e, "/?__clerk_redirect_url=" + url.QueryEscape(satelliteApp+"/"), fetchHdr, ""},
		{"a production primary never answers", prod, "/?__clerk_redirect_url=" + url.QueryEscape(satelliteApp+"/"), nav, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.e.run(request("GET", tc.target, tc.hdr, kv{"__clerk_db_jwt", "c"}))
			if tc.location == "" {
				if o.Status == handshake.Redirect && !strings.HasPrefix(o.Location, "https://"+fapiHost+"/") {
					t.Fatalf("redirected to %s", o.Location)
				}
				return
			}
			wantRedirectTo(t, o, handshake.ReasonPrimaryRespondsToSyncing, tc.location)
		})
	}
	// Without SyncOrigins a development primary answers nobody.
	none := newDevEnv(t, nil)
	o := none.run(request("GET", "/?__clerk_redirect_url="+url.QueryEscape(satelliteApp+"/"), nav, kv{"__clerk_db_jwt", "c"}))
	if o.Status == handshake.Redirect {
		t.Errorf("answered without SyncOrigins: %s", o.Location)
	}
}

// wantRedirectTo checks a redirect that is not to the Frontend API.
func wantRedirectTo(t *testing.T, o *handshake.Outcome, reason, location string) {
	t.Helper()
	if o.Status != handshake.Redirect || o.ClerkReason != reason {
		t.Fatalf("outcome %v %q (err %v), want a redirect %s", o.Status, o.ClerkReason, o.Err, reason)
	}
	if o.Location != location {
		t.Errorf("Location %q, want %q", o.Location, location)
	}
}

// A signed-in document GET of a primary domain from another
// origin takes one handshake, unless the referrer is Clerk's own (the
// Frontend API, the Account Portal derived from it, development portals on
// development instances only: #9145).
func TestPrimaryCrossOriginSync(t *testing.T) {
	on := func(c *handshake.Config) { c.CrossOriginSync = true }
	prod := newEnv(t, on)
	dev := newDevEnv(t, on)
	proxied := newEnv(t, func(c *handshake.Config) { on(c); c.BaseURL = "https://proxy.example.com/__clerk" })
	off := newEnv(t, nil)
	sat := newEnv(t, func(c *handshake.Config) { on(c); c.Satellite, c.BaseURL = true, satelliteFAPI })
	tok := prod.mint(t)
	doc := map[string]string{"Sec-Fetch-Dest": "document"}
	for _, tc := range []struct {
		name    string
		e       *env
		referer string
		hdr     map[string]string
		cookies []kv
		sync    bool
	}{
		{"another site", prod, "https://other.site/", doc, nil, true},
		{"another site, with a path", prod, "https://other.site/a/b?c", doc, nil, true},
		{"the same origin", prod, appURL + "/x", doc, nil, false},
		{"the same origin with its default port", prod, "https://app.example.com:443/x", doc, nil, false},
		{"the Frontend API", prod, "https://" + fapiHost + "/v1/client", doc, nil, false},
		{"the instance's Account Portal", prod, "https://accounts.inspired.puma-74.lcl.dev/sign-in", doc, nil, false},
		{"any accounts.* host (fixed in #9145)", prod, "https://accounts.attacker.com/", doc, nil, true},
		{"a development portal on a production instance (fixed in #9145)", prod, "https://foo-bar-13.accounts.dev/", doc, nil, true},
		{"a development portal on a development instance", dev, "https://foo-bar-13.accounts.dev/", doc, []kv{{"__clerk_db_jwt", "c"}}, false},
		{"a legacy development portal on a development instance", dev, "https://accounts.foo.lcl.dev/", doc, []kv{{"__clerk_db_jwt", "c"}}, false},
		{"a development Frontend API host is no portal", dev, "https://foo-bar-13.clerk.accounts.dev/", doc, []kv{{"__clerk_db_jwt", "c"}}, true},
		{"with a proxy URL: the proxy's host is Clerk's", proxied, "https://proxy.example.com/", doc, nil, false},
		{"with a proxy URL: no Account Portal is derived", proxied, "https://accounts.inspired.puma-74.lcl.dev/", doc, nil, true},
		{"already in a handshake (counter 1)", prod, "https://other.site/", doc, []kv{{"__clerk_redirect_count", "1"}}, false},
		{"an iframe", prod, "https://other.site/", map[string]string{"Sec-Fetch-Dest": "iframe"}, nil, false},
		{"no Sec-Fetch-Dest", prod, "https://other.site/", map[string]string{"Accept": "text/html"}, nil, false},
		{"a malformed Referer", prod, "::not a url", doc, nil, false},
		{"turned off", off, "https://other.site/", doc, nil, false},
		{"never on a satellite", sat, "https://other.site/", doc, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Referer": tc.referer}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			cookies := append([]kv{{"__session", tok}, {"__client_uat", "1"}}, tc.cookies...)
			origin := appURL
			if tc.e == sat {
				origin = satelliteApp
			}
			o := tc.e.runAt(origin, request("GET", "/page", hdr, cookies...))
			if !tc.sync {
				wantSignedIn(t, o, "user_1")
				return
			}
			u := wantRedirect(t, o, handshake.ReasonPrimaryDomainCrossOriginSync)
			if u.Query().Get("__session") != tok {
				t.Error("the still-valid token is not on the handshake")
			}
		})
	}
	// A form submission (POST, Sec-Fetch-Dest: document) from another site
	// never syncs (Clerk's #8045): signed in.
	post := request("POST", "/page", map[string]string{"Sec-Fetch-Dest": "document", "Referer": "https://other.site/"}, kv{"__session", tok}, kv{"__client_uat", "1"})
	wantSignedIn(t, prod.runAt(appURL, post), "user_1")
	// Forward-auth never redirects: signed in.
	r := request("GET", "/page", map[string]string{"Sec-Fetch-Dest": "document", "Referer": "https://other.site/"}, kv{"__session", tok}, kv{"__client_uat", "1"})
	wantSignedIn(t, prod.hs.Authenticate(r, middleware.Policy{}, func() string { return appURL + "/page" }, false), "user_1")
}

// The sign-in redirect's return URL on a satellite asks for a sync.
func TestSignInReturnURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://s.example/":                       "https://s.example/?__clerk_synced=false",
		"https://s.example/p?a=%20b&flag":          "https://s.example/p?a=%20b&flag&__clerk_synced=false",
		"https://s.example/p?__clerk_synced=true":  "https://s.example/p?__clerk_synced=false",
		"https://s.example/p?a=1&__clerk_synced=x": "https://s.example/p?a=1&__clerk_synced=false",
		"https://s.example/p?":                     "https://s.example/p?__clerk_synced=false",
	} {
		if got := handshake.SignInReturnURL(in); got != want {
			t.Errorf("SignInReturnURL(%q) = %q, want %q", in, got, want)
		}
	}
}
