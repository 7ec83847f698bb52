package proxy_test

// The Frontend API proxy (proxy/fapi.go): the headers Clerk requires, the
// secret key kept from the browser and the logs, and the confinement to
// the proxy path.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

const fapiSecret = "sk_test_fapiProxySecretValue0123456789abcdefghij"

// fakeFAPI records what reaches the Frontend API and answers with answer.
type fakeFAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []*http.Request
	answer func(w http.ResponseWriter, r *http.Request)
}

func newFakeFAPI(t *testing.T) *fakeFAPI {
	t.Helper()
	f := &fakeFAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Clone(r.Context()))
		answer := f.answer
		f.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"client"}`))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFAPI) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.seen...)
}

func (f *fakeFAPI) setAnswer(a func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

type fapiFixture struct {
	fapi     *fakeFAPI
	proxy    *proxy.Proxy
	upstream *httptest.Server
	logs     *observer.ObservedLogs
}

// newFAPIFixture is a proxy serving /__clerk in front of a fake Frontend
// API, with a required route "/" to the echo upstream.
func newFAPIFixture(t *testing.T, mutate func(*proxy.Options)) *fapiFixture {
	t.Helper()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	fapi := newFakeFAPI(t)
	up := echoUpstream(t)
	core, logs := observer.New(zap.DebugLevel)
	opts := proxy.Options{
		Gate:         gate,
		Routes:       []proxy.Route{{Path: "/", Upstream: mustURL(t, up.URL), ForwardToken: true}},
		PublicOrigin: mustURL(t, "https://app.example.com"),
		Logger:       zap.New(core),
		AccessLog:    true,
		FrontendAPI:  &proxy.FrontendAPI{Path: "/__clerk", SecretKey: fapiSecret, Target: mustURL(t, fapi.srv.URL)},
	}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fapiFixture{fapi: fapi, proxy: p, upstream: up, logs: logs}
}

func (f *fapiFixture) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.proxy.ServeHTTP(w, r)
	return w
}

// The request Clerk's Frontend API receives: its path below the prefix, the
// query as sent, Clerk-Proxy-Url, Clerk-Secret-Key, the client's address,
// Clerk's and Cloudflare's cookies only, and never an identity header or a
// client's own Clerk-Secret-Key / Clerk-Proxy-Url.
func TestFrontendAPIProxyHeaders(t *testing.T) {
	f := newFAPIFixture(t, nil)
	r := httptest.NewRequest("POST", "http://app.example.com/__clerk/v1/client/sign_ins?_clerk_js_version=5.0.0&redirect_url=https%3A%2F%2Fa%2Fb", strings.NewReader("identifier=a%40b.c"))
	r.RemoteAddr = "198.51.100.7:4242"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Cookie", "__client=c1; app_session=private; __session=tok; __client_uat_abc=1; __cf_bm=cf; _cfuvid=u; __clerk_db_jwt=d; other=1")
	r.Header.Set("X-Sessiongate-User-Id", "user_forged")
	r.Header.Set("X_Sessiongate_Session_Id", "sess_forged")
	r.Header.Set("Clerk-Secret-Key", "sk_live_the_clients_own")
	r.Header.Add("Clerk-Secret-Key", "second")
	r.Header.Set("Clerk-Proxy-Url", "https://evil.example/__clerk")
	r.Header.Set("X-Forwarded-For", "203.0.113.66")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	r.Header.Set("Origin", "https://app.example.com")
	w := f.serve(r)
	if w.Code != 200 || w.Body.String() != `{"object":"client"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	reqs := f.fapi.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests reached the Frontend API", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.URL.Path != "/v1/client/sign_ins" || got.URL.RawQuery != "_clerk_js_version=5.0.0&redirect_url=https%3A%2F%2Fa%2Fb" {
		t.Errorf("request %s %s?%s", got.Method, got.URL.Path, got.URL.RawQuery)
	}
	h := got.Header
	for name, want := range map[string]string{
		"Clerk-Proxy-Url":   "https://app.example.com/__clerk",
		"X-Forwarded-For":   "198.51.100.7",
		"X-Forwarded-Host":  "app.example.com",
		"X-Forwarded-Proto": "https",
		"Accept-Encoding":   "identity",
		"Origin":            "https://app.example.com",
	} {
		if v := h.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if v := h.Values("Clerk-Secret-Key"); len(v) != 1 || v[0] != fapiSecret {
		t.Errorf("Clerk-Secret-Key: %d values, want exactly sessiongate's", len(v))
	}
	if got.Host != strings.TrimPrefix(f.fapi.srv.URL, "http://") {
		t.Errorf("Host %q", got.Host)
	}
	for name := range h {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "x-sessiongate-") {
			t.Errorf("identity header %s reached the Frontend API", name)
		}
	}
	var names []string
	for _, c := range got.Cookies() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "__client,__session,__client_uat_abc,__cf_bm,_cfuvid,__clerk_db_jwt" {
		t.Errorf("cookies sent to Clerk: %v", names)
	}
	// No authentication on the proxy path: the Frontend API is public.
	if w.Header().Get("X-Clerk-Auth-Status") != "" {
		t.Errorf("the proxy path was authenticated: %v", w.Header())
	}
}

// X-Forwarded-For is the client by trusted_proxies: a trusted front
// proxy's entry is believed, a client's own never.
func TestFrontendAPIProxyClientAddress(t *testing.T) {
	f := newFAPIFixture(t, func(o *proxy.Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	for _, tc := range []struct{ peer, xff, want string }{
		{"10.0.0.2:1", "198.51.100.9, 10.0.0.3", "198.51.100.9"},
		{"10.0.0.2:1", "", "10.0.0.2"},
		{"192.0.2.5:1", "198.51.100.9", "192.0.2.5"},
	} {
		r := httptest.NewRequest("GET", "http://app.example.com/__clerk/v1/environment", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		f.serve(r)
		reqs := f.fapi.requests()
		if got := reqs[len(reqs)-1].Header.Get("X-Forwarded-For"); got != tc.want {
			t.Errorf("peer %s XFF %q: sent %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// Clerk-Proxy-Url without PublicOrigin is the request's own origin (a
// trusted proxy's X-Forwarded-Host/Proto believed); an absolute ProxyURL is
// sent as configured. Redirects to the Frontend API itself come back
// through the proxy.
func TestFrontendAPIProxyURLAndRedirects(t *testing.T) {
	f := newFAPIFixture(t, func(o *proxy.Options) { o.PublicOrigin = nil })
	target := f.fapi.srv.URL
	f.fapi.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "__client=new; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "__client_uat=1; Path=/")
		switch r.URL.Path {
		case "/v1/self":
			w.Header().Set("Location", target+"/v1/client/handshake?x=1#frag")
		default:
			w.Header().Set("Location", "https://app.example.com/page")
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	r := httptest.NewRequest("GET", "http://app.local:8080/__clerk/v1/self", nil)
	w := f.serve(r)
	if got := w.Header().Get("Location"); got != "http://app.local:8080/__clerk/v1/client/handshake?x=1#frag" {
		t.Errorf("Location %q", got)
	}
	if c := w.Header().Values("Set-Cookie"); len(c) != 2 {
		t.Errorf("Set-Cookie %q", c)
	}
	if got := f.fapi.requests()[0].Header.Get("Clerk-Proxy-Url"); got != "http://app.local:8080/__clerk" {
		t.Errorf("Clerk-Proxy-Url %q", got)
	}
	w = f.serve(httptest.NewRequest("GET", "http://app.local:8080/__clerk/v1/other", nil))
	if got := w.Header().Get("Location"); got != "https://app.example.com/page" {
		t.Errorf("a redirect elsewhere was rewritten: %q", got)
	}

	g := newFAPIFixture(t, func(o *proxy.Options) { o.FrontendAPI.ProxyURL = "https://app.example.com/__clerk" })
	g.serve(httptest.NewRequest("GET", "http://internal:8080/__clerk/v1/x", nil))
	if got := g.fapi.requests()[0].Header.Get("Clerk-Proxy-Url"); got != "https://app.example.com/__clerk" {
		t.Errorf("configured Clerk-Proxy-Url %q", got)
	}
}

// The secret key never reaches the browser, whatever the Frontend API (or
// a mistaken frontend_api_url) echoes, and never a log.
func TestFrontendAPIProxySecretNeverEchoed(t *testing.T) {
	f := newFAPIFixture(t, nil)
	half := len(fapiSecret) / 2
	f.fapi.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Clerk-Secret-Key", r.Header.Get("Clerk-Secret-Key"))
		h.Set("X-Echo", "key="+r.Header.Get("Clerk-Secret-Key"))
		h.Set("X-"+r.Header.Get("Clerk-Secret-Key"), "1")
		h.Set("X-Kept", "yes")
		w.WriteHeader(200)
		// The secret split across writes (and flushes), and whole.
		_, _ = w.Write([]byte("start " + fapiSecret[:half]))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte(fapiSecret[half:] + " middle " + fapiSecret + " end"))
	})
	w := f.serve(httptest.NewRequest("GET", "http://app.example.com/__clerk/v1/echo", nil))
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	var all bytes.Buffer
	_ = w.Header().Write(&all)
	all.Write(w.Body.Bytes())
	if strings.Contains(all.String(), fapiSecret) {
		t.Fatalf("the secret reached the browser:\n%s", all.String())
	}
	if w.Body.String() != "start [redacted] middle [redacted] end" {
		t.Errorf("body %q", w.Body)
	}
	if w.Header().Get("X-Kept") != "yes" {
		t.Error("an innocent header was dropped")
	}

	// A compressed body cannot be checked: refused.
	f.fapi.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		_, _ = gz.Write([]byte(fapiSecret))
		_ = gz.Close()
	})
	w = f.serve(httptest.NewRequest("GET", "http://app.example.com/__clerk/v1/gz", nil))
	if w.Code != http.StatusBadGateway || w.Header().Get("X-Clerk-Auth-Reason") != string(proxy.ReasonFrontendAPIUnavailable) {
		t.Errorf("compressed answer: %d %v", w.Code, w.Header())
	}

	// The Frontend API unreachable: 502, and no secret in the log.
	f.fapi.srv.Close()
	w = f.serve(httptest.NewRequest("GET", "http://app.example.com/__clerk/v1/down", nil))
	if w.Code != http.StatusBadGateway {
		t.Errorf("down: %d", w.Code)
	}
	for _, e := range f.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		if strings.Contains(line, fapiSecret) || strings.Contains(line, fapiSecret[:half]) {
			t.Errorf("the secret in a log line: %s", line)
		}
	}
	if f.logs.FilterMessageSnippet("echoed the secret key").Len() != 1 {
		t.Errorf("the echo is not logged once: %d", f.logs.FilterMessageSnippet("echoed the secret key").Len())
	}
}

// Only the proxy path is forwarded, and only a path that means the same to
// every server: never a prefix-only match, dot or empty segments, encoded
// slashes or backslashes, or ';'.
func TestFrontendAPIProxyPathConfinement(t *testing.T) {
	f := newFAPIFixture(t, nil)
	for _, tc := range []struct {
		target string
		// fapiPath: forwarded to this path; else status (and not forwarded).
		fapiPath string
		status   int
	}{
		{target: "/__clerk", fapiPath: "/"},
		{target: "/__clerk/", fapiPath: "/"},
		{target: "/__clerk/v1/client", fapiPath: "/v1/client"},
		{target: "/__clerk/npm/@clerk/clerk-js@5/dist/clerk.browser.js", fapiPath: "/npm/@clerk/clerk-js@5/dist/clerk.browser.js"},
		{target: "/__clerk/v1/client?next=%2F..%2Fadmin", fapiPath: "/v1/client"},
		{target: "/__clerkx/v1/client", status: http.StatusUnauthorized},
		{target: "/__CLERK/v1/client", status: http.StatusUnauthorized},
		{target: "/x/__clerk/v1", status: http.StatusUnauthorized},
		{target: "/__clerk/../admin", status: http.StatusBadRequest},
		{target: "/__clerk/v1/../../admin", status: http.StatusBadRequest},
		{target: "/__clerk/%2e%2e/admin", status: http.StatusBadRequest},
		{target: "/__clerk/./v1", status: http.StatusBadRequest},
		{target: "/__clerk//v1", status: http.StatusBadRequest},
		{target: "/__clerk/v1%2F..%2F..%2Fadmin", status: http.StatusBadRequest},
		{target: "/__clerk/v1%2fclient", status: http.StatusBadRequest},
		{target: "/__clerk/v1%5Cclient", status: http.StatusBadRequest},
		{target: "/__clerk/v1;jsessionid=x", status: http.StatusBadRequest},
		{target: "/x/../__clerk/v1", status: http.StatusBadRequest},
	} {
		t.Run(tc.target, func(t *testing.T) {
			before := len(f.fapi.requests())
			w := f.serve(httptest.NewRequest("GET", "http://app.example.com"+tc.target, nil))
			reqs := f.fapi.requests()
			if tc.fapiPath != "" {
				if w.Code != 200 || len(reqs) != before+1 || reqs[len(reqs)-1].URL.Path != tc.fapiPath {
					t.Fatalf("%d, %d requests; want forwarded to %s", w.Code, len(reqs)-before, tc.fapiPath)
				}
				return
			}
			if len(reqs) != before {
				t.Fatalf("forwarded to the Frontend API as %s", reqs[len(reqs)-1].URL)
			}
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
		})
	}

	// A target with a base path keeps it.
	g := newFAPIFixture(t, func(o *proxy.Options) { o.FrontendAPI.Target = mustURL(t, o.FrontendAPI.Target.String()+"/base/") })
	g.serve(httptest.NewRequest("GET", "http://app.example.com/__clerk/v1/client", nil))
	if got := g.fapi.requests()[0].URL.Path; got != "/base/v1/client" {
		t.Errorf("path %q", got)
	}
}

// New refuses a Frontend API proxy it could not confine or authenticate.
func TestFrontendAPIProxyOptions(t *testing.T) {
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	up := mustURL(t, "http://127.0.0.1:1")
	for name, fa := range map[string]proxy.FrontendAPI{
		"root path":          {Path: "/", SecretKey: fapiSecret},
		"relative path":      {Path: "__clerk", SecretKey: fapiSecret},
		"dot segments":       {Path: "/a/../__clerk", SecretKey: fapiSecret},
		"reserved":           {Path: "/_sessiongate/clerk", SecretKey: fapiSecret},
		"no secret":          {Path: "/__clerk"},
		"target with query":  {Path: "/__clerk", SecretKey: fapiSecret, Target: mustURL(t, "https://f.example/?x=1")},
		"target ftp":         {Path: "/__clerk", SecretKey: fapiSecret, Target: mustURL(t, "ftp://f.example/")},
		"proxy URL mismatch": {Path: "/__clerk", SecretKey: fapiSecret, ProxyURL: "https://app.example.com/other"},
	} {
		fa := fa
		if _, err := proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: up}}, FrontendAPI: &fa}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// End to end against the fake Clerk, which checks a proxied request as the
// real Frontend API does: the secret key and the proxy URL.
func TestFrontendAPIProxyAgainstFakeClerk(t *testing.T) {
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t), SecretKey: fapiSecret})
	inst.SetProxyURL("https://app.example.com/__clerk")
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	build := func(secret string) *proxy.Proxy {
		p, err := proxy.New(proxy.Options{
			Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: mustURL(t, "http://127.0.0.1:1")}},
			PublicOrigin: mustURL(t, "https://app.example.com"),
			FrontendAPI:  &proxy.FrontendAPI{Path: "/__clerk", SecretKey: secret, Target: mustURL(t, inst.URL())},
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hs := "/__clerk/v1/client/handshake?redirect_url=" + url.QueryEscape("http://127.0.0.1:8080/page") + "&format=token"
	r := httptest.NewRequest("GET", "http://app.example.com"+hs, nil)
	r.RemoteAddr = "198.51.100.7:1"
	w := httptest.NewRecorder()
	build(fapiSecret).ServeHTTP(w, r)
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "http://127.0.0.1:8080/page" {
		t.Fatalf("handshake through the proxy: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if !strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), "\n"), "__clerk_handshake=") {
		t.Errorf("no payload cookie: %v", w.Header())
	}
	pr := inst.ProxiedRequests()
	if len(pr) != 1 || pr[0].ProxyURL != "https://app.example.com/__clerk" || pr[0].ForwardedFor != "198.51.100.7" || pr[0].Path != "/v1/client/handshake" {
		t.Errorf("proxied requests %+v", pr)
	}
	// A wrong secret is refused by the Frontend API, and the refusal does
	// not carry either secret.
	w = httptest.NewRecorder()
	build("sk_test_wrongwrongwrongwrongwrongwrongwrongwrongwrong").ServeHTTP(w, httptest.NewRequest("GET", "http://app.example.com"+hs, nil))
	if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "sk_test_") {
		t.Errorf("wrong secret: %d %s", w.Code, w.Body)
	}
	if len(inst.ProxiedRequests()) != 1 {
		t.Error("a request with a wrong secret was accepted")
	}
}
