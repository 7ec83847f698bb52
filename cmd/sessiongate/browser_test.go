package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/devmode"
)

// browserTokenLifetime is the session-token lifetime of the browser tests:
// a token is expired (past the Gate's 5 s skew) once the test clock moves
// browserTokenLifetime + 5 s past its minting (expire).
const browserTokenLifetime = 2 * time.Second

// TestBrowserSessionThroughHandshake drives Debian's headless chromium
// through `sessiongate dev` (in-process) with a production instance: sign
// in on the fake Clerk instance's page, see the protected demo page with
// the identity, let the session token expire, navigate again and stay
// signed in through Clerk's handshake, then revoke the session at Clerk and
// be sent to sign-in.
//
// It runs twice: with the fake's own URL as clerk.proxy_url, and with the
// gate serving the fake's Frontend API under /__clerk (the Frontend API
// proxy: every handshake goes through it).
//
// Without chromium/chromedriver it skips locally; with CI=true it fails.
func TestBrowserSessionThroughHandshake(t *testing.T) {
	chromium, driver := needBrowser(t)
	for _, proxied := range []bool{false, true} {
		name := "direct"
		if proxied {
			name = "through the Frontend API proxy"
		}
		t.Run(name, func(t *testing.T) { browserSession(t, chromium, driver, proxied) })
	}
}

func browserSession(t *testing.T, chromium, driver string, proxied bool) {
	d := startBrowserDev(t, devmode.Options{Instance: devmode.InstanceProduction, FrontendAPIProxy: proxied})
	fake := d.fake
	wd := startBrowser(t, chromium, driver)
	page := d.gate + "/hello?from=browser"

	// 1. Not signed in: the gate sends the navigation to the fake's sign-in
	// page, without a handshake (no Clerk cookies at all).
	wd.Navigate(page)
	onSignInPage(t, wd, fake, page, "before sign-in")
	if n := fake.Requests(clerktest.HandshakePath); n != 0 {
		t.Errorf("%d handshakes before sign-in", n)
	}

	// 2. Sign in (the form is prefilled with user_demo): back on the page,
	// signed in.
	wd.Click(wd.Find(`button[type="submit"]`))
	user, sid := signedInAs(t, wd, page, "after sign-in")
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
	expire(wd, d.clock)
	wd.Navigate(page)
	user2, sid2 := signedInAs(t, wd, page, "after expiry")
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
	expire(wd, d.clock)
	wd.Navigate(page)
	onSignInPage(t, wd, fake, page, "after revocation")
	if n := fake.Requests(clerktest.HandshakePath); n != 2 {
		t.Errorf("%d handshakes, want 2", n)
	}
	if c, ok := wd.Cookies()["__session"]; ok && c.Value != "" {
		t.Errorf("__session still set after a signed-out handshake")
	}

	// Through the proxy, each handshake reached the fake as a proxied
	// request: Clerk-Proxy-Url the gate's /__clerk, the browser's address.
	var proxiedHandshakes int
	for _, pr := range fake.ProxiedRequests() {
		if pr.Path == clerktest.HandshakePath && pr.ProxyURL == d.gate+"/__clerk" && pr.ForwardedFor == "127.0.0.1" {
			proxiedHandshakes++
		}
	}
	if want := map[bool]int{false: 0, true: 2}[proxied]; proxiedHandshakes != want {
		t.Errorf("%d proxied handshakes, want %d: %+v", proxiedHandshakes, want, fake.ProxiedRequests())
	}
}
