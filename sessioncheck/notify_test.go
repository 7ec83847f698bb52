package sessioncheck_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/sessioncheck"
)

func TestDenyListReportsEveryRevocation(t *testing.T) {
	t.Parallel()
	d := sessioncheck.NewDenyList(time.Hour, 0, nil)
	var mu sync.Mutex
	var got []string
	unsubscribe := d.Subscribe(func(sid string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, sid)
	})
	d.Deny("sess_admin")                                   // admin revoke, webhook, inactive status
	d.DenyUntil("sess_until", time.Now().Add(time.Minute)) // a resync keeping an expiry
	d.Apply("sess_remote", time.Now().Add(time.Minute))    // another replica's, through Redis
	d.Apply("sess_expired", time.Now().Add(-time.Second))  // already over: not a revocation
	unsubscribe()
	unsubscribe() // idempotent
	d.Deny("sess_after")
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"sess_admin", "sess_until", "sess_remote"}; !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}

func TestDenyListSubscribersAreIndependent(t *testing.T) {
	t.Parallel()
	d := sessioncheck.NewDenyList(time.Hour, 0, nil)
	var a, b int
	stopA := d.Subscribe(func(string) { a++ })
	d.Subscribe(func(string) { b++ })
	d.Deny("sess_1")
	stopA()
	d.Deny("sess_2")
	if a != 1 || b != 2 {
		t.Fatalf("a %d b %d, want 1 and 2", a, b)
	}
}
