package clerktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/config"
)

// urlPayload returns the directives a development handshake put in the
// redirect URL (a verified JWT, or a nonce exchanged at the Backend API).
func urlPayload(t *testing.T, i *Instance, resp *http.Response) (*url.URL, []string) {
	t.Helper()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("handshake: %d", resp.StatusCode)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("a development handshake set cookies: %q", c)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	var directives []string
	if tok := u.Query().Get(HandshakeCookie); tok != "" {
		p := parseToken(t, tok)
		if err := p.verifyRS256(&i.SigningKey().Private.PublicKey); err != nil {
			t.Fatalf("signature: %v", err)
		}
		if err := json.Unmarshal(p.claims["handshake"], &directives); err != nil {
			t.Fatal(err)
		}
		return u, directives
	}
	nonce := u.Query().Get(HandshakeNonceCookie)
	if nonce == "" {
		t.Fatalf("no payload in %s", u)
	}
	r, body := mustGet(t, i.URL()+HandshakePayloadPath+"?nonce="+url.QueryEscape(nonce), "Bearer "+i.SecretKey())
	var p struct {
		Directives []string `json:"directives"`
	}
	if r.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("exchange: %d %s", r.StatusCode, body)
	}
	return u, p.Directives
}

func devBrowserOf(directives []string) string {
	for _, d := range directives {
		if v, ok := strings.CutPrefix(d, DevBrowserCookie+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v
		}
	}
	return ""
}

// A development instance: pk_test_ key, dev browsers, payloads in the URL,
// sign-in through the URL.
func TestDevelopmentInstance(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	i := start(t, Options{Development: true, Now: func() time.Time { return now }})
	pk, err := config.ParsePublishableKey(i.PublishableKey())
	if err != nil || pk.Live || pk.FrontendAPI != strings.TrimPrefix(i.URL(), "http://") || !i.Development() {
		t.Fatalf("publishable key %q: %+v %v", i.PublishableKey(), pk, err)
	}
	if !strings.HasPrefix(i.SecretKey(), "sk_test_") {
		t.Errorf("secret key %q", i.SecretKey()[:8])
	}

	// POST /v1/dev_browser.
	resp, body := postForm(t, i.URL()+DevBrowserPath, url.Values{})
	var db struct{ Object, ID, Token string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &db) != nil || db.Object != "dev_browser" || db.ID == "" || db.ID != db.Token || resp.Header.Get("Clerk-Db-Jwt") != db.ID {
		t.Fatalf("dev_browser: %d %s", resp.StatusCode, body)
	}

	// A handshake without a dev browser makes one: signed out, payload in
	// the URL, the redirect URL's own query kept.
	resp, _ = handshake(t, i, "", url.Values{})
	u, d := urlPayload(t, i, resp)
	fresh := devBrowserOf(d)
	if fresh == "" || u.Query().Get("x") != "1" || u.Path != "/page" {
		t.Fatalf("new dev browser: %s %q", u, d)
	}
	if !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, SessionCookie+"=;") }) {
		t.Errorf("not signed out: %q", d)
	}

	// Sign in with that dev browser: no application cookie, the dev browser
	// back in the URL, signed in.
	form := url.Values{"user_id": {"user_dev"}, "redirect_url": {"http://127.0.0.1:8080/p?a=b"}, DevBrowserCookie: {fresh}}
	resp, _ = postForm(t, i.URL()+SignInPath, form)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 0 {
		t.Fatalf("sign-in: %d %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	if back.Query().Get(DevBrowserCookie) != fresh || back.Query().Get("a") != "b" {
		t.Errorf("sign-in Location %s", back)
	}
	sid := i.DevBrowserSession(fresh)
	if sid == "" {
		t.Fatal("the dev browser is not signed in")
	}

	// Its handshake is signed in, suffixed cookies on request.
	resp, _ = handshake(t, i, "", url.Values{DevBrowserCookie: {fresh}, "suffixed_cookies": {"true"}})
	_, d = urlPayload(t, i, resp)
	var tok string
	for _, x := range d {
		if v, ok := strings.CutPrefix(x, SessionCookie+"="); ok {
			tok, _, _ = strings.Cut(v, ";")
		}
	}
	if tok == "" || parseToken(t, tok).str(t, parseToken(t, tok).claims, "sid") != sid {
		t.Fatalf("signed-in payload %q", d)
	}
	sfx := "_" + i.CookieSuffix()
	for _, name := range []string{DevBrowserCookie, DevBrowserCookie + sfx, ClientUATCookie + sfx, SessionCookie + sfx} {
		if !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, name+"=") }) {
			t.Errorf("no %s directive: %q", name, d)
		}
	}
	// The __client cookie means nothing to a development instance.
	resp, _ = handshake(t, i, "client_whatever", url.Values{})
	if _, d = urlPayload(t, i, resp); devBrowserOf(d) == fresh {
		t.Error("a handshake without the dev browser found it")
	}

	// The sign-in page sends a signed-in dev browser straight back.
	resp, _ = getURL(t, i.URL()+SignInPath+"?redirect_url="+url.QueryEscape("http://127.0.0.1:8080/x")+"&"+DevBrowserCookie+"="+fresh)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), fresh) {
		t.Errorf("signed-in sign-in page: %d %v", resp.StatusCode, resp.Header)
	}

	// Sign-out by the dev-browser cookie ends the session.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, i.SignOutURL("http://127.0.0.1:8080/"), nil)
	req.AddCookie(&http.Cookie{Name: DevBrowserCookie, Value: fresh})
	do(t, req)
	if s, _ := i.Session(sid); s.Status != statusEnded || i.DevBrowserSession(fresh) != "" {
		t.Errorf("after sign-out: %q %q", s.Status, i.DevBrowserSession(fresh))
	}

	// A production instance has no dev browsers.
	p := start(t, Options{})
	if resp, _ := postForm(t, p.URL()+DevBrowserPath, url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("production dev_browser: %d", resp.StatusCode)
	}
}

// A satellite's Frontend API syncs with the primary's once, then knows the
// browser by its own __client; the primary's sync endpoint serves
// satellites only.
func TestSatelliteFrontendAPI(t *testing.T) {
	i := start(t, Options{})
	sat := i.StartSatellite(t, SatelliteOptions{Addr: "127.0.0.1:0", AuthorizedParty: "http://127.0.0.2:9000"})
	client := signIn(t, i, "user_sat")[ClientCookie].Value
	redirect := "http://127.0.0.2:9000/page?__clerk_synced=false"
	hs := sat.URL() + HandshakePath + "?redirect_url=" + url.QueryEscape(redirect) + "&format=token"

	// No client on the satellite: to the primary's sync endpoint.
	resp, _ := getURL(t, hs)
	sync := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(sync, i.URL()+SatelliteSyncPath+"?") {
		t.Fatalf("satellite without a client: %d %q", resp.StatusCode, sync)
	}
	// The primary knows the browser by its own __client: back with a code.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, sync, nil)
	req.AddCookie(&http.Cookie{Name: ClientCookie, Value: client})
	resp, _ = do(t, req)
	withCode := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(withCode, sat.URL()+HandshakePath) || !strings.Contains(withCode, syncCodeParam) {
		t.Fatalf("primary sync: %d %q", resp.StatusCode, withCode)
	}
	// The satellite answers with the payload and a client of its own; the
	// tokens carry the satellite's azp; __clerk_synced becomes true.
	resp, _ = getURL(t, withCode)
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "http://127.0.0.2:9000/page?__clerk_synced=true" {
		t.Fatalf("satellite answer: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	own := cookieNamed(resp, ClientCookie)
	d, _ := payload(t, i, resp)
	var tok string
	for _, x := range d {
		if v, ok := strings.CutPrefix(x, SessionCookie+"="); ok {
			tok, _, _ = strings.Cut(v, ";")
		}
	}
	if own == nil || own.Value == client || tok == "" {
		t.Fatalf("satellite client %v, payload %q", own, d)
	}
	if azp := parseToken(t, tok).str(t, parseToken(t, tok).claims, "azp"); azp != "http://127.0.0.2:9000" {
		t.Errorf("azp %q", azp)
	}
	// A used code is refused; the satellite's own client is enough now.
	if resp, _ := getURL(t, withCode); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reused code: %d", resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, hs, nil)
	req.AddCookie(own)
	if resp, _ = do(t, req); cookieNamed(resp, HandshakeCookie) == nil {
		t.Errorf("satellite with its client: %d %v", resp.StatusCode, resp.Header)
	}
	if sat.Handshakes() != 4 {
		t.Errorf("%d satellite handshakes", sat.Handshakes())
	}
	// The sync endpoint is not an open redirect.
	for _, target := range []string{"http://127.0.0.1:1" + HandshakePath, sat.URL() + "/elsewhere", "https://attacker.example" + HandshakePath} {
		resp, _ := getURL(t, i.URL()+SatelliteSyncPath+"?redirect_url="+url.QueryEscape(target))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("sync to %s: %d %q", target, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Once the session is revoked, the satellite says signed out.
	if err := i.SetSessionStatus(parseToken(t, tok).str(t, parseToken(t, tok).claims, "sid"), "revoked"); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, hs, nil)
	req.AddCookie(own)
	resp, _ = do(t, req) // to the primary (no live client), which says signed out
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, resp.Header.Get("Location"), nil)
	req.AddCookie(&http.Cookie{Name: ClientCookie, Value: client})
	resp, _ = do(t, req)
	resp, _ = getURL(t, resp.Header.Get("Location"))
	if d, _ := payload(t, i, resp); !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, SessionCookie+"=;") }) {
		t.Errorf("revoked session still signed in on the satellite: %q", d)
	}
}

// A proxied Frontend API request needs the instance's secret key and an
// absolute proxy URL (the configured one once SetProxyURL is called).
func TestProxiedFrontendAPIRequests(t *testing.T) {
	i := start(t, Options{})
	target := i.URL() + HandshakePath + "?redirect_url=" + url.QueryEscape("http://127.0.0.1:8080/")
	send := func(hdr map[string][]string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	good := map[string][]string{ProxyURLHeader: {"https://app.example.com/__clerk"}, ProxySecretHeader: {i.SecretKey()}, "X-Forwarded-For": {"198.51.100.1"}}
	for _, tc := range []struct {
		name string
		hdr  map[string][]string
		want int
	}{
		{"not proxied", nil, http.StatusTemporaryRedirect},
		{"proxied", good, http.StatusTemporaryRedirect},
		{"no secret", map[string][]string{ProxyURLHeader: {"https://app.example.com/__clerk"}}, http.StatusUnauthorized},
		{"wrong secret", map[string][]string{ProxyURLHeader: {"https://app.example.com/__clerk"}, ProxySecretHeader: {"sk_test_nope"}}, http.StatusUnauthorized},
		{"two secrets", map[string][]string{ProxyURLHeader: {"https://app.example.com/__clerk"}, ProxySecretHeader: {i.SecretKey(), "x"}}, http.StatusUnauthorized},
		{"no proxy URL", map[string][]string{ProxySecretHeader: {i.SecretKey()}}, http.StatusBadRequest},
		{"relative proxy URL", map[string][]string{ProxyURLHeader: {"/__clerk"}, ProxySecretHeader: {i.SecretKey()}}, http.StatusBadRequest},
	} {
		if got := send(tc.hdr); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	pr := i.ProxiedRequests()
	if len(pr) != 1 || pr[0].ProxyURL != "https://app.example.com/__clerk" || pr[0].ForwardedFor != "198.51.100.1" || pr[0].Header.Get(ProxySecretHeader) != "" {
		t.Errorf("recorded %+v", pr)
	}
	i.SetProxyURL("https://app.example.com/__clerk")
	if got := send(good); got != http.StatusTemporaryRedirect {
		t.Errorf("configured proxy URL: %d", got)
	}
	other := map[string][]string{ProxyURLHeader: {"https://evil.example/__clerk"}, ProxySecretHeader: {i.SecretKey()}}
	if got := send(other); got != http.StatusBadRequest {
		t.Errorf("another proxy URL: %d", got)
	}
}

// POST /v1/sessions/{id}/refresh: the instance's own expired token of the
// session and its client's refresh token buy a new token; anything else is
// a 401 (Clerk's signal to fall back to the handshake).
func TestSessionRefresh(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	clk := func() time.Time { return now }
	i := start(t, Options{Now: clk})
	i.SetRefreshTokens(true)
	client := signIn(t, i, "user_rf")[ClientCookie].Value
	resp, _ := handshake(t, i, client, url.Values{"suffixed_cookies": {"true"}})
	d, _ := payload(t, i, resp)
	var rt, tok string
	for _, x := range d {
		v, _, _ := strings.Cut(x, ";")
		if r, ok := strings.CutPrefix(v, RefreshCookie+"_"+i.CookieSuffix()+"="); ok {
			rt = r
		}
		if s, ok := strings.CutPrefix(v, SessionCookie+"="); ok {
			tok = s
		}
	}
	if rt == "" || tok == "" {
		t.Fatalf("handshake payload %q", d)
	}
	sid := parseToken(t, tok).str(t, parseToken(t, tok).claims, "sid")
	if i.RefreshToken(sid) != rt {
		t.Error("RefreshToken")
	}
	post := func(sid, expired, refresh, query string) (int, string) {
		body, _ := json.Marshal(map[string]any{"format": "cookie", "expired_token": expired, "refresh_token": refresh, "request_origin": "http://127.0.0.1:8080"})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, i.URL()+SessionsPath+"/"+sid+"/refresh"+query, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+i.SecretKey())
		req.Header.Set("Content-Type", "application/json")
		resp, b := do(t, req)
		return resp.StatusCode, b
	}
	forged := i.MustMint(t, WithUser("user_rf"), WithSession(sid), WithSigningKey(sharedKey(t, 1)))
	for _, tc := range []struct {
		name, sid, expired, refresh string
		want                        int
	}{
		{"a forged expired token", sid, forged, rt, http.StatusUnauthorized},
		{"another refresh token", sid, tok, "rt_nope", http.StatusUnauthorized},
		{"another session", "sess_nope", tok, rt, http.StatusNotFound},
		{"no refresh token", sid, tok, "", http.StatusUnprocessableEntity},
	} {
		if code, body := post(tc.sid, tc.expired, tc.refresh, ""); code != tc.want {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	now = now.Add(10 * time.Minute) // the token has long expired: still refreshable
	code, body := post(sid, tok, rt, "?suffixed_cookies=true")
	var out struct {
		Object  string
		Cookies []string
	}
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || out.Object != "cookies" || len(out.Cookies) != 2 ||
		!strings.HasPrefix(out.Cookies[1], SessionCookie+"_"+i.CookieSuffix()+"=") {
		t.Fatalf("refresh: %d %s", code, body)
	}
	if err := i.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(sid, tok, rt, ""); code != http.StatusUnauthorized {
		t.Errorf("revoked session refreshed: %d", code)
	}
}
