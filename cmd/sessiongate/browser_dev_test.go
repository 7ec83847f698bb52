package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/devmode"
)

// TestBrowserDevelopmentInstance is the real-browser test against `sessiongate
// dev --instance development`: Clerk's dev-browser handshake. The first
// navigation has no dev browser (dev-browser-missing: the fake makes one and
// returns the payload in the URL, the gate applies it and cleans the URL);
// signing in returns the dev browser in the URL (dev-browser-sync); once
// the token expires the handshake carries the dev browser and the browser
// stays signed in; after a revocation it lands on sign-in.
//
// Without chromium/chromedriver it skips locally; with CI=true it fails.
func TestBrowserDevelopmentInstance(t *testing.T) {
	chromium, driver := needBrowser(t)
	d := startBrowserDev(t, devmode.Options{Instance: devmode.InstanceDevelopment})
	fake := d.fake
	if !fake.Development() {
		t.Fatal("the fake is not a development instance")
	}
	wd := startBrowser(t, chromium, driver)
	page := d.gate + "/hello?from=browser"

	// 1. No dev browser yet: one handshake gets one (signed out), the URL is
	// cleaned, and the signed-out navigation goes to sign-in.
	wd.Navigate(page)
	onSignInPage(t, wd, fake, page, "before sign-in")
	if n := fake.Requests(clerktest.HandshakePath); n != 1 {
		t.Errorf("%d handshakes before sign-in, want 1 (dev-browser-missing)", n)
	}

	// 2. Sign in: the fake returns the dev browser in the URL; the gate
	// syncs it through the handshake, applies the payload from the URL and
	// lands on the clean page, signed in.
	wd.Click(wd.Find(`button[type="submit"]`))
	user, sid := signedInAs(t, wd, page, "after sign-in")
	if user != clerktest.DemoUserID {
		t.Errorf("signed in as %q", user)
	}
	if n := fake.Requests(clerktest.HandshakePath); n != 2 {
		t.Errorf("%d handshakes after sign-in, want 2 (dev-browser-sync)", n)
	}
	cookies := wd.Cookies()
	dev := cookies["__clerk_db_jwt"].Value
	firstToken := cookies["__session"].Value
	if dev == "" || firstToken == "" || cookies["__client_uat"].Value == "" {
		t.Fatalf("cookies after sign-in: %+v", cookies)
	}
	if fake.DevBrowserSession(dev) != sid {
		t.Errorf("the dev-browser cookie is not the signed-in dev browser")
	}
	if _, ok := cookies["__client"]; ok {
		t.Error("a development instance set __client on the application")
	}

	// 3. The token expires: the handshake carries the dev browser, the
	// payload comes back in the URL, and the page is signed in again with a
	// fresh token and a clean URL.
	expire(wd, d.clock)
	wd.Navigate(page)
	user2, sid2 := signedInAs(t, wd, page, "after expiry")
	if user2 != user || sid2 != sid {
		t.Errorf("after the handshake: %s %s, want %s %s", user2, sid2, user, sid)
	}
	if n := fake.Requests(clerktest.HandshakePath); n != 3 {
		t.Errorf("%d handshakes, want 3", n)
	}
	cookies = wd.Cookies()
	if tok := cookies["__session"].Value; tok == "" || tok == firstToken {
		t.Error("no fresh __session cookie after the handshake")
	}
	if u, _ := url.Parse(wd.URL()); u.Query().Has("__clerk_handshake") || u.Query().Has("__clerk_db_jwt") {
		t.Errorf("the payload stayed in the URL: %s", wd.URL())
	}
	if !strings.Contains(wd.Source(), "Signed in as") {
		t.Error("not signed in")
	}

	// 4. Revoked at Clerk: once the token expires the handshake says signed
	// out, and the browser lands on sign-in.
	if err := fake.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	expire(wd, d.clock)
	wd.Navigate(page)
	onSignInPage(t, wd, fake, page, "after revocation")
	if n := fake.Requests(clerktest.HandshakePath); n != 4 {
		t.Errorf("%d handshakes, want 4", n)
	}
}
