package main

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/devmode"
	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/middleware"
)

// browserClock is the clock of the fake Clerk instance and the gates in the
// real-browser tests: a session token expires when the test says so, not
// after a sleep. The browser keeps real time; the only cookie whose
// lifetime matters to it, the 2-second __clerk_redirect_count, is deleted
// by expire (as two real seconds would).
type browserClock = testclock.Clock

// needBrowser returns chromium and chromedriver, or skips (fails with
// CI=true).
func needBrowser(t *testing.T) (chromium, driver string) {
	t.Helper()
	chromium, driver, err := browserPaths()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the real-browser test cannot run: %v", err)
		}
		t.Skipf("real-browser test skipped: %v", err)
	}
	start := time.Now()
	t.Cleanup(func() { t.Logf("browser test took %v", time.Since(start).Round(100*time.Millisecond)) })
	return chromium, driver
}

// devRun is an in-process `sessiongate dev` on free loopback ports.
type devRun struct {
	gate   string
	fake   *clerktest.Instance
	clock  *browserClock
	stderr *syncBuffer
}

// startBrowserDev runs devmode.Run (Instance and FrontendAPIProxy from opts)
// on free loopback ports, with short-lived tokens and a test clock, until
// the test ends.
func startBrowserDev(t *testing.T, opts devmode.Options) *devRun {
	t.Helper()
	clk := testclock.New(time.Now())
	opts.TokenLifetime = browserTokenLifetime
	opts.Now = clk.Now
	d := startDevMain(t, opts)
	return &devRun{gate: d.gate, fake: d.fake, clock: clk, stderr: d.stderr}
}

// eventually polls until ok holds, for at most 15 s: a click returns before
// the browser has finished the navigation it starts (POST, 303, page load),
// so one read of the URL and another of the source may see different pages.
// The caller checks the outcome.
func eventually(ok func() bool) { testwait.Poll(15*time.Second, ok) }

// expire moves the test clock past the session token's expiry and the
// Gate's clock skew, and drops the page's redirect counter.
func expire(wd *webDriver, clk *browserClock) {
	clk.Advance(browserTokenLifetime + middleware.DefaultClockSkew + time.Second)
	wd.DeleteCookie("__clerk_redirect_count")
}

var (
	userIDRE    = regexp.MustCompile(`id="user-id">([^<]+)<`)
	sessionIDRE = regexp.MustCompile(`<th>Session id</th><td><code>(sess_[A-Za-z0-9]+)</code>`)
)

// signedInAs waits for page with the demo's identity on it.
func signedInAs(t *testing.T, wd *webDriver, page, step string) (user, sid string) {
	t.Helper()
	var src string
	eventually(func() bool {
		src = wd.Source()
		return wd.URL() == page && userIDRE.MatchString(src) && sessionIDRE.MatchString(src)
	})
	if wd.URL() != page {
		t.Fatalf("%s: at %s, want %s\n%s", step, wd.URL(), page, src)
	}
	m, s := userIDRE.FindStringSubmatch(src), sessionIDRE.FindStringSubmatch(src)
	if m == nil || s == nil {
		t.Fatalf("%s: the page shows no identity:\n%s", step, src)
	}
	return m[1], s[1]
}

// onSignInPage waits for the fake's sign-in page, sent there for
// redirectURL.
func onSignInPage(t *testing.T, wd *webDriver, fake *clerktest.Instance, redirectURL, step string) {
	t.Helper()
	eventually(func() bool {
		u, err := url.Parse(wd.URL())
		return err == nil && u.Path == clerktest.SignInPath && strings.Contains(wd.Source(), "<h1>Sign in</h1>")
	})
	u, err := url.Parse(wd.URL())
	if err != nil || u.Path != clerktest.SignInPath || "http://"+u.Host != fake.URL() {
		t.Fatalf("%s: at %s, want the fake's sign-in page\n%s", step, wd.URL(), wd.Source())
	}
	if got := u.Query().Get("redirect_url"); got != redirectURL {
		t.Errorf("%s: sign-in redirect_url %q, want %q", step, got, redirectURL)
	}
}
