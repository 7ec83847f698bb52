package proxy_test

// The proxy's side of development instances and satellites: the 307 that
// applies a URL payload, the 500 for a bad one, and the satellite's
// sign-in redirect.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// newDevHSFixture is newHSFixture against the fake as a development
// instance.
func newDevHSFixture(t *testing.T, mutate func(*proxy.Options)) *hsFixture {
	t.Helper()
	now := time.Unix(1_760_000_000, 0)
	clk := func() time.Time { return now }
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk, Development: true})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...), Now: clk})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := handshake.New(handshake.Config{
		Gate: gate, FrontendAPI: strings.TrimPrefix(inst.URL(), "http://"), CookieSuffix: inst.CookieSuffix(), BaseURL: inst.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	up := recordingUpstream(t)
	opts := proxy.Options{Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: mustURL(t, up.URL), ForwardToken: true, Handshake: hs}}}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &hsFixture{inst: inst, proxy: p, upstream: up, hs: hs, now: now}
}

// A development payload in the URL: a 307 to the cleaned URL with the
// cookies, signed-in status, never the upstream; a bad one: 500 with the
// cure in the message, never the upstream either.
func TestDevelopmentHandshakeThroughProxy(t *testing.T) {
	f := newDevHSFixture(t, nil)
	tok := f.inst.MustMint(t, clerktest.WithUser("user_1"))
	good := handshakeToken(t, f.inst, []string{"__clerk_db_jwt=d; Path=/", "__client_uat=1; Path=/", "__session=" + tok + "; Path=/"})
	w := f.serve(navigation("http://app.example.com/p?x=1&__clerk_handshake=" + good + "&y=%20"))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "http://app.example.com/p?x=1&y=%20" {
		t.Fatalf("%d Location %q", w.Code, w.Header().Get("Location"))
	}
	if w.Header().Get("X-Clerk-Auth-Status") != "signed-in" || w.Header().Get("Cache-Control") != "no-store" || len(w.Header().Values("Set-Cookie")) != 3 {
		t.Errorf("headers %v", w.Header())
	}
	if w.Body.Len() != 0 {
		t.Errorf("body %q", w.Body)
	}

	w = f.serve(navigation("http://app.example.com/p?__clerk_handshake=garbage", [2]string{"__clerk_db_jwt", "d"}))
	if w.Code != http.StatusInternalServerError || w.Header().Get("X-Clerk-Auth-Reason") != string(proxy.ReasonHandshakeFailed) {
		t.Fatalf("bad payload: %d %v", w.Code, w.Header())
	}
	var body struct{ Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || !strings.Contains(body.Message, "clear this site's cookies") || strings.Contains(body.Message, "garbage") {
		t.Errorf("body %s", w.Body)
	}
}

// On a satellite the sign-in redirect's redirect_url asks for a sync
// (__clerk_synced=false); elsewhere it is the page as it was.
func TestSatelliteSignInRedirectAsksForSync(t *testing.T) {
	for _, sync := range []bool{true, false} {
		f := newHSFixture(t, nil, func(o *proxy.Options) {
			o.SignInURL = mustURL(t, "https://app.example.com/sign-in")
			o.SignInSync = sync
		})
		w := f.serve(navigation("http://satellite.example/p?a=1&__clerk_synced=true"))
		if w.Code != http.StatusTemporaryRedirect {
			t.Fatalf("%d", w.Code)
		}
		u, err := url.Parse(w.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		want := "http://satellite.example/p?a=1&__clerk_synced=true"
		if sync {
			want = "http://satellite.example/p?a=1&__clerk_synced=false"
		}
		if got := u.Query().Get("redirect_url"); got != want {
			t.Errorf("sync %v: redirect_url %q, want %q", sync, got, want)
		}
	}
}
