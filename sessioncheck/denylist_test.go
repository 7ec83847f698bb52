package sessioncheck_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// Apply is how a replica takes in a revocation another one published: it
// denies like DenyUntil but must not run the hooks, or every replica would
// publish every revocation back.
func TestDenyListApplyDoesNotRunHooks(t *testing.T) {
	t.Parallel()
	clk := newClock()
	d := sessioncheck.NewDenyList(time.Minute, 0, clk.Now)
	var hooked []string
	d.OnDeny(func(sid string, _ time.Time) { hooked = append(hooked, sid) })

	d.Apply("sess_remote", clk.Now().Add(30*time.Second))
	if !d.Denied("sess_remote") {
		t.Fatal("an applied revocation is not denied")
	}
	if len(hooked) != 0 {
		t.Fatalf("Apply ran the hooks: %v", hooked)
	}
	// The later expiry wins either way.
	d.Apply("sess_remote", clk.Now().Add(10*time.Second))
	if got := d.Entries()["sess_remote"]; !got.Equal(clk.Now().Add(30 * time.Second)) {
		t.Fatalf("an earlier expiry shortened the entry: %v", got)
	}
	d.Apply("sess_past", clk.Now().Add(-time.Second))
	if d.Denied("sess_past") || d.Len() != 1 {
		t.Fatal("an already expired revocation was applied")
	}
	d.Deny("sess_local")
	if len(hooked) != 1 || hooked[0] != "sess_local" {
		t.Fatalf("Deny must still run the hooks: %v", hooked)
	}
	clk.Advance(31 * time.Second)
	if d.Denied("sess_remote") {
		t.Fatal("an applied revocation outlived its expiry")
	}
}

// A full list makes room by dropping what no longer protects anything
// first: expired entries go before any live one, and only when every entry
// is live does the one closest to expiry go (counted in Evictions).
func TestDenyListEvictionOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		entries       []time.Duration // expiry of sess_0, sess_1, … from now
		advance       time.Duration   // before the new revocation
		wantGone      []string
		wantEvictions uint64
	}{
		{
			name:     "an expired entry goes before any live one",
			entries:  []time.Duration{50 * time.Second, 10 * time.Second, 30 * time.Second},
			advance:  20 * time.Second, // sess_1 has expired
			wantGone: []string{"sess_1"},
		},
		{
			name:     "every expired entry goes, the live ones stay",
			entries:  []time.Duration{5 * time.Second, 40 * time.Second, 6 * time.Second},
			advance:  10 * time.Second,
			wantGone: []string{"sess_0", "sess_2"},
		},
		{
			name:          "all live: the one closest to expiry goes, and is counted",
			entries:       []time.Duration{50 * time.Second, 20 * time.Second, 30 * time.Second},
			advance:       time.Second,
			wantGone:      []string{"sess_1"},
			wantEvictions: 1,
		},
		{
			name:          "an extended entry is ordered by its new expiry",
			entries:       []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 45 * time.Second}, // sess_3 re-denies sess_0
			advance:       time.Second,
			wantGone:      []string{"sess_1"},
			wantEvictions: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			d := sessioncheck.NewDenyList(time.Minute, 3, clk.Now)
			for i, exp := range tc.entries {
				sid := "sess_" + string(rune('0'+i))
				if i == 3 {
					sid = "sess_0"
				}
				d.DenyUntil(sid, clk.Now().Add(exp))
			}
			clk.Advance(tc.advance)
			d.Deny("sess_new")
			if !d.Denied("sess_new") {
				t.Fatal("the new revocation is not denied")
			}
			gone := map[string]bool{}
			for _, sid := range tc.wantGone {
				gone[sid] = true
			}
			for _, sid := range []string{"sess_0", "sess_1", "sess_2"} {
				if _, on := d.Entries()[sid]; on == gone[sid] {
					t.Errorf("%s on the list: %v, want %v", sid, on, !gone[sid])
				}
			}
			if got := d.Evictions(); got != tc.wantEvictions {
				t.Errorf("Evictions = %d, want %d", got, tc.wantEvictions)
			}
			if d.Len() > 3 {
				t.Errorf("Len = %d, above the bound", d.Len())
			}
		})
	}
}

// Expired entries do not pile up behind the bound: once expired they are
// dropped as new ones arrive, so a list sized for one TTL's revocations
// never evicts a live one.
func TestDenyListDropsExpiredEntriesAsItGoes(t *testing.T) {
	t.Parallel()
	clk := newClock()
	d := sessioncheck.NewDenyList(time.Minute, 100, clk.Now)
	for i := 0; i < 10_000; i++ {
		d.Deny(fmt.Sprintf("sess_%d", i))
		clk.Advance(time.Second) // 60 live at any time
	}
	if d.Evictions() != 0 {
		t.Fatalf("Evictions = %d: a live revocation was dropped", d.Evictions())
	}
	if n := d.Len(); n > 61 {
		t.Fatalf("Len = %d: expired entries pile up", n)
	}
	for i := 10_000 - 59; i < 10_000; i++ {
		if !d.Denied(fmt.Sprintf("sess_%d", i)) {
			t.Fatalf("sess_%d: a live revocation is gone", i)
		}
	}
}

// A live revocation dropped because the list is full shows in Stats and in
// one warning, not one per eviction.
func TestDenyListEvictionsAreReported(t *testing.T) {
	t.Parallel()
	clk := newClock()
	core, logs := observer.New(zap.WarnLevel)
	d := sessioncheck.NewDenyList(time.Hour, 1, clk.Now)
	svc, err := sessioncheck.New(sessioncheck.Config{DenyList: d, Now: clk.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{"sess_1", "sess_2", "sess_3"} {
		d.Deny(sid)
		clk.Advance(time.Second)
	}
	if st := svc.Stats(); st.DenyListEvictions != 2 || st.DenyListSize != 1 {
		t.Fatalf("evictions %d, size %d; want 2, 1", st.DenyListEvictions, st.DenyListSize)
	}
	if n := logs.FilterMessageSnippet("deny list full").Len(); n != 1 {
		t.Fatalf("%d warnings, want 1", n)
	}
}

// TestDenyListFullWarningCarriesTheRequestID: a revocation made while
// serving a request (a lookup finding the session revoked, or gone at
// Clerk) that evicts a live one logs the "deny list full" warning with
// that request's request_id; one made by no request (a replica's, through
// Deny) logs none.
func TestDenyListFullWarningCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	for _, sid := range []string{"sess_r", "sess_gone"} { // revoked at Clerk; unknown to Clerk
		clk := newClock()
		core, logs := observer.New(zap.WarnLevel)
		look := &fakeLookup{statuses: map[string]string{"sess_r": "revoked"}}
		d := sessioncheck.NewDenyList(time.Hour, 1, clk.Now)
		svc, err := sessioncheck.New(sessioncheck.Config{Lookup: look, DenyList: d, Now: clk.Now, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := svc.Checker(sessioncheck.Strict, sessioncheck.Deny, false)
		if err != nil {
			t.Fatal(err)
		}
		d.Deny("sess_old")
		clk.Advance(time.Second)
		ctx := logctx.WithRequestID(context.Background(), "req-77")
		if err := c.CheckSession(ctx, &middleware.Claims{SessionID: sid, Subject: "user_1"}); reasonOf(err) != middleware.ReasonSessionRevoked {
			t.Fatalf("%s: %v, want session-revoked", sid, err)
		}
		lines := logs.FilterMessageSnippet("deny list full").All()
		if len(lines) != 1 {
			t.Fatalf("%s: %d warnings, want 1", sid, len(lines))
		}
		if got := lines[0].ContextMap()[logctx.FieldName]; got != "req-77" {
			t.Errorf("%s: the warning has request_id %v, want req-77", sid, got)
		}
	}
	// Without a request: no request_id field at all.
	clk := newClock()
	core, logs := observer.New(zap.WarnLevel)
	d := sessioncheck.NewDenyList(time.Hour, 1, clk.Now)
	if _, err := sessioncheck.New(sessioncheck.Config{DenyList: d, Now: clk.Now, Logger: zap.New(core)}); err != nil {
		t.Fatal(err)
	}
	d.Deny("sess_1")
	d.Deny("sess_2")
	for _, e := range logs.All() {
		if _, ok := e.ContextMap()[logctx.FieldName]; ok {
			t.Errorf("%q has a request_id without a request", e.Message)
		}
	}
	if logs.Len() != 1 {
		t.Fatalf("%d lines, want the one warning", logs.Len())
	}
}
