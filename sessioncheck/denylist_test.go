package sessioncheck_test

import (
	"testing"
	"time"

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
