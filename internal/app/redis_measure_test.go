package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// BenchmarkVerifyWithDenyList is the request path's verification (cached
// token, then the deny list, as the Gate runs it) with 10,000 revocations on
// the list, in an App without Redis and in one with revocation.store: redis
// connected to a live Redis. The figures must match: the deny list is
// consulted locally, Redis is never on the request path.
func BenchmarkVerifyWithDenyList(b *testing.B) {
	inst := clerktest.Start(b, clerktest.Options{SigningKey: signingKey(b)})
	token := inst.MustMint(b, clerktest.WithLifetime(time.Hour))
	for _, store := range []string{"memory", "redis"} {
		b.Run("store="+store, func(b *testing.B) {
			cfg := config.Defaults()
			cfg.Clerk.Issuer = inst.Issuer() // no secret key: an admin revoke is local only
			cfg.Upstream = "http://127.0.0.1:1"
			if store == "redis" {
				srv := redistest.Start(b)
				cfg.Revocation.Store, cfg.Revocation.RedisURL = "redis", config.Secret(srv.URL())
			}
			cfg.Normalize()
			a, err := app.New(&cfg, app.Options{Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			testwait.Eventually(b, "the keys to load", a.Ready)
			admin := a.AdminHandler()
			for i := range 10_000 {
				req, _ := http.NewRequest("POST", fmt.Sprintf("/sessions/sess_revoked%d/revoke", i), nil)
				admin.ServeHTTP(discard{}, req)
			}
			if store == "redis" { // the writes to Redis are asynchronous: let them finish first
				testwait.Until(b, 20*time.Second, "the revocations to be written to Redis", func() bool {
					return metricValue(admin, "sessiongate_redis_revocations_published_total") >= 10_000
				})
			}
			gate := a.Gate()
			ctx := context.Background()
			if _, err := gate.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
			runtime.LockOSThread() // cpu-ns/op: this thread's CPU time only
			defer runtime.UnlockOSThread()
			cpu0 := redistest.ThreadCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := gate.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(redistest.ThreadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// metricValue reads one unlabelled series through the admin handler.
func metricValue(admin http.Handler, name string) float64 {
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// TestMeasureSharedCacheBackendCalls measures (it does not assert a figure)
// the Backend API calls 3 replicas in cached mode make under the same load,
// with and without cache.shared: 300 req/s spread over 100 sessions and the
// 3 replicas for 6 s, session_ttl 2 s. Run it with
//
//	SESSIONGATE_MEASURE=1 go test -run TestMeasureSharedCacheBackendCalls -v ./internal/app/
func TestMeasureSharedCacheBackendCalls(t *testing.T) {
	if os.Getenv("SESSIONGATE_MEASURE") == "" {
		t.Skip("a 12 s measurement: set SESSIONGATE_MEASURE=1 to run it")
	}
	srv := redistest.Start(t)
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	const sessions, rate, duration, ttl = 100, 300, 6 * time.Second, 2 * time.Second
	for _, shared := range []bool{false, true} {
		var rs []*replica
		for range 3 {
			r := startReplica(t, inst, srv.URL(), func(c *config.Config) {
				c.Cache.Shared = shared
				c.Cache.SessionTTL = config.Duration(ttl)
			})
			r.waitReady(t)
			rs = append(rs, r)
		}
		sids, tokens := make([]string, sessions), make([]string, sessions)
		for i := range sids {
			sids[i], tokens[i] = session(t, inst)
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
		var sent, failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		// Paced by the clock with catch-up (a busy machine delays batches
		// but does not drop them): the same requests in both runs.
		for i, batch := 0, 0; batch < int(duration/(10*time.Millisecond)); batch++ {
			time.Sleep(time.Until(start.Add(time.Duration(batch) * 10 * time.Millisecond))) // the load's pace is what is measured
			for range rate / 100 {
				n := i
				i++
				wg.Go(func() {
					// Request n goes to replica n%3, for session (n/3)%sessions:
					// every session reaches every replica.
					req, _ := http.NewRequest("GET", rs[n%3].proxyURL+"/cached", nil)
					req.Header.Set("Authorization", "Bearer "+tokens[(n/3)%sessions])
					resp, err := client.Do(req)
					sent.Add(1)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				})
			}
		}
		wg.Wait()
		elapsed := time.Since(start)
		calls := 0
		for _, sid := range sids {
			calls += inst.Requests("/v1/sessions/" + sid)
		}
		msg := fmt.Sprintf("cache.shared=%v: 3 replicas, %d requests in %v over %d sessions (session_ttl %v), %d failed: %d Backend API calls",
			shared, sent.Load(), elapsed.Round(time.Millisecond), sessions, ttl, failed.Load(), calls)
		t.Log(msg)
		fmt.Println("MEASURE", msg)
	}
}
