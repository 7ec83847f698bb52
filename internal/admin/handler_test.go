package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/internal/admin"
)

// sessionLog is the session API's side of an admin handler under test: it
// records the sessions denied locally and those revoked at Clerk.
type sessionLog struct {
	mu              sync.Mutex
	denied, revoked []string
}

func (l *sessionLog) Revoke(_ context.Context, s string) (*clerkapi.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked = append(l.revoked, s)
	return &clerkapi.Session{ID: s, Status: "revoked"}, nil
}

func (l *sessionLog) deny(_ context.Context, s string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.denied = append(l.denied, s)
	return until
}

func (l *sessionLog) counts() (denied, revoked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.denied), len(l.revoked)
}

// metricsStub stands in for the Prometheus handler.
var metricsStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = io.WriteString(w, "# sessiongate metrics\n")
})

// adminServer serves NewHandler(c) on a loopback listener, with the stub
// metrics handler and a session API that records into the returned log
// unless c has its own.
func adminServer(t *testing.T, c admin.HandlerConfig) (*httptest.Server, *sessionLog) {
	t.Helper()
	log := &sessionLog{}
	if c.Metrics == nil {
		c.Metrics = metricsStub
	}
	if c.Sessions == nil {
		c.Sessions = &admin.Server{DenyLocally: log.deny, Clerk: log}
	}
	ts := httptest.NewServer(admin.NewHandler(c))
	t.Cleanup(ts.Close)
	return ts, log
}

// adminRequest sends method path to the admin listener with a Host and
// headers of the test's choosing and returns the status and JSON body.
func adminRequest(t *testing.T, adminURL, method, path, host string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(resp.Body).Decode(&body)
	}
	return resp.StatusCode, body
}

// TestAdminWithoutTokenRefusesBrowsers: without admin_token the admin
// listener is loopback-only, and the only callers it expects are local
// tools (curl, the CLI, probes). A browser is its way in from elsewhere: a
// cross-site form POST (CSRF) or a page whose name was rebound to
// 127.0.0.1 (DNS rebinding). So any request a browser marks as coming
// from a page (Origin, or a Sec-Fetch-Site other than "none"), or whose
// Host is not a loopback name, is refused with 403 and nothing happens.
func TestAdminWithoutTokenRefusesBrowsers(t *testing.T) {
	t.Parallel()
	ts, log := adminServer(t, admin.HandlerConfig{})
	port := ts.URL[strings.LastIndex(ts.URL, ":")+1:]
	revoke := "/sessions/" + sid + "/revoke"
	refused := []struct {
		name, method, path, host string
		header                   map[string]string
	}{
		{"cross-site form POST", "POST", revoke, "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"Origin only", "POST", revoke, "", map[string]string{"Origin": "https://evil.example"}},
		{"opaque Origin", "POST", revoke, "", map[string]string{"Origin": "null"}},
		{"loopback Origin", "POST", revoke, "", map[string]string{"Origin": "http://127.0.0.1:" + port}},
		{"Sec-Fetch-Site cross-site", "POST", revoke, "", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"Sec-Fetch-Site same-site", "POST", revoke, "", map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"Sec-Fetch-Site same-origin", "POST", revoke, "", map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{"rebound Host", "POST", revoke, "evil.example", nil},
		{"rebound Host with port", "POST", revoke, "evil.example:" + port, nil},
		{"Host resolving to loopback elsewhere", "GET", "/metrics", "127.0.0.1.nip.io:" + port, nil},
		{"Host a private address", "GET", "/metrics", "10.0.0.1:" + port, nil},
		{"Host localhost with a trailing dot", "GET", "/metrics", "localhost.:" + port, nil},
		{"metrics read by a rebound page", "GET", "/metrics", "evil.example:" + port, map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{"probe from a rebound page", "GET", "/readyz", "evil.example:" + port, nil},
	}
	for _, tc := range refused {
		status, body := adminRequest(t, ts.URL, tc.method, tc.path, tc.host, tc.header)
		if status != http.StatusForbidden || body["error"] != "forbidden" {
			t.Errorf("%s: %d %v, want 403 forbidden", tc.name, status, body)
		}
	}
	if denied, revoked := log.counts(); denied != 0 || revoked != 0 {
		t.Fatalf("a refused request denied %d and revoked %d sessions", denied, revoked)
	}
	accepted := []struct {
		name, method, path, host string
		header                   map[string]string
	}{
		{"healthz on localhost", "GET", "/healthz", "localhost", nil},
		{"readyz on 127.0.0.1", "GET", "/readyz", "127.0.0.1:" + port, nil},
		{"metrics on [::1]", "GET", "/metrics", "[::1]:" + port, nil},
		{"metrics on LOCALHOST", "GET", "/metrics", "LOCALHOST:" + port, nil},
		{"metrics typed into the address bar", "GET", "/metrics", "", map[string]string{"Sec-Fetch-Site": "none"}},
		{"revoke with curl", "POST", revoke, "127.0.0.1:" + port, nil},
	}
	for _, tc := range accepted {
		if status, body := adminRequest(t, ts.URL, tc.method, tc.path, tc.host, tc.header); status != http.StatusOK {
			t.Errorf("%s: %d %v, want 200", tc.name, status, body)
		}
	}
	if denied, revoked := log.counts(); denied != 1 || revoked != 1 {
		t.Fatalf("the loopback revoke denied %d and revoked %d sessions, want 1 and 1", denied, revoked)
	}
}

// TestAdminWithTokenIgnoresBrowserHeaders: with admin_token the token is
// the guard (a browser cannot attach it cross-site), so Origin and Host
// change nothing: the token path works as before.
func TestAdminWithTokenIgnoresBrowserHeaders(t *testing.T) {
	t.Parallel()
	ts, log := adminServer(t, admin.HandlerConfig{AdminToken: "s3cret-admin"})
	browser := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	if status, _ := adminRequest(t, ts.URL, "POST", "/sessions/"+sid+"/revoke", "evil.example", browser); status != http.StatusUnauthorized {
		t.Errorf("revoke without the token: %d, want 401", status)
	}
	if status, _ := adminRequest(t, ts.URL, "GET", "/readyz", "evil.example", browser); status != http.StatusOK {
		t.Errorf("readyz: %d, want 200", status)
	}
	if denied, revoked := log.counts(); denied != 0 || revoked != 0 {
		t.Fatalf("a refused revoke denied %d and revoked %d sessions", denied, revoked)
	}
	browser["Authorization"] = "Bearer s3cret-admin"
	if status, body := adminRequest(t, ts.URL, "POST", "/sessions/"+sid+"/revoke", "sessiongate.internal:9090", browser); status != http.StatusOK {
		t.Errorf("revoke with the token: %d %v, want 200", status, body)
	}
	if denied, revoked := log.counts(); denied != 1 || revoked != 1 {
		t.Fatalf("the revoke with the token denied %d and revoked %d sessions, want 1 and 1", denied, revoked)
	}
}

// TestHandlerAnswers: the probes' answers and the refusals are byte for
// byte the bodies the admin listener has always written, with the same
// headers: JSON, not cached, and no nosniff (the admin listener's errors
// go through jsonresp.Write, not WriteError).
func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	notReady := func() (bool, string) { return false, "signing keys not loaded yet" }
	ready := func() (bool, string) { return true, "" }
	const (
		adminTok   = "adm-0123456789abcdef"
		metricsTok = "met-0123456789abcdef"
		realm      = `Bearer realm="sessiongate-admin"`
	)
	for _, tc := range []struct {
		name          string
		c             admin.HandlerConfig
		method, path  string
		host, auth    string
		origin        string
		status        int
		body, wwwAuth string
	}{
		{"healthz", admin.HandlerConfig{Ready: notReady}, "GET", "/healthz", "", "", "", 200, `{"status":"ok"}`, ""},
		{"readyz ready", admin.HandlerConfig{Ready: ready}, "GET", "/readyz", "", "", "", 200, `{"status":"ready"}`, ""},
		{"readyz without a readiness func", admin.HandlerConfig{}, "GET", "/readyz", "", "", "", 200, `{"status":"ready"}`, ""},
		{"readyz not ready", admin.HandlerConfig{Ready: notReady}, "GET", "/readyz", "", "", "", 503,
			`{"message":"signing keys not loaded yet","status":"unavailable"}`, ""},
		{"metrics without the admin token", admin.HandlerConfig{AdminToken: adminTok}, "GET", "/metrics", "", "", "", 401,
			`{"error":"unauthenticated","message":"the admin token is missing or wrong"}`, realm},
		{"metrics with the metrics token", admin.HandlerConfig{AdminToken: adminTok, MetricsToken: metricsTok}, "GET", "/metrics", "", "Bearer " + metricsTok, "", 200,
			"# sessiongate metrics\n", ""},
		{"metrics without the metrics token", admin.HandlerConfig{AdminToken: adminTok, MetricsToken: metricsTok}, "GET", "/metrics", "", "Bearer x", "", 401,
			`{"error":"unauthenticated","message":"the metrics token is missing or wrong"}`, realm},
		{"metrics token only, without it", admin.HandlerConfig{MetricsToken: metricsTok}, "GET", "/metrics", "", "", "", 401,
			`{"error":"unauthenticated","message":"the metrics token is missing or wrong"}`, realm},
		{"revoke with the metrics token", admin.HandlerConfig{AdminToken: adminTok, MetricsToken: metricsTok}, "POST", "/sessions/" + sid + "/revoke", "", "Bearer " + metricsTok, "", 401,
			`{"error":"unauthenticated","message":"the admin token is missing or wrong"}`, realm},
		{"browser without admin token", admin.HandlerConfig{}, "GET", "/healthz", "", "", "https://evil.example", 403,
			`{"error":"forbidden","message":"browser requests are refused by an admin listener without admin_token"}`, ""},
		{"rebound host without admin token", admin.HandlerConfig{}, "GET", "/healthz", "evil.example", "", "", 403,
			`{"error":"forbidden","message":"an admin listener without admin_token answers only requests for a loopback host (localhost, 127.0.0.1, [::1])"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &sessionLog{}
			c := tc.c
			c.Metrics = metricsStub
			c.Sessions = &admin.Server{DenyLocally: log.deny, Clerk: log}
			r := httptest.NewRequest(tc.method, "http://127.0.0.1:9090"+tc.path, nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			w := httptest.NewRecorder()
			admin.NewHandler(c).ServeHTTP(w, r)
			want := tc.body
			if strings.HasPrefix(want, "{") {
				want += "\n"
				if ct, cc := w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
					t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
				}
				if v := w.Header().Get("X-Content-Type-Options"); v != "" {
					t.Errorf("X-Content-Type-Options %q, want none", v)
				}
			}
			if w.Code != tc.status || w.Body.String() != want {
				t.Errorf("%d %q, want %d %q", w.Code, w.Body.String(), tc.status, want)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wwwAuth)
			}
		})
	}
}

// TestPprofNeedsAdminToken: profiles are served behind the admin token,
// and never without one, even when a handler is built with Pprof from a
// configuration that skipped validation.
func TestPprofNeedsAdminToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, token, auth string
		want              int
	}{
		{"no admin token", "", "", http.StatusNotFound},
		{"admin token, not presented", "adm-0123456789abcdef", "", http.StatusUnauthorized},
		{"admin token, presented", "adm-0123456789abcdef", "Bearer adm-0123456789abcdef", http.StatusOK},
	} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:9090/debug/pprof/cmdline", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		admin.NewHandler(admin.HandlerConfig{AdminToken: tc.token, Pprof: true}).ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
}
