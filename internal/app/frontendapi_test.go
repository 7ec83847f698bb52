package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// newClerkApp builds an App in front of a recording upstream, against the
// fake, with the fake's keys loaded.
func newClerkApp(t *testing.T, inst *clerktest.Instance, clk *clock, mutate func(*config.Config)) *app.App {
	t.Helper()
	cfg := config.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Clerk.PublishableKey = inst.PublishableKey()
	cfg.Clerk.SecretKey = config.Secret(inst.SecretKey())
	cfg.Clerk.APIURL = inst.APIURL()
	cfg.Upstream = upstream(t, nil)
	mutate(&cfg)
	cfg.Normalize()
	a, err := app.New(&cfg, app.Options{Logger: zap.NewNop(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	testwait.Eventually(t, "the keys to load", a.Ready)
	return a
}

func serveApp(a *app.App, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

func nav(target string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.Header.Set("Accept", "text/html")
	return r
}

// clerk.proxy_url as a path: sessiongate serves it as the Frontend API
// proxy (to frontend_api_url, the fake here, which checks the proxy's
// headers) before any route, and the handshake goes there on the page's own
// origin. A proxy_url on another origin is only where the handshake goes.
func TestFrontendAPIProxyServedFromConfig(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, SecretKey: "sk_live_fapi_app_test"})
	a := newClerkApp(t, inst, clk, func(c *config.Config) {
		c.Clerk.ProxyURL = "/__clerk"
		c.Clerk.FrontendAPIURL = inst.URL()
	})
	r := httptest.NewRequest("GET", "http://app.example.test/__clerk/v1/client/handshake?format=token&redirect_url="+url.QueryEscape("http://127.0.0.1:8080/x"), nil)
	w := serveApp(a, r)
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "http://127.0.0.1:8080/x" {
		t.Fatalf("through the proxy: %d %v %s", w.Code, w.Header(), w.Body)
	}
	pr := inst.ProxiedRequests()
	if len(pr) != 1 || pr[0].ProxyURL != "http://app.example.test/__clerk" {
		t.Fatalf("proxied %+v", pr)
	}
	// The handshake of a route goes to the proxy on the page's origin.
	r = nav("http://app.example.test/page")
	r.AddCookie(&http.Cookie{Name: "__client_uat", Value: "1"})
	w = serveApp(a, r)
	if w.Code != http.StatusTemporaryRedirect || !strings.HasPrefix(w.Header().Get("Location"), "http://app.example.test/__clerk/v1/client/handshake?") {
		t.Errorf("handshake: %d %q", w.Code, w.Header().Get("Location"))
	}
	// Everything else is routed as before.
	if w := serveApp(a, httptest.NewRequest("GET", "http://app.example.test/__clerkx/v1", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("/__clerkx: %d", w.Code)
	}

	// proxy_url on another origin than public_origin: not served.
	b := newClerkApp(t, inst, clk, func(c *config.Config) {
		c.Clerk.ProxyURL = "https://clerk-proxy.example.test/__clerk"
		c.PublicOrigin = "https://app.example.test"
	})
	if w := serveApp(b, httptest.NewRequest("GET", "http://app.example.test/__clerk/v1/client", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("proxy_url elsewhere was served: %d", w.Code)
	}
	if len(inst.ProxiedRequests()) != 1 {
		t.Error("an unserved proxy_url reached the Frontend API")
	}
}

// A production satellite: the sync goes to clerk.<domain>, the sign-in
// redirect asks for a sync, and the issuer is the satellite's.
func TestSatelliteFromConfig(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, SecretKey: "sk_live_satellite_app_test"})
	a := newClerkApp(t, inst, clk, func(c *config.Config) {
		c.Clerk.Issuer = ""
		c.Clerk.IsSatellite = true
		c.Clerk.Domain = "satellite.example.test"
		c.SignInURL = "https://app.example.test/sign-in"
		c.PublicOrigin = "https://satellite.example.test"
	})
	w := serveApp(a, nav("http://satellite.example.test/p?__clerk_synced=false"))
	if w.Code != http.StatusTemporaryRedirect || !strings.HasPrefix(w.Header().Get("Location"), "https://clerk.satellite.example.test/v1/client/handshake?") ||
		w.Header().Get("X-Clerk-Auth-Reason") != "satellite-needs-syncing" {
		t.Errorf("sync: %d %v", w.Code, w.Header())
	}
	w = serveApp(a, nav("http://satellite.example.test/p"))
	u, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusTemporaryRedirect || u.Host != "app.example.test" || u.Query().Get("redirect_url") != "https://satellite.example.test/p?__clerk_synced=false" {
		t.Errorf("sign-in redirect: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// A development instance: the handshake is on by default, and a returning
// payload whose token is ten minutes stale is accepted through the
// clock-skew Gate (GateAt wired), with the 307 to the cleaned URL.
func TestDevelopmentInstanceFromConfig(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, Development: true})
	a := newClerkApp(t, inst, clk, func(c *config.Config) { c.Clerk.ProxyURL = inst.URL() })
	w := serveApp(a, nav("http://app.example.test/p"))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("X-Clerk-Auth-Reason") != "dev-browser-missing" {
		t.Fatalf("first navigation: %d %v", w.Code, w.Header())
	}
	tok := inst.MustMint(t, clerktest.WithUser("user_dev"), clerktest.WithIssuedAt(clk.Now().Add(-10*time.Minute)))
	k := inst.SigningKey()
	h, _ := json.Marshal(map[string]any{"alg": k.Algorithm, "kid": k.ID, "typ": "JWT"})
	p, _ := json.Marshal(map[string]any{"handshake": []string{"__client_uat=1; Path=/", "__session=" + tok + "; Path=/"}})
	hs := clerktest.Sign(h, p, k, k.Algorithm)
	w = serveApp(a, nav("http://app.example.test/p?a=1&__clerk_handshake="+hs))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "http://app.example.test/p?a=1" || w.Header().Get("X-Clerk-Auth-Status") != "signed-in" {
		t.Errorf("resolution: %d %v", w.Code, w.Header())
	}
}

// The __refresh flow end to end against the fake: once a handshake has set
// the refresh cookie, an expired session is renewed by the Backend API
// without a redirect, also on a fetch; revoked, the refresh is refused and
// the fetch ends signed out.
func TestRefreshFromConfig(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, SecretKey: "sk_live_refresh_app_test"})
	inst.SetRefreshTokens(true)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gateURL := "http://" + pl.Addr().String()
	a := newClerkApp(t, inst, clk, func(c *config.Config) {
		c.Clerk.ProxyURL = inst.URL()
		c.SignInURL = inst.URL() + clerktest.SignInPath
		c.PublicOrigin = gateURL
		c.Clerk.CrossOriginSync = new(bool)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pl, nil) }()
	t.Cleanup(func() { cancel(); <-done })

	b := newBrowser(t)
	page := gateURL + "/page"
	form := url.Values{"user_id": {"user_r"}, "redirect_url": {page}}
	if resp, body := b.do(t, "POST", inst.URL()+clerktest.SignInPath, strings.NewReader(form.Encode()), "document"); resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	// Expired: the navigation's handshake brings the refresh cookie.
	clk.Advance(2 * time.Minute)
	if resp, body := b.do(t, "GET", page, nil, "document"); resp.StatusCode != 200 || !strings.Contains(body, "user_r") {
		t.Fatalf("handshake: %d %s", resp.StatusCode, body)
	}
	if b.cookie(gateURL, "__refresh_"+inst.CookieSuffix()) == "" {
		t.Fatal("no refresh cookie after the handshake")
	}
	handshakes := inst.Requests(clerktest.HandshakePath)
	// Expired again: a fetch is refreshed, without a redirect.
	clk.Advance(2 * time.Minute)
	old := b.cookie(gateURL, "__session")
	resp, body := b.do(t, "GET", page, nil, "empty")
	if resp.StatusCode != 200 || !strings.Contains(body, "user_r") || len(b.hops) != 0 {
		t.Fatalf("refresh: %d %s hops %v", resp.StatusCode, body, b.hops)
	}
	if b.cookie(gateURL, "__session") == old || inst.Requests(clerktest.HandshakePath) != handshakes {
		t.Error("not refreshed through the Backend API")
	}
	// Revoked: Clerk refuses, and a fetch cannot take the handshake.
	var claims struct{ Sid string }
	seg := strings.Split(b.cookie(gateURL, "__session"), ".")
	if raw, err := base64.RawURLEncoding.DecodeString(seg[1]); err != nil || json.Unmarshal(raw, &claims) != nil {
		t.Fatal("the session cookie is not a JWT")
	}
	if err := inst.SetSessionStatus(claims.Sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	resp, _ = b.do(t, "GET", page, nil, "empty")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Clerk-Auth-Reason") != "token-expired" {
		t.Errorf("revoked fetch: %d %v", resp.StatusCode, resp.Header)
	}
}
