package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// propagationBound is how long a revocation may take to reach another
// replica in these tests (measured: well under a millisecond on loopback;
// docs/scaling.md).
const propagationBound = 5 * time.Second

// replica is one sessiongate process of a scaled-out deployment: its own
// App and listeners, sharing a fake Clerk instance and a Redis with the
// others.
type replica struct {
	app      *app.App
	proxyURL string
	adminURL string
	logs     *observer.ObservedLogs
}

// redisRoutes: "/" checks the deny list only, "/cached" also the session
// status (cached mode).
func startReplica(t *testing.T, inst *clerktest.Instance, redisURL string, mutate func(*config.Config)) *replica {
	t.Helper()
	cfg := baseConfig(inst)
	cfg.Clerk.WebhookSecret = webhookSecret
	cfg.Upstream = upstream(t, nil)
	cfg.Routes = []config.Route{{Path: "/"}, {Path: "/cached", SessionCheck: config.SessionCheckCached}}
	cfg.Revocation.Store = "redis"
	cfg.Revocation.RedisURL = config.Secret(redisURL)
	f := false
	cfg.Log.Access = &f
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.Normalize()
	core, logs := observer.New(zap.InfoLevel)
	a, err := app.New(&cfg, app.Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, a)
	return &replica{app: a, proxyURL: s.proxyURL, adminURL: s.adminURL, logs: logs}
}

// readyz returns the /readyz status and body.
func (r *replica) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "the replica to be ready", func() bool { code, _ := r.readyz(t); return code == 200 })
}

func (r *replica) revoke(t *testing.T, sid string) time.Duration {
	t.Helper()
	start := time.Now()
	resp, err := http.Post(r.adminURL+"/sessions/"+sid+"/revoke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke %s: %d", sid, resp.StatusCode)
	}
	return time.Since(start)
}

// status sends a real request through the replica's proxy.
func (r *replica) status(t *testing.T, path, token string) (int, string) {
	t.Helper()
	resp, _ := getWith(t, r.proxyURL+path, token)
	return resp.StatusCode, reason(resp)
}

func (r *replica) mustAllow(t *testing.T, path, token, what string) {
	t.Helper()
	if code, why := r.status(t, path, token); code != 200 {
		t.Fatalf("%s: %d %s, want 200", what, code, why)
	}
}

func (r *replica) mustDeny(t *testing.T, token, what string) {
	t.Helper()
	if code, why := r.status(t, "/", token); code != 401 || why != "session-revoked" {
		t.Fatalf("%s: %d %q, want 401 session-revoked", what, code, why)
	}
}

// waitDenied polls until the replica refuses the token as revoked.
func (r *replica) waitDenied(t *testing.T, token, what string) time.Duration {
	t.Helper()
	return testwait.Until(t, propagationBound, what, func() bool {
		code, why := r.status(t, "/", token)
		return code == 401 && why == "session-revoked"
	})
}

// session returns a session of the fake and a token for it, valid for the
// whole test (the token outlives the revocation: only the deny list stops
// it).
func session(t *testing.T, inst *clerktest.Instance) (string, string) {
	t.Helper()
	sid := inst.CreateSession("")
	return sid, inst.MustMint(t, clerktest.WithSession(sid))
}

// startPair starts a Redis, a fake Clerk instance and two ready replicas
// sharing them.
func startPair(t *testing.T) (srv *redistest.Server, inst *clerktest.Instance, a, b *replica) {
	t.Helper()
	srv = redistest.Start(t)
	inst = clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	a = startReplica(t, inst, srv.URL(), nil)
	b = startReplica(t, inst, srv.URL(), nil)
	a.waitReady(t)
	b.waitReady(t)
	return srv, inst, a, b
}

func TestRedisRevocationReachesEveryReplica(t *testing.T) {
	t.Parallel()
	srv, inst, a, b := startPair(t)
	sid, tok := session(t, inst)
	b.mustAllow(t, "/", tok, "before the revocation")

	a.revoke(t, sid)
	a.mustDeny(t, tok, "on the replica that revoked")
	took := b.waitDenied(t, tok, "the other replica to refuse the revoked session")
	t.Logf("replica B refused the session %v after A's revoke returned", took)

	// A replica started after the revocation loads the shared set before it
	// reports ready, so its very first answer is already right.
	c := startReplica(t, inst, srv.URL(), nil)
	c.waitReady(t)
	c.mustDeny(t, tok, "a replica started after the revocation")

	// A webhook on one replica reaches the others the same way.
	sid2, tok2 := session(t, inst)
	resp, err := inst.SendWebhook(context.Background(), c.proxyURL+"/_sessiongate/webhooks/clerk", webhookSecret, "session.revoked", sid2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	a.waitDenied(t, tok2, "a webhook revocation to reach another replica")
}

func TestRedisOutageAndRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	a := startReplica(t, inst, srv.URL(), nil)
	b := startReplica(t, inst, srv.URL(), nil)
	strict := startReplica(t, inst, srv.URL(), func(c *config.Config) { c.Revocation.Required = true })
	for _, r := range []*replica{a, b, strict} {
		r.waitReady(t)
	}
	sidBefore, tokBefore := session(t, inst)
	a.revoke(t, sidBefore)
	b.waitDenied(t, tokBefore, "the first revocation to spread")

	// Redis goes away.
	srv.Stop()
	testwait.Until(t, 10*time.Second, "a required replica to report not ready", func() bool {
		code, body := strict.readyz(t)
		return code == 503 && strings.Contains(body, "redis required and not synced")
	})
	if strict.app.Ready() {
		t.Fatal("App.Ready with Redis required and away")
	}
	if code, body := a.readyz(t); code != 200 {
		t.Fatalf("a replica that does not require Redis went unready: %d %s", code, body)
	}
	// Serving goes on from the local state.
	_, tokLive := session(t, inst)
	b.mustAllow(t, "/", tokLive, "a live session while Redis is away")
	b.mustDeny(t, tokBefore, "a revocation known before the outage")
	// An admin revoke does not wait on Redis.
	sidDuring, tokDuring := session(t, inst)
	// Generous: revocations reach Redis from a background writer, so the
	// bound only tells that from waiting out Redis's timeouts.
	if took := a.revoke(t, sidDuring); took > 3*time.Second {
		t.Fatalf("an admin revoke took %v with Redis away", took)
	}
	a.mustDeny(t, tokDuring, "on the replica that revoked, at once")
	b.mustAllow(t, "/", tokDuring, "the other replica cannot know yet") // the documented window

	// Redis comes back empty: the replicas write back what they know, and
	// the revocation made during the outage is pushed.
	srv.Restart()
	for _, r := range []*replica{a, b} { // reconnection backs off up to 5 s, then resyncs
		testwait.Until(t, 10*time.Second, "the replicas to resync", func() bool { return metricAtLeast(t, r, "sessiongate_redis_synced", 1) })
	}
	b.waitDenied(t, tokDuring, "the revocation made during the outage to arrive")
	strict.waitReady(t)
	late := startReplica(t, inst, srv.URL(), nil)
	late.waitReady(t)
	late.mustDeny(t, tokBefore, "a revocation from before the restart, on a new replica")
	late.mustDeny(t, tokDuring, "a revocation from the outage, on a new replica")
	// And new revocations propagate again.
	sidAfter, tokAfter := session(t, inst)
	b.revoke(t, sidAfter)
	a.waitDenied(t, tokAfter, "a revocation after the restart")
	if !metricAtLeast(t, b, "sessiongate_redis_resyncs_total", 2) || !metricAtLeast(t, b, "sessiongate_redis_disconnects_total", 1) {
		t.Fatal("the resync and the disconnection are not in the metrics")
	}
	if b.logs.FilterMessageSnippet("redis: unreachable").Len() == 0 || b.logs.FilterMessageSnippet("redis: reconnected").Len() == 0 {
		t.Fatal("the outage is not in the logs")
	}
}

func TestRedisUnreachableAtStartup(t *testing.T) {
	t.Parallel()
	redistest.Binary(t)
	port := redistest.FreePort(t)
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	relaxed := startReplica(t, inst, url, nil)
	required := startReplica(t, inst, url, func(c *config.Config) { c.Revocation.Required = true })
	relaxed.waitReady(t)
	testwait.Until(t, 10*time.Second, "the required replica to report Redis as the reason it is not ready", func() bool {
		code, body := required.readyz(t) // first "signing keys not loaded yet", then Redis
		return code == 503 && strings.Contains(body, "redis required and not synced")
	})
	if required.app.Ready() {
		t.Fatal("App.Ready with Redis required and unreachable")
	}
	sid, tok := session(t, inst)
	relaxed.mustAllow(t, "/", tok, "serving without Redis")
	relaxed.revoke(t, sid)

	redistest.StartOn(t, port)
	required.waitReady(t)
	required.waitDenied(t, tok, "a revocation made before Redis was up")
}

func TestRedisBadURLRefusesToStart(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	for _, u := range []string{"redis+sentinel://:hunter22@127.0.0.1:26379", "http://127.0.0.1:6379", "redis://127.0.0.1?colour=blue"} {
		cfg := config.Defaults()
		cfg.Clerk.Issuer = inst.Issuer()
		cfg.Upstream = "http://127.0.0.1:1"
		cfg.Revocation.Store = "redis"
		cfg.Revocation.RedisURL = config.Secret(u)
		cfg.Normalize()
		_, err := app.New(&cfg, app.Options{Logger: zap.NewNop()})
		if err == nil || !strings.Contains(err.Error(), "revocation.redis_url") || strings.Contains(err.Error(), "hunter22") {
			t.Fatalf("%s: %v", u, err)
		}
	}
	// required with nothing that uses Redis is refused rather than ignored.
	cfg := config.Defaults()
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Upstream = "http://127.0.0.1:1"
	cfg.Revocation.RedisURL, cfg.Revocation.Required = "redis://127.0.0.1:1", true
	cfg.Normalize()
	if _, err := app.New(&cfg, app.Options{Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "revocation.required") {
		t.Fatalf("required without a Redis store: %v", err)
	}
}

// loadCached sends perReplica requests for each token to each replica's
// cached route, all at once, and returns the Backend API calls the fake
// counted for those sessions.
func loadCached(t *testing.T, inst *clerktest.Instance, replicas []*replica, sids, tokens []string, perReplica int) int {
	t.Helper()
	before := 0
	for _, sid := range sids {
		before += inst.Requests("/v1/sessions/" + sid)
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(replicas)*len(tokens)*perReplica)
	for _, r := range replicas {
		for _, tok := range tokens {
			for range perReplica {
				wg.Go(func() {
					req, _ := http.NewRequest("GET", r.proxyURL+"/cached", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Sprintf("%d %s", resp.StatusCode, reason(resp))
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a cached request failed: %s", e)
	}
	after := 0
	for _, sid := range sids {
		after += inst.Requests("/v1/sessions/" + sid)
	}
	return after - before
}

func TestRedisSharedStatusCache(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	const sessions, perReplica = 10, 10
	var sids, tokens []string
	for range sessions {
		sid, tok := session(t, inst)
		sids, tokens = append(sids, sid), append(tokens, tok)
	}
	run := func(shared bool) int {
		var rs []*replica
		for range 3 {
			r := startReplica(t, inst, srv.URL(), func(c *config.Config) {
				c.Cache.Shared = shared
				c.Revocation.Store = "memory" // the cache alone; revocation sharing is tested above
			})
			r.waitReady(t)
			rs = append(rs, r)
		}
		calls := loadCached(t, inst, rs, sids, tokens, perReplica)
		t.Logf("cache.shared %v: 3 replicas, %d sessions, %d requests: %d Backend API calls", shared, sessions, 3*sessions*perReplica, calls)
		return calls
	}
	if calls := run(false); calls != 3*sessions {
		t.Fatalf("without the shared cache: %d calls, want one per replica per session (%d)", calls, 3*sessions)
	}
	// New sessions, so that the first run's local caches do not help.
	sids, tokens = nil, nil
	for range sessions {
		sid, tok := session(t, inst)
		sids, tokens = append(sids, sid), append(tokens, tok)
	}
	if calls := run(true); calls != sessions {
		t.Fatalf("with the shared cache: %d calls, want one per session (%d) across the 3 replicas", calls, sessions)
	}
}

func TestRedisWebhookAppliedOnce(t *testing.T) {
	t.Parallel()
	_, inst, a, b := startPair(t)
	sid, tok := session(t, inst)
	req, err := inst.WebhookRequest(context.Background(), a.proxyURL+"/_sessiongate/webhooks/clerk", webhookSecret, "session.revoked", sid)
	if err != nil {
		t.Fatal(err)
	}
	// The same delivery (same svix-id) reaches both replicas, as it does
	// when Svix retries through a load balancer.
	for _, r := range []*replica{a, b} {
		again := req.Clone(context.Background())
		again.Body, _ = req.GetBody()
		u := *req.URL
		host := strings.TrimPrefix(r.proxyURL, "http://")
		u.Host, again.Host = host, host
		again.URL = &u
		resp, err := http.DefaultClient.Do(again)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("delivery to %s: %d", r.proxyURL, resp.StatusCode)
		}
	}
	applied := a.logs.FilterMessage("session revoked by webhook").Len() + b.logs.FilterMessage("session revoked by webhook").Len()
	ignored := a.logs.FilterMessage("webhook replay ignored").Len() + b.logs.FilterMessage("webhook replay ignored").Len()
	if applied != 1 || ignored != 1 {
		t.Fatalf("applied %d times, ignored %d times; want 1 and 1", applied, ignored)
	}
	if !metricAtLeast(t, b, "sessiongate_redis_webhook_duplicates_total", 1) {
		t.Fatal("the duplicate is not in the metrics")
	}
	a.waitDenied(t, tok, "the webhook's revocation on A")
	b.waitDenied(t, tok, "the webhook's revocation on B")
}

// metricAtLeast reads one unlabelled series from /metrics.
func metricAtLeast(t *testing.T, r *replica, name string, min float64) bool {
	t.Helper()
	resp, err := http.Get(r.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return err == nil && f >= min
		}
	}
	return false
}
