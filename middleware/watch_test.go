package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/middleware"
)

// revocations is an in-memory RevocationSource.
type revocations struct {
	mu      sync.Mutex
	denied  map[string]bool
	subs    map[int]func(string)
	nextSub int
}

func newRevocations() *revocations {
	return &revocations{denied: map[string]bool{}, subs: map[int]func(string){}}
}

func (r *revocations) Subscribe(fn func(string)) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextSub
	r.nextSub++
	r.subs[id] = fn
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs, id)
	}
}

func (r *revocations) Denied(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.denied[key]
}

func (r *revocations) revoke(key string) {
	r.mu.Lock()
	r.denied[key] = true
	var fns []func(string)
	for _, fn := range r.subs {
		fns = append(fns, fn)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(key)
	}
}

func (r *revocations) subscribers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// statusChecker answers a session's status from a map: "" is active.
type statusChecker struct {
	mu     sync.Mutex
	status map[string]error
	calls  int
	bySID  map[string]int
}

func (c *statusChecker) CheckSession(_ context.Context, claims *middleware.Claims) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.bySID == nil {
		c.bySID = map[string]int{}
	}
	c.bySID[claims.SessionID]++
	return c.status[claims.SessionID]
}

func (c *statusChecker) set(sid string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status[sid] = err
}

// waitDone waits for ctx to end and returns its cause. The deadline only
// keeps a broken watcher from hanging the test.
func waitDone(t *testing.T, ctx context.Context) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(testwait.Generous):
		t.Fatalf("the context is not done after %v", testwait.Generous)
		return nil
	}
}

func notDone(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := ctx.Err(); err != nil {
		t.Fatalf("the context is done: %v", context.Cause(ctx))
	}
}

func TestWatcherRevocationCancelsAtOnce(t *testing.T) {
	t.Parallel()
	src := newRevocations()
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Revocations: src, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_a"})
	defer cancel()
	other, cancelOther := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_b"})
	defer cancelOther()

	src.revoke("sess_a")
	cause := waitDone(t, ctx)
	if !errors.Is(cause, middleware.ErrSessionRevoked) {
		t.Fatalf("cause %v, want session-revoked", cause)
	}
	if status, reason, _ := middleware.Outcome(cause); status != 401 || reason != middleware.ReasonSessionRevoked {
		t.Fatalf("outcome %d %s", status, reason)
	}
	notDone(t, other)
}

func TestWatcherSessionRevokedBeforeTheWatchStarts(t *testing.T) {
	t.Parallel()
	src := newRevocations()
	src.revoke("sess_a") // between the request's check and the watch
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Revocations: src, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_a"})
	defer cancel()
	if !errors.Is(waitDone(t, ctx), middleware.ErrSessionRevoked) {
		t.Fatal("a session revoked before the watch was not caught")
	}
}

func TestWatcherRecheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer error
		ends   bool
	}{
		{"revoked status ends the watch", &middleware.Error{Reason: middleware.ReasonSessionRevoked, Message: "the session is ended"}, true},
		{"pending ends the watch", &middleware.Error{Reason: middleware.ReasonSessionPending}, true},
		{"status unavailable keeps it", &middleware.Error{Reason: middleware.ReasonSessionStatusUnavailable}, false},
		{"any other error keeps it", errors.New("network down"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := &statusChecker{status: map[string]error{}}
			w, err := middleware.NewWatcher(middleware.WatcherConfig{Sessions: sc, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_a"})
			defer cancel()
			sc.set("sess_a", tc.answer)
			if tc.ends {
				if cause := waitDone(t, ctx); cause != tc.answer {
					t.Fatalf("cause %v, want the check's answer", cause)
				}
				return
			}
			testwait.Eventually(t, "three re-checks at a 10ms interval", func() bool {
				sc.mu.Lock()
				defer sc.mu.Unlock()
				return sc.calls >= 3
			})
			notDone(t, ctx)
		})
	}
}

func TestWatcherChecksASessionOncePerInterval(t *testing.T) {
	t.Parallel()
	sc := &statusChecker{status: map[string]error{}}
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Sessions: sc, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var ctxs []context.Context
	for range 10 { // ten tabs of one session
		ctx, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_a"})
		defer cancel()
		ctxs = append(ctxs, ctx)
	}
	other, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_b"})
	defer cancel()
	testwait.Eventually(t, "six checks", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.calls >= 6
	})
	// Each sweep checks sess_a once and sess_b once, whatever the count of
	// watches.
	sc.mu.Lock()
	a, b := sc.bySID["sess_a"], sc.bySID["sess_b"]
	sc.mu.Unlock()
	if a > b+1 {
		t.Fatalf("sess_a (10 watches) checked %d times, sess_b (1 watch) %d times", a, b)
	}
	sc.set("sess_a", &middleware.Error{Reason: middleware.ReasonSessionRevoked})
	for _, ctx := range ctxs {
		waitDone(t, ctx) // one answer ends every watch of the session
	}
	notDone(t, other)
}

func TestWatcherReleasesWatches(t *testing.T) {
	t.Parallel()
	src := newRevocations()
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Revocations: src, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	parent, cancelParent := context.WithCancel(context.Background())
	_, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_a"})
	ctxB, _ := w.Watch(parent, &middleware.Claims{SessionID: "sess_b"})
	if w.Len() != 2 {
		t.Fatalf("Len %d, want 2", w.Len())
	}
	cancel()
	if w.Len() != 1 {
		t.Fatalf("Len %d after cancel, want 1", w.Len())
	}
	cancelParent() // the work's own context ends
	waitDone(t, ctxB)
	testwait.Eventually(t, "no watch left after the parent was cancelled", func() bool { return w.Len() == 0 })
	w.Close()
	if src.subscribers() != 0 {
		t.Fatal("Close did not unsubscribe")
	}
	// Nothing is watched after Close.
	ctx, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: "sess_c"})
	defer cancel()
	src.revoke("sess_c")
	notDone(t, ctx)
}

// TestWatcherRunsNoGoroutineWhenIdle (not parallel: it counts goroutines).
func TestWatcherRunsNoGoroutineWhenIdle(t *testing.T) {
	sc := &statusChecker{status: map[string]error{}}
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Sessions: sc, Revocations: newRevocations(), Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	base := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for _, sid := range []string{"sess_a", "sess_b", "sess_c"} {
		_, cancel := w.Watch(context.Background(), &middleware.Claims{SessionID: sid})
		cancels = append(cancels, cancel)
	}
	for _, c := range cancels {
		c()
	}
	testwait.Eventually(t, fmt.Sprintf("the goroutines to fall back to the %d before the watches", base), func() bool {
		return runtime.NumGoroutine() <= base
	})
}

func TestWatcherSetInterval(t *testing.T) {
	t.Parallel()
	w, err := middleware.NewWatcher(middleware.WatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Interval() != middleware.DefaultRecheckInterval {
		t.Fatalf("default interval %v", w.Interval())
	}
	w.SetInterval(time.Second)
	if w.Interval() != time.Second {
		t.Fatalf("interval %v", w.Interval())
	}
	if _, err := middleware.NewWatcher(middleware.WatcherConfig{Interval: -1}); err == nil {
		t.Fatal("a negative interval was accepted")
	}
}

// ctxChecker records the request id of the contexts it is called with and
// answers err.
type ctxChecker struct {
	err error
	ids chan string
}

func (c *ctxChecker) CheckSession(ctx context.Context, _ *middleware.Claims) error {
	select {
	case c.ids <- logctx.RequestID(ctx):
	default:
	}
	return c.err
}

// TestWatcherRecheckCarriesTheRequestID: a re-check runs on behalf of the
// request that opened the connection: the checker gets a context with that
// request's id (its own log lines carry it), and so does the watcher's
// "re-check undecided" line.
func TestWatcherRecheckCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	sc := &ctxChecker{err: errors.New("status unavailable"), ids: make(chan string, 1)}
	w, err := middleware.NewWatcher(middleware.WatcherConfig{Sessions: sc, Interval: 5 * time.Millisecond, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The request's context ends; the connection it opened is watched on
	// a context of its own that carries only the id.
	ctx, cancel := w.Watch(logctx.WithRequestID(context.Background(), "req-9"), &middleware.Claims{SessionID: "sess_a"})
	defer cancel()
	select {
	case id := <-sc.ids:
		if id != "req-9" {
			t.Errorf("the re-check's context has request id %q, want req-9", id)
		}
	case <-time.After(testwait.Generous):
		t.Fatal("no re-check")
	}
	testwait.Eventually(t, "a re-check undecided line", func() bool {
		return logs.FilterMessageSnippet("re-check undecided").Len() > 0
	})
	for _, e := range logs.FilterMessageSnippet("re-check undecided").All() {
		if got := e.ContextMap()[logctx.FieldName]; got != "req-9" {
			t.Errorf("%q has request_id %v, want req-9", e.Message, got)
		}
	}
	notDone(t, ctx)
}
