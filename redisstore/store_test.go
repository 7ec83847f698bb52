package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/redisstore"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/webhook"
)

// replica is the part of a sessiongate replica a Store works with.
type replica struct {
	deny  *sessioncheck.DenyList
	store *redisstore.Store
}

func newReplica(t testing.TB, url string, mutate func(*redisstore.Config)) *replica {
	t.Helper()
	deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
	cfg := redisstore.Config{
		URL: url, DenyList: deny, ShareRevocations: true,
		PingInterval: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := redisstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &replica{deny: deny, store: s}
}

func (r *replica) waitSynced(t testing.TB) {
	t.Helper()
	testwait.Eventually(t, "the store to be in step with Redis", r.store.Synced)
}

func rawClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRevocationReachesOtherReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var delays atomic.Int64
	a := newReplica(t, srv.URL(), nil)
	b := newReplica(t, srv.URL(), func(c *redisstore.Config) {
		c.OnRemote = func(string, time.Duration) { delays.Add(1) }
	})
	a.waitSynced(t)
	b.waitSynced(t)

	a.deny.Deny("sess_fromA")
	testwait.Eventually(t, "B to deny what A revoked", func() bool { return b.deny.Denied("sess_fromA") })
	testwait.Eventually(t, "OnRemote to run", func() bool { return delays.Load() == 1 })
	// The expiry travels with the revocation: B keeps A's, not one of its own.
	if ea, eb := a.deny.Entries()["sess_fromA"], b.deny.Entries()["sess_fromA"]; !ea.Truncate(time.Millisecond).Equal(eb) {
		t.Fatalf("expiry on A %v, on B %v", ea, eb)
	}
	// In Redis with a TTL matching the expiry.
	raw := rawClient(t, srv)
	ttl := raw.PTTL(context.Background(), "sessiongate:deny:sess_fromA").Val()
	if ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL in Redis %v, want about revocation.ttl (1h)", ttl)
	}
	// B applied it without publishing it again.
	b.deny.Deny("sess_fromB")
	testwait.Eventually(t, "A to deny what B revoked", func() bool { return a.deny.Denied("sess_fromB") })
	// (B counts its write once its pipeline returns, which may be after A
	// got the message.)
	testwait.Eventually(t, "B to count its write", func() bool { return b.store.Stats().Published == 1 })
	if pa, pb := a.store.Stats().Published, b.store.Stats().Published; pa != 1 || pb != 1 {
		t.Fatalf("published by A %d, by B %d: a replica published a revocation it received", pa, pb)
	}
}

func TestLaterExpiryIsKept(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newReplica(t, srv.URL(), nil)
	b := newReplica(t, srv.URL(), nil)
	a.waitSynced(t)
	b.waitSynced(t)
	raw := rawClient(t, srv)
	late := time.Now().Add(50 * time.Minute).Truncate(time.Millisecond)
	a.deny.DenyUntil("sess_x", late)
	testwait.Eventually(t, "B to apply", func() bool { return b.deny.Denied("sess_x") })
	b.deny.DenyUntil("sess_x", time.Now().Add(10*time.Minute)) // earlier: must not shorten Redis's copy
	b.deny.DenyUntil("sess_y", time.Now().Add(10*time.Minute)) // a marker: written after sess_x's attempt
	testwait.Eventually(t, "A to apply the marker", func() bool { return a.deny.Denied("sess_y") })
	if v := raw.Get(context.Background(), "sessiongate:deny:sess_x").Val(); v != strconv.FormatInt(late.UnixMilli(), 10) {
		t.Fatalf("Redis holds %s, want the later expiry %d", v, late.UnixMilli())
	}
}

func TestReplicaStartedLaterLoadsTheSet(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newReplica(t, srv.URL(), nil)
	a.waitSynced(t)
	for i := range 1500 { // more than one SCAN page
		a.deny.Deny(fmt.Sprintf("sess_early%d", i))
	}
	testwait.Eventually(t, "A to write everything", func() bool { return a.store.Stats().Published == 1500 })
	late := newReplica(t, srv.URL(), nil)
	if late.store.NotReady() == "" && !late.store.Synced() {
		t.Fatal("ready before the shared set was loaded")
	}
	late.waitSynced(t)
	if late.store.NotReady() != "" {
		t.Fatalf("not ready once synced: %q", late.store.NotReady())
	}
	for i := range 1500 {
		if !late.deny.Denied(fmt.Sprintf("sess_early%d", i)) {
			t.Fatalf("sess_early%d missing on the late replica", i)
		}
	}
}

func TestRedisRestartLosesNoRevocation(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newReplica(t, srv.URL(), nil)
	b := newReplica(t, srv.URL(), nil)
	a.waitSynced(t)
	b.waitSynced(t)
	a.deny.Deny("sess_before")
	testwait.Eventually(t, "B to apply", func() bool { return b.deny.Denied("sess_before") })

	srv.Stop()
	testwait.Eventually(t, "both to notice", func() bool { return !a.store.Connected() && !b.store.Connected() })
	start := time.Now()
	a.deny.Deny("sess_during") // Redis away: kept locally, returns at once
	// Generous: the bound tells "at once" from waiting out Redis's dial and
	// read timeouts.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a revocation waited %v on Redis", d)
	}
	if a.store.NotReady() != "" {
		t.Fatalf("not required: ready without Redis, got %q", a.store.NotReady())
	}

	srv.Restart() // empty
	a.waitSynced(t)
	b.waitSynced(t)
	testwait.Eventually(t, "B to get what A denied while Redis was away", func() bool { return b.deny.Denied("sess_during") })
	raw := rawClient(t, srv)
	for _, sid := range []string{"sess_before", "sess_during"} {
		if raw.Exists(context.Background(), "sessiongate:deny:"+sid).Val() != 1 {
			t.Fatalf("%s was not written back to the restarted Redis", sid)
		}
	}
	b.deny.Deny("sess_after")
	testwait.Eventually(t, "A to apply a revocation made after the restart", func() bool { return a.deny.Denied("sess_after") })
	if st := a.store.Stats(); st.Disconnects == 0 || st.Resyncs < 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnreachableAtStartup(t *testing.T) {
	t.Parallel()
	bin := redistest.Binary(t)
	_ = bin
	port := redistest.FreePort(t)
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	relaxed := newReplica(t, url, nil)
	required := newReplica(t, url, func(c *redisstore.Config) { c.Required = true })
	testwait.Eventually(t, "a replica without Redis to be ready", func() bool { return relaxed.store.NotReady() == "" })
	if msg := required.store.NotReady(); msg != "redis required and not synced" {
		t.Fatalf("required: %q", msg)
	}
	relaxed.deny.Deny("sess_offline")

	redistest.StartOn(t, port)
	required.waitSynced(t)
	relaxed.waitSynced(t)
	if msg := required.store.NotReady(); msg != "" {
		t.Fatalf("required once synced: %q", msg)
	}
	testwait.Eventually(t, "the revocation made before Redis existed to spread", func() bool { return required.deny.Denied("sess_offline") })
}

// countingLookup answers "active" slowly and counts calls.
type countingLookup struct {
	calls  atomic.Int64
	delay  time.Duration
	status string
	err    error
	// entered, when set, gets a value (if it has room) as each call
	// starts.
	entered chan struct{}
}

func (l *countingLookup) SessionStatus(ctx context.Context, sid string) (string, error) {
	l.calls.Add(1)
	if l.entered != nil {
		select {
		case l.entered <- struct{}{}:
		default:
		}
	}
	select {
	case <-time.After(l.delay):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return l.status, l.err
}

func TestSharedStatusCacheOneLookup(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clerk := &countingLookup{delay: 50 * time.Millisecond, status: "active"}
	var lookups []sessioncheck.StatusLookup
	for range 3 {
		r := newReplica(t, srv.URL(), nil)
		r.waitSynced(t)
		lookups = append(lookups, r.store.StatusLookup(clerk, 10*time.Second))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() {
			st, err := lookups[i%3].SessionStatus(context.Background(), "sess_shared")
			if err == nil && st != "active" {
				err = fmt.Errorf("status %q", st)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := clerk.calls.Load(); n != 1 {
		t.Fatalf("%d Backend API calls for one session across 3 replicas, want 1", n)
	}
	// A session Clerk does not know is shared too.
	gone := &countingLookup{status: "", err: fmt.Errorf("%w: 404", sessioncheck.ErrSessionNotFound)}
	for i := range 3 {
		l := newReplica(t, srv.URL(), nil)
		l.waitSynced(t)
		_, err := l.store.StatusLookup(gone, 10*time.Second).SessionStatus(context.Background(), "sess_gone")
		if !errors.Is(err, sessioncheck.ErrSessionNotFound) {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if n := gone.calls.Load(); n != 1 {
		t.Fatalf("%d calls for an unknown session, want 1", n)
	}
}

func TestSharedStatusCacheDegrades(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv.URL(), func(c *redisstore.Config) { c.CacheLockTTL = 300 * time.Millisecond })
	r.waitSynced(t)
	clerk := &countingLookup{status: "active"}
	l := r.store.StatusLookup(clerk, 10*time.Second)
	raw := rawClient(t, srv)

	// A lock held by a replica that never answers: wait at most the lock
	// TTL, then ask Clerk.
	raw.Set(context.Background(), "sessiongate:lock:sess_stuck", "someone-else", time.Minute)
	start := time.Now()
	if st, err := l.SessionStatus(context.Background(), "sess_stuck"); err != nil || st != "active" {
		t.Fatalf("lost lock: %q %v", st, err)
	}
	// Generous above: the bound tells the lock TTL from the lookup's 10 s.
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("waited %v for a stuck lock, want about the lock TTL (300ms)", d)
	}
	// A winner whose lookup fails releases the lock at once: the waiters
	// ask Clerk themselves rather than wait.
	failing := &countingLookup{delay: 50 * time.Millisecond, err: errors.New("clerk is down"), entered: make(chan struct{}, 1)}
	lf := r.store.StatusLookup(failing, 10*time.Second)
	r2 := newReplica(t, srv.URL(), func(c *redisstore.Config) { c.CacheLockTTL = 5 * time.Second })
	r2.waitSynced(t)
	lf2 := r2.store.StatusLookup(failing, 10*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = lf.SessionStatus(context.Background(), "sess_fail") })
	<-failing.entered // the first one holds the lock and asks Clerk
	start = time.Now()
	if _, err := lf2.SessionStatus(context.Background(), "sess_fail"); err == nil {
		t.Fatal("a failed lookup succeeded")
	}
	// Generous: the bound tells "at once" from the 5 s lock TTL.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the waiter waited %v after the winner failed", d)
	}
	wg.Wait()

	// Redis gone: plain lookups, no errors.
	srv.Stop()
	testwait.Eventually(t, "the store to notice", func() bool { return !r.store.Connected() })
	before := clerk.calls.Load()
	for range 3 {
		if st, err := l.SessionStatus(context.Background(), "sess_nocache"); err != nil || st != "active" {
			t.Fatalf("Redis down: %q %v", st, err)
		}
	}
	if clerk.calls.Load()-before != 3 {
		t.Fatal("lookups did not go to Clerk while Redis was away")
	}
}

func TestWebhookSeenAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newReplica(t, srv.URL(), nil)
	b := newReplica(t, srv.URL(), nil)
	a.waitSynced(t)
	b.waitSynced(t)
	sa, sb := a.store.Seen(nil), b.store.Seen(nil)
	if !sa.Claim("msg_1", time.Minute) || sb.Claim("msg_1", time.Minute) || sa.Claim("msg_1", time.Minute) {
		t.Fatal("a message id was claimed twice across replicas")
	}
	if b.store.Stats().WebhookDuplicates != 1 {
		t.Fatalf("stats %+v", b.store.Stats())
	}
	srv.Stop()
	testwait.Eventually(t, "the store to notice", func() bool { return !a.store.Connected() })
	if !sa.Claim("msg_2", time.Minute) || sa.Claim("msg_2", time.Minute) {
		t.Fatal("without Redis the local Seen must decide")
	}
	if sa.Claim("msg_1", time.Minute) {
		t.Fatal("a message this replica saw before the outage was claimed again")
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	t.Parallel()
	deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
	_, err := redisstore.New(redisstore.Config{URL: "redis+sentinel://:hunter22@s1:26379", DenyList: deny})
	if err == nil || !strings.Contains(err.Error(), "master_name") || strings.Contains(err.Error(), "hunter22") {
		t.Fatalf("%v", err)
	}
}

// TestSharedStatusCacheFallbackCarriesTheRequestID: a shared status cache
// that cannot answer (here, a key of the wrong type) logs that it asks
// Clerk directly with the request_id of the request being served.
func TestSharedStatusCacheFallbackCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	core, logs := observer.New(zap.DebugLevel)
	r := newReplica(t, srv.URL(), func(c *redisstore.Config) { c.Logger = zap.New(core) })
	r.waitSynced(t)
	raw := rawClient(t, srv)
	if err := raw.LPush(context.Background(), "sessiongate:status:sess_wrongtype", "x").Err(); err != nil {
		t.Fatal(err)
	}
	l := r.store.StatusLookup(&countingLookup{status: "active"}, 10*time.Second)
	ctx := logctx.WithRequestID(context.Background(), "req-3")
	if st, err := l.SessionStatus(ctx, "sess_wrongtype"); err != nil || st != "active" {
		t.Fatalf("%q %v, want Clerk's answer", st, err)
	}
	lines := logs.FilterMessageSnippet("asking Clerk directly").All()
	if len(lines) != 1 {
		t.Fatalf("%d fallback lines, want 1", len(lines))
	}
	if got := lines[0].ContextMap()[logctx.FieldName]; got != "req-3" {
		t.Errorf("the fallback line has request_id %v, want req-3", got)
	}
}

// TestWebhookSeenFallbackCarriesTheRequestID: when Redis refuses the claim
// of a webhook's message id (here it is out of memory), the warning that
// the replica decides locally carries the webhook request's request_id.
func TestWebhookSeenFallbackCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	core, logs := observer.New(zap.WarnLevel)
	r := newReplica(t, srv.URL(), func(c *redisstore.Config) { c.Logger = zap.New(core) })
	r.waitSynced(t)
	raw := rawClient(t, srv)
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := raw.ConfigSet(context.Background(), kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	seen, ok := r.store.Seen(nil).(webhook.ContextSeen)
	if !ok {
		t.Fatal("the shared Seen does not take the request's context")
	}
	ctx := logctx.WithRequestID(context.Background(), "req-8")
	if !seen.ClaimContext(ctx, "msg_oom", time.Minute) || seen.ClaimContext(ctx, "msg_oom", time.Minute) {
		t.Fatal("the local fallback did not de-duplicate")
	}
	lines := logs.FilterMessageSnippet("webhook de-duplication unavailable").All()
	if len(lines) == 0 {
		t.Fatalf("no fallback warning; stats %+v", r.store.Stats())
	}
	for _, e := range lines {
		if got := e.ContextMap()[logctx.FieldName]; got != "req-8" {
			t.Errorf("%q has request_id %v, want req-8", e.Message, got)
		}
	}
}
