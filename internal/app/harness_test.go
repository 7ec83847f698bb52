package app_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// What every harness of this package shares (start in app_test.go, hzStart
// in hardening_harness_test.go, startOps in ops_harness_test.go,
// startReplica in redis_test.go): one signing key, the base configuration,
// serving on listeners bound once, and waiting by polling with a deadline.

var (
	keyOnce sync.Once
	key     *clerktest.SigningKey
)

// signingKey is the RSA key of every fake instance in these tests:
// generating one per test would dominate their run time.
func signingKey(testing.TB) *clerktest.SigningKey {
	keyOnce.Do(func() {
		k, err := clerktest.NewSigningKey("ins_apptest", "RS256")
		if err != nil {
			panic(err)
		}
		key = k
	})
	return key
}

// baseConfig is the configuration every harness starts from: inst's keys
// and Backend API, refetches on an unknown kid allowed at once, no timed
// refresh during a test, and a shutdown bound a test can wait for.
func baseConfig(inst *clerktest.Instance) config.Config {
	cfg := config.Defaults()
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Clerk.SecretKey = config.Secret(inst.SecretKey())
	cfg.Clerk.APIURL = inst.APIURL()
	cfg.JWKS.MinRefreshInterval = config.Duration(10 * time.Millisecond)
	cfg.JWKS.RefreshInterval = config.Duration(time.Hour)
	cfg.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	return cfg
}

// serving is an App serving on loopback listeners.
type serving struct {
	proxyAddr string // host:port of the proxy listener
	proxyURL  string
	adminURL  string
	cancel    context.CancelFunc // starts the drain Serve does on shutdown
	done      chan error         // Serve's result
}

// serve runs a.Serve on listeners bound to 127.0.0.1:0 and handed over, so
// the ports are never free for another process between pick and use. When
// the test ends it cancels Serve, waits for it to return and closes a.
func serve(t *testing.T, a *app.App) *serving {
	t.Helper()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pl.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{proxyAddr: pl.Addr().String(), adminURL: "http://" + al.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	s.proxyURL = "http://" + s.proxyAddr
	go func() { s.done <- a.Serve(ctx, pl, al) }()
	t.Cleanup(func() {
		cancel()
		// Generous: the drain is bounded by server.shutdown_timeout (5 s).
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("Serve did not return within a minute of cancel")
		}
		a.Close()
	})
	return s
}

// waitReady polls the admin listener's /readyz until it answers want.
func waitReady(t *testing.T, adminURL string, want int) {
	t.Helper()
	testwait.Eventually(t, "/readyz answers "+http.StatusText(want), func() bool {
		resp, err := http.Get(adminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	})
}
