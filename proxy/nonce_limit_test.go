package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// A navigation whose nonce the rate limit kept from being exchanged is
// answered 503 session-status-unavailable with Retry-After on a required
// route (never the sign-in page: the user is signed in at Clerk), and
// served anonymously and not stored on an optional one. Its nonce cookie
// is not deleted either way, so that a reload exchanges it.
func TestRateLimitedNonceNavigationIsAnswered503AndKeepsItsCookie(t *testing.T) {
	t.Parallel()
	var clk func() time.Time
	_, gate, hs, clk := newHandshake(t, func(c *handshake.Config) {
		c.Exchanger = handshake.ExchangerFunc(func(context.Context, string) ([]string, error) {
			return nil, errors.New("invalid_nonce")
		})
		// One exchange, then practically none.
		c.NonceBurst, c.NonceRate = 1, 1e-9
		c.Now = func() time.Time { return clk() }
	})
	up := recordingUpstream(t)
	p, err := proxy.New(proxy.Options{
		Gate: gate,
		Routes: []proxy.Route{
			{Path: "/optional", Upstream: mustURL(t, up.URL), Auth: proxy.Optional, Handshake: hs},
			{Path: "/", Upstream: mustURL(t, up.URL), Handshake: hs},
		},
		SignInURL: mustURL(t, "https://accounts.example.com/sign-in"),
	})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(path, nonce, peer string) *http.Response {
		r := navigation("http://app.local"+path, [2]string{handshake.HandshakeNonceCookie, nonce})
		r.RemoteAddr = peer
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		return w.Result()
	}
	// The budget goes to another client's nonce.
	serve("/", "spent", "198.51.100.1:40000")

	res := serve("/", "kept", "198.51.100.2:40000")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
		res.Header.Get("X-Clerk-Auth-Reason") != string(middleware.ReasonSessionStatusUnavailable) {
		t.Errorf("required route: %d, Retry-After %q, reason %q; want 503 session-status-unavailable with Retry-After",
			res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("X-Clerk-Auth-Reason"))
	}
	if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("required route: Set-Cookie %q; the nonce must be kept for a retry", sc)
	}

	res = serve("/optional/page", "kept", "198.51.100.2:40000")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("optional route: %d, want the upstream's 200 (anonymous)", res.StatusCode)
	}
	for _, c := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, handshake.HandshakeNonceCookie+"=") {
			t.Errorf("optional route: the nonce is deleted (%q)", c)
		}
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("optional route: Cache-Control %q, want no-store", cc)
	}
}
