package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/devmode"
	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// devInstance is a running devmode.Run.
type devInstance struct {
	gate, clerk    string // the gate's URL; the fake's, read from the banner
	fake           *clerktest.Instance
	stdout, stderr *syncBuffer
}

// startDevMain runs devmode.Run with opts on loopback ports the listeners pick
// themselves ("127.0.0.1:0") until the test ends, and returns once it is
// ready. Its stderr is logged when the test fails.
func startDevMain(t *testing.T, opts devmode.Options) *devInstance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devInstance{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ready := make(chan string, 1)
	fakeCh := make(chan *clerktest.Instance, 1)
	done := make(chan error, 1)
	opts.Listen, opts.ClerkListen, opts.AdminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	opts.Ready = func(o string) { ready <- o }
	opts.OnFake = func(f *clerktest.Instance) { fakeCh <- f }
	go func() { done <- devmode.Run(ctx, opts, d.stdout, d.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("devmode.Run: %v", err)
			}
		case <-time.After(testwait.Generous):
			t.Errorf("devmode.Run did not stop within %v", testwait.Generous)
		}
		if t.Failed() {
			t.Logf("sessiongate dev stderr:\n%s", d.stderr)
		}
	})
	select {
	case d.gate = <-ready:
	case err := <-done:
		t.Fatalf("devmode.Run returned early: %v\nstderr:\n%s", err, d.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("devmode.Run not ready within 30s\nstderr:\n%s", d.stderr)
	}
	d.fake = <-fakeCh
	return d
}

// startDev runs a production `sessiongate dev` with hour-long tokens, and
// reads the fake's URL from the banner.
func startDev(t *testing.T) *devInstance {
	t.Helper()
	d := startDevMain(t, devmode.Options{TokenLifetime: time.Hour})
	m := regexp.MustCompile(`fake Clerk\s+(http://\S+)`).FindStringSubmatch(d.stdout.String())
	if m == nil {
		t.Fatalf("no fake Clerk URL in the banner:\n%s", d.stdout)
	}
	d.clerk = m[1]
	return d
}

func client(jar http.CookieJar, follow bool) *http.Client {
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func send(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var curlWithToken = regexp.MustCompile(`(?m)^\s*curl -i -H 'Authorization: (Bearer [^']+)' (http://\S+)$`)
var curlWithAPIKey = regexp.MustCompile(`(?m)^\s*curl -i -H 'Authorization: (Bearer ak_[^']+)' (http://\S+/api/\S*)$`)
var curlWithout = regexp.MustCompile(`(?m)^\s*curl -i (http://\S+)$`)

func TestDevBanner(t *testing.T) {
	d := startDev(t)
	out := d.stdout.String()
	for _, want := range []string{d.gate, "real Clerk session tokens live 60s", "sessiongate dev token", devmode.DevSecretKey, "/sign-in?redirect_url="} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}

	// The printed curl: 200, the demo upstream echoes the identity.
	m := curlWithToken.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no curl with a token in:\n%s", out)
	}
	if !strings.HasPrefix(m[2], d.gate+"/") {
		t.Errorf("curl URL %s is not on the gate %s", m[2], d.gate)
	}
	resp, body := send(t, client(nil, false), http.MethodGet, m[2], nil, map[string]string{"Authorization": m[1]})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("curl with token: %d %s", resp.StatusCode, body)
	}
	var echo devmode.DemoResponse
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatalf("demo JSON %s: %v", body, err)
	}
	if echo.Identity == nil || echo.Identity.UserID != "user_demo" || !strings.HasPrefix(echo.Identity.SessionID, "sess_") {
		t.Errorf("identity = %+v", echo.Identity)
	}
	if echo.Headers["Authorization"] != "[redacted]" {
		t.Errorf("Authorization shown as %q", echo.Headers["Authorization"])
	}

	// The printed curl without the token: 401 session-token-missing.
	m2 := curlWithout.FindStringSubmatch(out)
	if m2 == nil {
		t.Fatalf("no curl without a token in:\n%s", out)
	}
	resp, body = send(t, client(nil, false), http.MethodGet, m2[1], nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Clerk-Auth-Reason") != "session-token-missing" {
		t.Errorf("curl without token: %d %q %s", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"), body)
	}

	// The printed curl with an API key: 200 on /api as the demo user, with
	// Token-Type api_key; the same key on "/" (sessions only) is refused.
	ak := curlWithAPIKey.FindStringSubmatch(out)
	if ak == nil {
		t.Fatalf("no curl with an API key in:\n%s", out)
	}
	resp, body = send(t, client(nil, false), http.MethodGet, ak[2], nil, map[string]string{"Authorization": ak[1]})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("curl with the API key: %d %s", resp.StatusCode, body)
	}
	echo = devmode.DemoResponse{}
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatalf("demo JSON %s: %v", body, err)
	}
	if echo.Identity == nil || echo.Identity.UserID != "user_demo" || echo.Identity.TokenType != "api_key" || !strings.HasPrefix(echo.Identity.TokenID, "ak_") {
		t.Errorf("API key identity = %+v", echo.Identity)
	}
	resp, body = send(t, client(nil, false), http.MethodGet, d.gate+"/hello", nil, map[string]string{"Authorization": ak[1]})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Clerk-Auth-Reason") != "token-type-not-accepted" {
		t.Errorf("API key on a sessions-only route: %d %q %s", resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"), body)
	}

	// /public is public: the demo shows no identity.
	resp, body = send(t, client(nil, false), http.MethodGet, d.gate+"/public", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"identity": null`) {
		t.Errorf("/public: %d %s", resp.StatusCode, body)
	}

	// Access lines on stderr.
	if !strings.Contains(d.stderr.String(), "session-token-missing") {
		t.Errorf("no access line in the logs:\n%s", d.stderr)
	}
}

func TestDevBrowserSignIn(t *testing.T) {
	d := startDev(t)
	browser := map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}

	// Signed out: redirected to the fake's sign-in page.
	resp, _ := send(t, client(nil, false), http.MethodGet, d.gate+"/dashboard", nil, browser)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, d.clerk+"/sign-in?") {
		t.Fatalf("signed-out navigation: %d Location %q", resp.StatusCode, loc)
	}
	lu, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	redirect := lu.Query().Get("redirect_url")
	if redirect != d.gate+"/dashboard" {
		t.Errorf("redirect_url = %q", redirect)
	}

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client(jar, true)
	resp, body := send(t, c, http.MethodGet, loc, nil, browser)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="user_demo"`) {
		t.Fatalf("sign-in form: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"user_id": {"user_browser"}, "org_id": {"org_9"}, "redirect_url": {redirect}}
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range browser {
		hdr[k] = v
	}
	resp, body = send(t, c, http.MethodPost, d.clerk+"/sign-in", strings.NewReader(form.Encode()), hdr)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != d.gate+"/dashboard" {
		t.Fatalf("after sign-in: %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	if !strings.Contains(body, `<code id="user-id">user_browser</code>`) || !strings.Contains(body, "org_9") {
		t.Errorf("demo page does not show the user:\n%s", body)
	}

	// Sign out clears the cookie: signed out again.
	u, _ := url.Parse(d.gate)
	var signOut string
	if m := regexp.MustCompile(`href="([^"]*sign-out[^"]*)"`).FindStringSubmatch(body); m != nil {
		signOut = strings.ReplaceAll(m[1], "&amp;", "&")
	} else {
		t.Fatalf("no sign-out link:\n%s", body)
	}
	resp, body = send(t, c, http.MethodGet, signOut, nil, browser)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Not signed in") {
		t.Errorf("after sign-out: %d %s", resp.StatusCode, body)
	}
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "__session" {
			t.Errorf("__session still in the jar")
		}
	}
}

func TestDevToken(t *testing.T) {
	d := startDev(t)
	var out, errb bytes.Buffer
	code := runDevToken([]string{"--clerk", d.clerk, "--user", "user_123", "--org", "org_456", "--role", "admin", "--lifetime", "10m"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSuffix(out.String(), "\n")
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("output %q is not one token line", out.String())
	}
	resp, body := send(t, client(nil, false), http.MethodGet, d.gate+"/x", nil, map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var echo devmode.DemoResponse
	if err := json.Unmarshal([]byte(body), &echo); err != nil || echo.Identity == nil ||
		echo.Identity.UserID != "user_123" || echo.Identity.OrgID != "org_456" || echo.Identity.OrgRole != "org:admin" {
		t.Errorf("identity %+v (%v): %s", echo.Identity, err, body)
	}

	// A wrong secret key: exit 1 with Clerk's error.
	out.Reset()
	errb.Reset()
	if code := runDevToken([]string{"--clerk", d.clerk, "--secret-key", "sk_test_wrong"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "authentication_invalid") || out.Len() != 0 {
		t.Errorf("wrong key: exit %d stdout %q stderr %q", code, out.String(), errb.String())
	}
}

func TestDevTokenUsageAndUnreachable(t *testing.T) {
	closed := "http://" + testport.Reserve(t) // refuses connections
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"extra arg", []string{"x"}, 2, "unexpected argument"},
		{"short lifetime", []string{"--lifetime", "10ms"}, 2, "--lifetime"},
		{"role without org", []string{"--role", "admin"}, 2, "--org"},
		{"unreachable", []string{"--clerk", closed}, 1, "is `sessiongate dev` running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runDevToken(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, errb.String(), tc.code, tc.msg)
			}
		})
	}
}

func TestRunDevUsageAndPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"extra arg", []string{"extra"}, 2, "unexpected argument"},
		{"not loopback", []string{"--listen", "0.0.0.0:0"}, 2, "--listen"},
		{"bad lifetime", []string{"--token-lifetime", "0s"}, 2, "--token-lifetime"},
		{"unknown instance kind", []string{"--instance", "staging"}, 2, "--instance \"staging\": must be production or development"},
		{"listen taken", []string{"--listen", taken.Addr().String(), "--clerk-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, 1, "--listen " + taken.Addr().String()},
		{"admin taken", []string{"--listen", "127.0.0.1:0", "--clerk-listen", "127.0.0.1:0", "--admin-listen", taken.Addr().String()}, 1, "--admin-listen"},
		{"clerk taken", []string{"--listen", "127.0.0.1:0", "--clerk-listen", taken.Addr().String(), "--admin-listen", "127.0.0.1:0"}, 1, "--clerk-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runDev(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, errb.String(), tc.code, tc.msg)
			}
		})
	}
}
