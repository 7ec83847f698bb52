package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
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

// browser is an HTTP client with a cookie jar that sends a navigation's
// headers on every hop, as a browser does.
type browser struct {
	c    *http.Client
	jar  *cookiejar.Jar
	hops []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{jar: jar}
	b.c = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		b.hops = append(b.hops, req.URL.String())
		if len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

func (b *browser) do(t *testing.T, method, u string, body io.Reader, dest string) (*http.Response, string) {
	t.Helper()
	b.hops = nil
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Dest", dest)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// TestHandshakeEndToEnd runs the whole production flow against the fake
// Clerk instance with a cookie-jar client: sign in on the fake's page, the
// session token expires, a navigation renews it through the handshake
// (token and nonce formats), a fetch does not, and a session revoked at
// Clerk ends at the sign-in page.
func TestHandshakeEndToEnd(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	// A production instance: pk_live_ and sk_live_ keys.
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), Now: clk.Now, SecretKey: "sk_live_handshake_e2e"})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"user": r.Header.Get("X-Sessiongate-User-Id"), "sid": r.Header.Get("X-Sessiongate-Session-Id"), "cookie": r.Header.Get("Cookie"),
		})
	})
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gateURL := "http://" + pl.Addr().String()
	cfg := config.Defaults()
	cfg.Listen = pl.Addr().String()
	cfg.AdminListen = ""
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Clerk.PublishableKey = inst.PublishableKey()
	cfg.Clerk.ProxyURL = inst.URL()
	cfg.Clerk.SecretKey = config.Secret(inst.SecretKey())
	cfg.Clerk.APIURL = inst.APIURL()
	cfg.SignInURL = inst.URL() + clerktest.SignInPath
	cfg.PublicOrigin = gateURL
	cfg.Upstream = up
	cfg.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	cfg.Normalize()
	a, err := app.New(&cfg, app.Options{Logger: zap.NewNop(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pl, nil) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	testwait.Eventually(t, "the keys to load", a.Ready)

	b := newBrowser(t)
	page := gateURL + "/page?x=1"
	type answer struct{ User, SID, Cookie string }
	decode := func(body string) answer {
		var v answer
		_ = json.Unmarshal([]byte(body), &v)
		return v
	}

	// Not signed in: the cookies say so, straight to the sign-in page.
	resp, body := b.do(t, "GET", page, nil, "document")
	if resp.Request.URL.Path != clerktest.SignInPath || resp.StatusCode != 200 {
		t.Fatalf("signed out: ended at %s (%d) %s", resp.Request.URL, resp.StatusCode, body)
	}
	if inst.Requests(clerktest.HandshakePath) != 0 {
		t.Error("a handshake for a browser with no Clerk cookies")
	}

	// Sign in on the fake's page; it sends the browser back.
	form := url.Values{"user_id": {"user_e2e"}, "redirect_url": {page}}
	resp, body = b.do(t, "POST", inst.URL()+clerktest.SignInPath, strings.NewReader(form.Encode()), "document")
	first := decode(body)
	if resp.StatusCode != 200 || first.User != "user_e2e" || first.SID == "" {
		t.Fatalf("after sign-in: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(first.Cookie, "__clerk") {
		t.Errorf("the upstream saw Clerk's cookies: %s", first.Cookie)
	}
	firstTok := b.cookie(gateURL, "__session")

	// Past the token's lifetime a navigation renews it through the
	// handshake (token format: a small payload).
	clk.Advance(2 * time.Minute)
	resp, body = b.do(t, "GET", page, nil, "document")
	if got := decode(body); resp.StatusCode != 200 || got.User != "user_e2e" || got.SID != first.SID {
		t.Fatalf("after expiry: %d %s (hops %q)", resp.StatusCode, body, b.hops)
	}
	if n := inst.Requests(clerktest.HandshakePath); n != 1 {
		t.Errorf("%d handshakes, want 1 (hops %q)", n, b.hops)
	}
	if tok := b.cookie(gateURL, "__session"); tok == "" || tok == firstTok {
		t.Error("no fresh __session cookie")
	}
	if b.cookie(gateURL, "__clerk_handshake") != "" {
		t.Error("the __clerk_handshake cookie was not deleted")
	}
	if resp.Request.URL.String() != page {
		t.Errorf("ended at %s", resp.Request.URL)
	}

	// A fetch with an expired token is not redirected.
	clk.Advance(2 * time.Minute)
	resp, body = b.do(t, "GET", gateURL+"/api", nil, "empty")
	if resp.StatusCode != 401 || resp.Header.Get("X-Clerk-Auth-Reason") != "token-expired" || len(b.hops) != 0 {
		t.Errorf("fetch: %d %s hops %q", resp.StatusCode, body, b.hops)
	}

	// The nonce format: the payload is exchanged at the Backend API.
	inst.SetHandshakeFormat(clerktest.HandshakeNonce)
	resp, body = b.do(t, "GET", page, nil, "document")
	if got := decode(body); resp.StatusCode != 200 || got.User != "user_e2e" {
		t.Fatalf("nonce: %d %s (hops %q)", resp.StatusCode, body, b.hops)
	}
	if n := inst.Requests(clerktest.HandshakePayloadPath); n != 1 {
		t.Errorf("%d nonce exchanges, want 1", n)
	}
	if b.cookie(gateURL, "__clerk_handshake_nonce") != "" {
		t.Error("the nonce cookie was not deleted")
	}
	// A nonce cookie on a request that is not a navigation costs no
	// Backend API call, and the counters say so.
	post, err := http.NewRequest("POST", page, nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Header.Set("Sec-Fetch-Dest", "document")
	post.AddCookie(&http.Cookie{Name: "__clerk_handshake_nonce", Value: "nonce_replayed"})
	for range 5 {
		resp, err := http.DefaultClient.Do(post)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := inst.Requests(clerktest.HandshakePayloadPath); n != 1 {
		t.Errorf("%d nonce exchanges after POSTs with a nonce cookie, want 1", n)
	}
	mrec := httptest.NewRecorder()
	mreq := httptest.NewRequest("GET", "http://127.0.0.1/metrics", nil)
	mreq.RemoteAddr = "127.0.0.1:40000"
	a.AdminHandler().ServeHTTP(mrec, mreq)
	for _, want := range []string{
		"sessiongate_handshake_nonce_exchanges_total 1",
		"sessiongate_handshake_nonce_ignored_total 5",
		"sessiongate_handshake_nonce_rate_limited_total 0",
	} {
		if !strings.Contains(mrec.Body.String(), want) {
			t.Errorf("metrics lack %q: %d %.200s", want, mrec.Code, mrec.Body.String())
		}
	}

	// Revoked at Clerk: once the token expires, the handshake says signed
	// out and the browser lands on the sign-in page.
	if err := inst.SetSessionStatus(first.SID, "revoked"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	resp, body = b.do(t, "GET", page, nil, "document")
	if resp.Request.URL.Path != clerktest.SignInPath || resp.StatusCode != 200 {
		t.Fatalf("revoked: ended at %s (%d) %s", resp.Request.URL, resp.StatusCode, body)
	}
	if got := resp.Request.URL.Query().Get("redirect_url"); got != page {
		t.Errorf("sign-in redirect_url %q", got)
	}
	if n := inst.Requests(clerktest.HandshakePath); n != 3 {
		t.Errorf("%d handshakes, want 3", n)
	}
}
