package middleware_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// A cached token costs two allocations: the Claims handed to the caller,
// and one copy of the hit's own strings (sub, sid, jti), which they share.
// The cache itself keeps no pointers (the garbage collector never scans
// it), so the claims are rebuilt from its record on every hit; this holds
// the price of that at two. (One is possible, the strings inside the Claims
// object, and was measured: no faster, and a caller keeping one string,
// as the session-status cache keeps the session id, would then pin the
// whole ~480-byte object instead of a ~96-byte copy.) (Not parallel:
// AllocsPerRun.)
func TestCachedHitDoesNotAllocateBeyondItsClaims(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; scripts/test runs this without -race")
	}
	testKeys(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: mainKey, TokenLifetime: time.Hour})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_2abc", Slug: "acme", Role: "admin",
		Permissions: []string{"org:docs:read", "org:docs:write"}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := gate.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	var c *middleware.Claims
	if allocs := testing.AllocsPerRun(1000, func() {
		if c, err = gate.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}); allocs > 2 {
		t.Errorf("%v allocations per cached verification, want 2", allocs)
	}
	if c.Subject != first.Subject || c.SessionID != first.SessionID || c.ID != first.ID || c.OrgSlug != "acme" ||
		len(c.OrgPermissions) != 2 {
		t.Errorf("cached claims %+v differ from the first verification's %+v", c, first)
	}
	if st := gate.Stats(); st.CacheHits < 1000 {
		t.Errorf("cache hits %d, want every repeat to hit", st.CacheHits)
	}

	// Long ids and custom claims decode the same from a hit.
	long := strings.Repeat("x", 200)
	tok, err = inst.Mint(clerktest.WithUser("user_"+long), clerktest.WithClaim("profile", map[string]string{"bio": long}))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // a miss, then a hit
		if c, err = gate.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if c.Subject != "user_"+long || !strings.Contains(string(c.Custom), `"bio":"`+long+`"`) {
			t.Errorf("verification %d: subject %q, custom %s", i, c.Subject, c.Custom)
		}
	}
}
