package sessioncheck_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// hangKey marks a request whose lookup hangs until its context ends.
type hangKey struct{}

// ctxLookup answers "active", except for a lookup whose context carries
// hangKey: it reports that it started and then waits for its context to
// end, and fails with the context's error, as an HTTP client does.
// failing, while set, makes every other lookup fail like a Clerk outage.
type ctxLookup struct {
	calls   atomic.Int64
	started chan struct{}
	failing atomic.Bool
}

func (l *ctxLookup) SessionStatus(ctx context.Context, sid string) (string, error) {
	l.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("clerkapi: GET /v1/sessions/{id}: %w", err)
	}
	if ctx.Value(hangKey{}) != nil {
		l.started <- struct{}{}
		<-ctx.Done()
		return "", fmt.Errorf("clerkapi: GET /v1/sessions/{id}: %w", ctx.Err())
	}
	if l.failing.Load() {
		return "", errors.New("clerkapi: GET /v1/sessions/{id}: 502")
	}
	return "active", nil
}

func newCancelEnv(t *testing.T, timeout time.Duration) (*ctxLookup, *sessioncheck.Service, *clock) {
	t.Helper()
	clk := newClock()
	look := &ctxLookup{started: make(chan struct{})}
	svc, err := sessioncheck.New(sessioncheck.Config{
		Lookup: look, DenyList: sessioncheck.NewDenyList(time.Hour, 0, clk.Now), Now: clk.Now,
		BreakerFailures: 3, BreakerCooldown: 5 * time.Second, LookupTimeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return look, svc, clk
}

// cancelDuringLookup makes a request whose client goes away while its
// lookup is in flight (or, if no lookup starts, just the request).
func cancelDuringLookup(look *ctxLookup, c middleware.SessionChecker) error {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), hangKey{}, true))
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.CheckSession(ctx, &middleware.Claims{SessionID: "sess_a"}) }()
	select {
	case <-look.started:
		cancel()
		return <-errc
	case err := <-errc:
		return err
	}
}

func mustChecker(t *testing.T, svc *sessioncheck.Service, mode sessioncheck.Mode) middleware.SessionChecker {
	t.Helper()
	c, err := svc.Checker(mode, sessioncheck.Deny, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that goes away before its strict lookup is answered says
// nothing about Clerk: however many do, the breaker stays closed and the
// next requests, strict and cached, are looked up and let through.
func TestCallerCancellationIsNotABackendFailure(t *testing.T) {
	t.Parallel()
	const n = 5 // above BreakerFailures
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, look *ctxLookup, c middleware.SessionChecker) error
	}{
		{"cancelled before the lookup", func(t *testing.T, _ *ctxLookup, c middleware.SessionChecker) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return c.CheckSession(ctx, &middleware.Claims{SessionID: "sess_a"})
		}},
		{"own deadline passed before the lookup", func(t *testing.T, _ *ctxLookup, c middleware.SessionChecker) error {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			return c.CheckSession(ctx, &middleware.Claims{SessionID: "sess_a"})
		}},
		{"cancelled during the lookup", func(t *testing.T, look *ctxLookup, c middleware.SessionChecker) error {
			return cancelDuringLookup(look, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			look, svc, _ := newCancelEnv(t, 0)
			strict := mustChecker(t, svc, sessioncheck.Strict)
			for i := 0; i < n; i++ {
				if r := reasonOf(tc.end(t, look, strict)); r != middleware.ReasonSessionStatusUnavailable {
					t.Fatalf("request %d: reason %q, want %q", i, r, middleware.ReasonSessionStatusUnavailable)
				}
			}
			st := svc.Stats()
			if st.BreakerOpen || st.LookupErrors != 0 {
				t.Errorf("after %d cancelled requests: breaker open %v, lookup errors %d; want closed, 0", n, st.BreakerOpen, st.LookupErrors)
			}
			for _, mode := range []sessioncheck.Mode{sessioncheck.Cached, sessioncheck.Strict} {
				if err := check(mustChecker(t, svc, mode), "sess_a"); err != nil {
					t.Errorf("mode %d: a healthy request after the cancelled ones: %v", mode, err)
				}
			}
		})
	}
}

// The half-open trial call decides the breaker; a trial whose client goes
// away decides nothing and must not keep the breaker shut.
func TestCancelledTrialDoesNotKeepTheBreakerOpen(t *testing.T) {
	t.Parallel()
	look, svc, clk := newCancelEnv(t, 0)
	strict := mustChecker(t, svc, sessioncheck.Strict)
	look.failing.Store(true)
	for i := 0; i < 3; i++ {
		_ = check(strict, "sess_a")
	}
	if !svc.Stats().BreakerOpen {
		t.Fatal("breaker not open after three failures")
	}
	look.failing.Store(false)
	clk.Advance(6 * time.Second) // past the cooldown: the next call is the trial

	_ = cancelDuringLookup(look, strict)

	if err := check(strict, "sess_a"); err != nil {
		t.Fatalf("the request after a cancelled trial: %v", err)
	}
	if svc.Stats().BreakerOpen {
		t.Fatal("breaker still open after a successful trial")
	}
}

// The lookup's own timeout is the Backend API being slow: it counts.
func TestLookupTimeoutCountsAsBackendFailure(t *testing.T) {
	t.Parallel()
	look, svc, _ := newCancelEnv(t, time.Millisecond)
	strict := mustChecker(t, svc, sessioncheck.Strict)
	ctx := context.WithValue(context.Background(), hangKey{}, true)
	for i := 0; i < 3; i++ {
		go func() { <-look.started }()
		if r := reasonOf(strict.CheckSession(ctx, &middleware.Claims{SessionID: "sess_a"})); r != middleware.ReasonSessionStatusUnavailable {
			t.Fatalf("reason %q", r)
		}
	}
	if st := svc.Stats(); !st.BreakerOpen || st.LookupErrors != 3 {
		t.Fatalf("breaker open %v, lookup errors %d; want open, 3", st.BreakerOpen, st.LookupErrors)
	}
}

// A cached-mode lookup is shared by the requests for one session that
// arrive while it is in flight. The request that started it going away
// ends neither the lookup nor the others' wait: the one that joined gets
// the status, which is cached, and the breaker hears nothing of the
// cancellation.
func TestCachedLookupOutlivesTheFirstCallersCancellation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		e.look.gate = make(chan struct{})
		c := e.checker(t, sessioncheck.Cached, sessioncheck.Deny)
		firstCtx, cancelFirst := context.WithCancel(context.Background())
		defer cancelFirst()
		first := make(chan error, 1)
		go func() { first <- c.CheckSession(firstCtx, &middleware.Claims{SessionID: "sess_a"}) }()
		synctest.Wait() // the first request's lookup is in flight
		second := make(chan error, 1)
		go func() { second <- check(c, "sess_a") }()
		synctest.Wait() // the second request has joined it
		if n := e.look.calls.Load(); n != 1 {
			t.Fatalf("%d lookups for two requests of one session, want 1 shared", n)
		}
		cancelFirst()
		if r := reasonOf(<-first); r != middleware.ReasonSessionStatusUnavailable {
			t.Fatalf("the cancelled request: reason %q, want %q", r, middleware.ReasonSessionStatusUnavailable)
		}
		synctest.Wait()
		select {
		case err := <-second:
			t.Fatalf("the request that joined was answered (%v) when the first one was cancelled; want it to wait for the lookup", err)
		default:
		}
		close(e.look.gate)
		if err := <-second; err != nil {
			t.Fatalf("the request that joined: %v, want the shared lookup's active status", err)
		}
		st := e.svc.Stats()
		if st.Lookups != 1 || st.LookupErrors != 0 || st.BreakerOpen || st.Abandoned != 1 {
			t.Errorf("lookups %d, lookup errors %d, breaker open %v, abandoned %d; want 1, 0, false, 1",
				st.Lookups, st.LookupErrors, st.BreakerOpen, st.Abandoned)
		}
		// The status was cached for the next request.
		if err := check(c, "sess_a"); err != nil || e.look.calls.Load() != 1 {
			t.Errorf("the next request: %v after %d lookups, want a cache hit", err, e.look.calls.Load())
		}
	})
}
