package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/devmode"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// satelliteHost is the satellite domain's loopback host: another host than
// the primary's 127.0.0.1, so that the browser keeps its cookies apart, as
// for two registrable domains.
const satelliteHost = "127.0.0.2"

// TestBrowserSatelliteDomain is the real-browser test of a satellite
// domain: `sessiongate dev` is the primary (production instance); a second
// gate on 127.0.0.2 is a satellite (clerk.is_satellite, its Frontend API the
// fake's satellite listener, also on 127.0.0.2). Signed in on the primary,
// the browser visits the satellite: signed out there (satelliteAutoSync is
// off), it is sent to the primary's sign-in page with
// redirect_url=…__clerk_synced=false, which sends a signed-in browser
// straight back; the satellite syncs through its Frontend API (which asks
// the primary's) and is signed in. After the token expires, the satellite
// renews it through its own Frontend API. After a revocation it ends signed
// out.
//
// Without chromium/chromedriver it skips locally; with CI=true it fails.
func TestBrowserSatelliteDomain(t *testing.T) {
	chromium, driver := needBrowser(t)
	gateLn, err := net.Listen("tcp", satelliteHost+":0")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is not available: %v", satelliteHost, err)
		}
		t.Skipf("satellite test skipped: %s is not a usable loopback address here: %v", satelliteHost, err)
	}
	d := startBrowserDev(t, devmode.Options{Instance: devmode.InstanceProduction})
	fake := d.fake
	satOrigin := "http://" + gateLn.Addr().String()
	sat := fake.StartSatellite(t, clerktest.SatelliteOptions{Addr: satelliteHost + ":0", AuthorizedParty: satOrigin})
	startSatelliteGate(t, d, gateLn, sat, satOrigin)

	wd := startBrowser(t, chromium, driver)
	primaryPage := d.gate + "/hello?from=browser"
	satPage := satOrigin + "/hello?from=satellite"

	// 1. Sign in on the primary.
	wd.Navigate(primaryPage)
	onSignInPage(t, wd, fake, primaryPage, "primary before sign-in")
	wd.Click(wd.Find(`button[type="submit"]`))
	user, sid := signedInAs(t, wd, primaryPage, "primary after sign-in")

	// 2. The satellite: signed out without a sync, so to the primary's
	// sign-in page, asking for a sync on the way back; the fake's sign-in
	// page sends the signed-in browser straight back, and the satellite
	// syncs through its Frontend API.
	wd.Navigate(satPage)
	synced := satOrigin + "/hello?from=satellite&__clerk_synced=true"
	user2, sid2 := signedInAs(t, wd, synced, "satellite after sync")
	if user2 != user || sid2 != sid {
		t.Errorf("satellite signed in as %s %s, want the primary's %s %s", user2, sid2, user, sid)
	}
	if n := sat.Handshakes(); n != 2 {
		t.Errorf("%d satellite handshakes, want 2 (to the primary and back)", n)
	}
	if n := fake.Requests(clerktest.SatelliteSyncPath); n != 1 {
		t.Errorf("%d syncs at the primary, want 1", n)
	}
	cookies := wd.Cookies()
	firstToken := cookies["__session"].Value
	if firstToken == "" || !cookies["__client"].HTTPOnly {
		t.Fatalf("satellite cookies: %+v", cookies)
	}

	// 3. The token expires: the satellite renews it through its own
	// Frontend API, without the primary.
	expire(wd, d.clock)
	wd.Navigate(satPage)
	user3, sid3 := signedInAs(t, wd, satPage, "satellite after expiry")
	if user3 != user || sid3 != sid {
		t.Errorf("after the handshake: %s %s", user3, sid3)
	}
	if n := sat.Handshakes(); n != 3 {
		t.Errorf("%d satellite handshakes, want 3", n)
	}
	if n := fake.Requests(clerktest.SatelliteSyncPath); n != 1 {
		t.Errorf("%d syncs at the primary, want still 1", n)
	}
	if tok := wd.Cookies()["__session"].Value; tok == "" || tok == firstToken {
		t.Error("no fresh __session on the satellite")
	}

	// 4. Revoked: once the token expires the satellite ends signed out,
	// on the primary's sign-in page.
	if err := fake.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}
	expire(wd, d.clock)
	wd.Navigate(satPage)
	onSignInPage(t, wd, fake, handshake.SignInReturnURL(satPage), "satellite after revocation")
}

// startSatelliteGate serves a sessiongate for the satellite domain on ln,
// in front of the demo upstream, until the test ends.
func startSatelliteGate(t *testing.T, d *devRun, ln net.Listener, sat *clerktest.Satellite, origin string) {
	t.Helper()
	fake := d.fake
	demoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := &http.Server{Handler: &devmode.DemoUpstream{Prefix: config.Defaults().Headers.Prefix}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = demo.Serve(demoLn) }()
	t.Cleanup(func() { _ = demo.Close() })

	cfg := config.Defaults()
	cfg.Listen = ln.Addr().String()
	cfg.AdminListen = ""
	cfg.Clerk.Issuer = fake.Issuer()
	cfg.Clerk.PublishableKey = fake.PublishableKey()
	cfg.Clerk.IsSatellite = true
	cfg.Clerk.ProxyURL = sat.URL() // the satellite's Frontend API, standing in for https://clerk.<domain>
	cfg.Clerk.SecretKey = config.Secret(fake.SecretKey())
	cfg.Clerk.APIURL = fake.APIURL()
	cfg.Clerk.AuthorizedParties = []string{origin}
	cfg.SignInURL = fake.URL() + clerktest.SignInPath
	cfg.PublicOrigin = origin
	cfg.Upstream = "http://" + demoLn.Addr().String()
	cfg.Routes = []config.Route{{Path: "/", Auth: config.AuthRequired}}
	cfg.Log.Level = "info"
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(&cfg, app.Options{Logger: zap.NewNop(), Now: d.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the satellite gate did not stop within 15s")
		}
	})
	testwait.Eventually(t, "the satellite gate to load the fake's keys", a.Ready)
}
