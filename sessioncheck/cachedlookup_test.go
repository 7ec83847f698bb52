package sessioncheck_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// CachedLookup (a cache shared by replicas) serves Cached mode only: Strict
// mode promises a lookup at Clerk on every request.
func TestCachedLookupServesCachedModeOnly(t *testing.T) {
	t.Parallel()
	clk := newClock()
	direct := &fakeLookup{statuses: map[string]string{"sess_a": "active"}}
	shared := &fakeLookup{statuses: map[string]string{"sess_a": "active"}}
	svc, err := sessioncheck.New(sessioncheck.Config{
		Lookup: direct, CachedLookup: shared, DenyList: sessioncheck.NewDenyList(time.Hour, 0, clk.Now), Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := &middleware.Claims{SessionID: "sess_a"}
	for _, mode := range []sessioncheck.Mode{sessioncheck.Cached, sessioncheck.Strict} {
		c, err := svc.Checker(mode, sessioncheck.Deny, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSession(context.Background(), claims); err != nil {
			t.Fatal(err)
		}
	}
	if direct.calls.Load() != 1 || shared.calls.Load() != 1 {
		t.Fatalf("direct %d, shared %d: want one each (strict, cached)", direct.calls.Load(), shared.calls.Load())
	}
}
