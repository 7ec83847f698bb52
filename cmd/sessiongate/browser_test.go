package main

import (
	"context"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
)

// browserTokenLifetime is the session-token lifetime of the browser test: a
// token is expired (past the Gate's 5 s skew) browserTokenLifetime + 5 s
// after it was minted.
const browserTokenLifetime = 2 * time.Second

// TestBrowserSessionThroughHandshake drives Debian's headless chromium
// through `sessiongate dev` (in-process): sign in on the fake Clerk
// instance's page, see the protected demo page with the identity, let the
// session token expire, navigate again and stay signed in through Clerk's
// handshake, then revoke the session at Clerk and be sent to sign-in.
//
// Without chromium/chromedriver it skips locally; with CI=true it fails.
func TestBrowserSessionThroughHandshake(t *testing.T) {
	chromium, driver, err := browserPaths()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the real-browser test cannot run: %v", err)
		}
		t.Skipf("real-browser test skipped: %v", err)
	}
	start := time.Now()
	t.Cleanup(func() { t.Logf("browser test took %v", time.Since(start).Round(100*time.Millisecond)) })

	// sessiongate dev, on free loopback ports, with short-lived tokens.
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	ready := make(chan string, 1)
	fakeCh := make(chan *clerktest.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- devMain(ctx, devOptions{
			Listen: "127.0.0.1:0", ClerkListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
			TokenLifetime: browserTokenLifetime,
			ready:         func(o string) { ready <- o },
			onFake:        func(f *clerktest.Instance) { fakeCh <- f },
		}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("devMain: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("devMain did not stop within 15s")
		}
		if t.Failed() {
			t.Logf("sessiongate dev stderr:\n%s", stderr.String())
		}
	})
	var gate string
	select {
	case gate = <-ready:
	case err := <-done:
		t.Fatalf("devMain returned early: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("devMain not ready within 30s\n%s", stderr.String())
	}
	fake := <-fakeCh

	wd := startBrowser(t, chromium, driver)
	page := gate + "/hello?from=browser"
	expire := func() {
		t.Helper()
		// Past exp plus the Gate's clock skew, with a margin.
		time.Sleep(browserTokenLifetime + middleware.DefaultClockSkew + 700*time.Millisecond)
	}
	// eventually polls until ok holds: a click returns before the browser
	// has finished the navigation it starts (POST, 303, page load), so one
	// read of the URL and another of the source may see different pages.
	eventually := func(ok func() bool) {
		deadline := time.Now().Add(15 * time.Second)
		for !ok() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	onSignInPage := func(step string) {
		t.Helper()
		eventually(func() bool {
			u, err := url.Parse(wd.URL())
			return err == nil && u.Path == clerktest.SignInPath && strings.Contains(wd.Source(), "<h1>Sign in</h1>")
		})
		u, err := url.Parse(wd.URL())
		if err != nil || u.Path != clerktest.SignInPath || "http://"+u.Host != fake.URL() {
			t.Fatalf("%s: at %s, want the fake's sign-in page\n%s", step, wd.URL(), wd.Source())
		}
		if got := u.Query().Get("redirect_url"); got != page {
			t.Errorf("%s: sign-in redirect_url %q, want %q", step, got, page)
		}
	}
	userID := regexp.MustCompile(`id="user-id">([^<]+)<`)
	sessionID := regexp.MustCompile(`<th>Session id</th><td><code>(sess_[A-Za-z0-9]+)</code>`)
	signedInAs := func(step string) (user, sid string) {
		t.Helper()
		var src string
		eventually(func() bool {
			src = wd.Source()
			return wd.URL() == page && userID.MatchString(src) && sessionID.MatchString(src)
		})
		if wd.URL() != page {
			t.Fatalf("%s: at %s, want %s\n%s", step, wd.URL(), page, src)
		}
		m, s := userID.FindStringSubmatch(src), sessionID.FindStringSubmatch(src)
		if m == nil || s == nil {
			t.Fatalf("%s: the demo page shows no identity:\n%s", step, src)
		}
		return m[1], s[1]
	}

	// 1. Not signed in: the gate sends the navigation to the fake's sign-in
	// page, without a handshake (no Clerk cookies at all).
	wd.Navigate(page)
	onSignInPage("before sign-in")
	if n := fake.Requests(clerktest.HandshakePath); n != 0 {
		t.Errorf("%d handshakes before sign-in", n)
	}

	// 2. Sign in (the form is prefilled with user_demo): back on the page,
	// signed in.
	wd.Click(wd.Find(`button[type="submit"]`))
	user, sid := signedInAs("after sign-in")
	if user != clerktest.DemoUserID {
		t.Errorf("signed in as %q", user)
	}
	cookies := wd.Cookies()
	firstToken := cookies["__session"].Value
	if firstToken == "" || cookies["__client_uat"].Value == "" || !cookies["__client"].HTTPOnly {
		t.Fatalf("cookies after sign-in: %+v", cookies)
	}

	// 3. The token expires; the next navigation goes through the handshake
	// and comes back signed in with a fresh token.
	expire()
	wd.Navigate(page)
	user2, sid2 := signedInAs("after expiry")
	if user2 != user || sid2 != sid {
		t.Errorf("after the handshake: %s %s, want %s %s", user2, sid2, user, sid)
	}
	if n := fake.Requests(clerktest.HandshakePath); n != 1 {
		t.Errorf("%d handshakes, want 1", n)
	}
	cookies = wd.Cookies()
	if tok := cookies["__session"].Value; tok == "" || tok == firstToken {
		t.Error("no fresh __session cookie after the handshake")
	}
	for _, name := range []string{"__clerk_handshake", "__clerk_handshake_nonce"} {
		if _, ok := cookies[name]; ok {
			t.Errorf("%s left in the browser", name)
		}
	}
	if !strings.Contains(wd.Source(), "Signed in as") {
		t.Error("not signed in")
	}

	// 4. The session is revoked at Clerk. Once the token expires the
	// handshake says signed out, and the browser lands on sign-in.
	if err := fake.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	expire()
	wd.Navigate(page)
	onSignInPage("after revocation")
	if n := fake.Requests(clerktest.HandshakePath); n != 2 {
		t.Errorf("%d handshakes, want 2", n)
	}
	if c, ok := wd.Cookies()["__session"]; ok && c.Value != "" {
		t.Errorf("__session still set after a signed-out handshake")
	}
}
