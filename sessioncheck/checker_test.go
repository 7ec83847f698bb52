package sessioncheck_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) }

// fakeLookup answers from a map and counts calls; gate, when set, blocks
// every call until closed.
type fakeLookup struct {
	mu       sync.Mutex
	statuses map[string]string
	err      error
	calls    atomic.Int64
	gate     chan struct{}
	// entered, when set, gets a value (if it has room) as each lookup
	// starts.
	entered chan struct{}
}

func (f *fakeLookup) SessionStatus(ctx context.Context, sid string) (string, error) {
	f.calls.Add(1)
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	st, ok := f.statuses[sid]
	if !ok {
		return "", fmt.Errorf("lookup: %w", sessioncheck.ErrSessionNotFound)
	}
	return st, nil
}

func (f *fakeLookup) set(sid, status string) {
	f.mu.Lock()
	f.statuses[sid] = status
	f.mu.Unlock()
}

type env struct {
	clk  *clock
	look *fakeLookup
	deny *sessioncheck.DenyList
	svc  *sessioncheck.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := newClock()
	look := &fakeLookup{statuses: map[string]string{"sess_a": "active", "sess_p": "pending", "sess_r": "revoked"}}
	deny := sessioncheck.NewDenyList(time.Hour, 0, clk.Now)
	svc, err := sessioncheck.New(sessioncheck.Config{Lookup: look, DenyList: deny, TTL: 10 * time.Second, Now: clk.Now, BreakerFailures: 3, BreakerCooldown: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{clk: clk, look: look, deny: deny, svc: svc}
}

func (e *env) checker(t *testing.T, mode sessioncheck.Mode, onErr sessioncheck.OnError) middleware.SessionChecker {
	t.Helper()
	c, err := e.svc.Checker(mode, onErr, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func check(c middleware.SessionChecker, sid string) error {
	return c.CheckSession(context.Background(), &middleware.Claims{SessionID: sid, Subject: "user_1"})
}

func reasonOf(err error) middleware.Reason {
	if err == nil {
		return ""
	}
	_, r, _ := middleware.Outcome(err)
	return r
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	for _, mode := range []sessioncheck.Mode{sessioncheck.Cached, sessioncheck.Strict} {
		e := newEnv(t)
		c := e.checker(t, mode, sessioncheck.Deny)
		for sid, want := range map[string]middleware.Reason{
			"sess_a":       "",
			"sess_p":       middleware.ReasonSessionPending,
			"sess_r":       middleware.ReasonSessionRevoked,
			"sess_unknown": middleware.ReasonSessionRevoked, // 404: the session does not exist
		} {
			if got := reasonOf(check(c, sid)); got != want {
				t.Errorf("mode %d %s: %q, want %q", mode, sid, got, want)
			}
		}
		// Final statuses went on the deny list; pending did not.
		if !e.deny.Denied("sess_r") || !e.deny.Denied("sess_unknown") || e.deny.Denied("sess_p") {
			t.Errorf("mode %d: deny list after lookups is wrong", mode)
		}
	}
}

func TestRevokedMessageNamesTheStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.set("sess_e", "expired")
	err := check(e.checker(t, sessioncheck.Strict, sessioncheck.Deny), "sess_e")
	var me *middleware.Error
	if !errors.As(err, &me) || me.Message != "the session is expired" {
		t.Fatalf("err = %v", err)
	}
}

func TestPendingAllowedByRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.svc.Checker(sessioncheck.Strict, sessioncheck.Deny, true)
	if err := check(c, "sess_p"); err != nil {
		t.Fatalf("pending on an allow_pending route: %v", err)
	}
}

func TestOffConsultsOnlyTheDenyList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.checker(t, sessioncheck.Off, sessioncheck.Deny)
	if err := check(c, "sess_r"); err != nil {
		t.Fatalf("off mode made a decision from Clerk: %v", err)
	}
	e.deny.Deny("sess_a")
	if reasonOf(check(c, "sess_a")) != middleware.ReasonSessionRevoked {
		t.Fatal("off mode ignored the deny list")
	}
	if n := e.look.calls.Load(); n != 0 {
		t.Fatalf("off mode made %d lookups", n)
	}
}

func TestCachedModeCachesForTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.checker(t, sessioncheck.Cached, sessioncheck.Deny)
	for i := 0; i < 5; i++ {
		if err := check(c, "sess_a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.look.calls.Load(); n != 1 {
		t.Fatalf("lookups within the TTL = %d, want 1", n)
	}
	e.look.set("sess_a", "revoked") // revoked at Clerk; the cache still says active
	e.clk.Advance(9 * time.Second)
	if err := check(c, "sess_a"); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	e.clk.Advance(2 * time.Second)
	if reasonOf(check(c, "sess_a")) != middleware.ReasonSessionRevoked {
		t.Fatal("after the TTL the revocation was not seen")
	}
	if n := e.look.calls.Load(); n != 2 {
		t.Fatalf("lookups = %d, want 2", n)
	}
}

func TestStrictModeLooksUpEveryTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.checker(t, sessioncheck.Strict, sessioncheck.Deny)
	for i := 0; i < 4; i++ {
		if err := check(c, "sess_a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.look.calls.Load(); n != 4 {
		t.Fatalf("strict lookups = %d, want 4", n)
	}
}

func TestDenyListBeatsTheCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.checker(t, sessioncheck.Cached, sessioncheck.Deny)
	if err := check(c, "sess_a"); err != nil {
		t.Fatal(err)
	}
	e.deny.Deny("sess_a") // a webhook or an admin revoke
	if reasonOf(check(c, "sess_a")) != middleware.ReasonSessionRevoked {
		t.Fatal("a cached active status beat the deny list")
	}
}

func TestThousandConcurrentRequestsMakeOneLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.gate, e.look.entered = make(chan struct{}), make(chan struct{}, 1)
	c := e.checker(t, sessioncheck.Cached, sessioncheck.Deny)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- check(c, "sess_a")
		}()
	}
	// Let the lookup finish only once it has been called; every request is
	// either waiting on it or will hit the cache.
	testwait.Receive(t, e.look.entered, "the lookup")
	close(e.look.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.look.calls.Load(); n != 1 {
		t.Fatalf("lookups for 1,000 concurrent requests = %d, want 1", n)
	}
}

func TestLookupFailureFollowsOnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.err = errors.New("backend api: 503")
	deny := e.checker(t, sessioncheck.Strict, sessioncheck.Deny)
	allow := e.checker(t, sessioncheck.Strict, sessioncheck.Allow)
	if reasonOf(check(deny, "sess_a")) != middleware.ReasonSessionStatusUnavailable {
		t.Fatal("deny on error did not answer session-status-unavailable")
	}
	if err := check(allow, "sess_a"); err != nil {
		t.Fatalf("allow on error: %v", err)
	}
	if e.svc.Stats().AllowedOnError != 1 {
		t.Fatalf("AllowedOnError = %d", e.svc.Stats().AllowedOnError)
	}
	// The deny list still wins on an allow route.
	e.deny.Deny("sess_a")
	if reasonOf(check(allow, "sess_a")) != middleware.ReasonSessionRevoked {
		t.Fatal("allow-on-error let a denied session through")
	}
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.err = errors.New("backend api: 500")
	c := e.checker(t, sessioncheck.Strict, sessioncheck.Deny)
	for i := 0; i < 10; i++ {
		_ = check(c, "sess_a")
	}
	if n := e.look.calls.Load(); n != 3 {
		t.Fatalf("lookups before the breaker opened = %d, want 3", n)
	}
	if !e.svc.Stats().BreakerOpen {
		t.Fatal("breaker not open")
	}
	// After the cooldown one trial call goes through; it fails, the breaker
	// opens again for longer.
	e.clk.Advance(6 * time.Second)
	_ = check(c, "sess_a")
	_ = check(c, "sess_a")
	if n := e.look.calls.Load(); n != 4 {
		t.Fatalf("lookups after the cooldown = %d, want 4 (one trial)", n)
	}
	// Clerk recovers; after the doubled cooldown the trial succeeds and the
	// breaker closes.
	e.look.mu.Lock()
	e.look.err = nil
	e.look.mu.Unlock()
	e.clk.Advance(6 * time.Second)
	if err := check(c, "sess_a"); err == nil {
		t.Fatal("the breaker let a call through before the doubled cooldown")
	}
	e.clk.Advance(5 * time.Second)
	if err := check(c, "sess_a"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if e.svc.Stats().BreakerOpen {
		t.Fatal("breaker still open after a successful trial")
	}
}

func TestRateLimitOpensTheBreakerForRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.err = &sessioncheck.RateLimitedError{RetryAfter: 30 * time.Second, Err: errors.New("429")}
	c := e.checker(t, sessioncheck.Strict, sessioncheck.Deny)
	_ = check(c, "sess_a")
	e.clk.Advance(20 * time.Second)
	_ = check(c, "sess_a")
	if n := e.look.calls.Load(); n != 1 {
		t.Fatalf("lookups within Retry-After = %d, want 1", n)
	}
}

func TestWaiterCancellationDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.look.gate, e.look.entered = make(chan struct{}), make(chan struct{}, 1)
	c := e.checker(t, sessioncheck.Cached, sessioncheck.Deny)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- c.CheckSession(ctx, &middleware.Claims{SessionID: "sess_a"}) }()
	testwait.Receive(t, e.look.entered, "the lookup")
	second := make(chan error, 1)
	go func() { second <- check(c, "sess_a") }()
	cancel()
	if reasonOf(<-first) != middleware.ReasonSessionStatusUnavailable {
		t.Fatal("cancelled waiter")
	}
	close(e.look.gate)
	if err := <-second; err != nil {
		t.Fatalf("the other waiter failed: %v", err)
	}
}

func TestDenyListExpiryAndBound(t *testing.T) {
	t.Parallel()
	clk := newClock()
	d := sessioncheck.NewDenyList(time.Minute, 3, clk.Now)
	d.Deny("sess_1")
	clk.Advance(10 * time.Second)
	d.Deny("sess_2")
	d.Deny("sess_3")
	d.Deny("sess_4") // full: sess_1 expires soonest and goes
	if d.Denied("sess_1") || !d.Denied("sess_4") || d.Evictions() != 1 {
		t.Fatalf("bound: %v %v %d", d.Denied("sess_1"), d.Denied("sess_4"), d.Evictions())
	}
	clk.Advance(61 * time.Second)
	if d.Denied("sess_2") {
		t.Fatal("an entry outlived its TTL")
	}
	var hooked []string
	d.OnDeny(func(sid string, _ time.Time) { hooked = append(hooked, sid) })
	d.DenyUntil("sess_5", clk.Now().Add(time.Second))
	d.DenyUntil("sess_6", clk.Now().Add(-time.Second)) // already expired: ignored
	if len(hooked) != 1 || !d.Denied("sess_5") || d.Denied("sess_6") {
		t.Fatalf("hooks %v", hooked)
	}
}
