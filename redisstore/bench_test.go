package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/redisstore"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// BenchmarkDenyListCheck is the hot path's session check (the deny list,
// session_check off) with 10,000 revocations on the list, without a shared
// store and with one hooked to a live Redis. The two must cost the same:
// the check never touches Redis (redis-cmds/op is the number of Redis
// commands the Store sent while the benchmark ran, background work
// included, divided by b.N).
func BenchmarkDenyListCheck(b *testing.B) {
	for _, withRedis := range []bool{false, true} {
		name := "store=memory"
		if withRedis {
			name = "store=redis"
		}
		b.Run(name, func(b *testing.B) {
			deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
			var store *redisstore.Store
			if withRedis {
				srv := redistest.Start(b)
				r := newReplica(b, srv.URL(), nil)
				r.waitSynced(b)
				deny, store = r.deny, r.store
			}
			for i := range 10_000 {
				deny.Deny(fmt.Sprintf("sess_revoked%d", i))
			}
			if store != nil {
				testwait.Eventually(b, "the revocations to be written", func() bool { return store.Stats().Published == 10_000 })
			}
			svc, err := sessioncheck.New(sessioncheck.Config{DenyList: deny})
			if err != nil {
				b.Fatal(err)
			}
			check, err := svc.Checker(sessioncheck.Off, sessioncheck.Deny, false)
			if err != nil {
				b.Fatal(err)
			}
			live := &middleware.Claims{SessionID: "sess_live"}
			revoked := &middleware.Claims{SessionID: "sess_revoked4242"}
			ctx := context.Background()
			var before uint64
			if store != nil {
				before = store.Stats().Commands
			}
			runtime.LockOSThread() // cpu-ns/op: this thread's CPU time only
			defer runtime.UnlockOSThread()
			cpu0 := redistest.ThreadCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				c := live
				if i%16 == 0 {
					c = revoked
				}
				err := check.CheckSession(ctx, c)
				if (err != nil) != (c == revoked) {
					b.Fatalf("%s: %v", c.SessionID, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(redistest.ThreadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if store != nil {
				b.ReportMetric(float64(store.Stats().Commands-before)/float64(b.N), "redis-cmds/op")
			} else {
				b.ReportMetric(0, "redis-cmds/op")
			}
		})
	}
}

// TestMeasurePropagation measures how long a revocation takes from the
// Deny call on one replica to the Apply on another, over loopback, for
// docs/scaling.md. It runs only with SESSIONGATE_MEASURE=1.
func TestMeasurePropagation(t *testing.T) {
	if os.Getenv("SESSIONGATE_MEASURE") != "1" {
		t.Skip("set SESSIONGATE_MEASURE=1 to measure")
	}
	srv := redistest.Start(t)
	const n = 2000
	var mu sync.Mutex
	got := make(map[string]time.Duration, n)
	arrived := make(chan string, n)
	a := newReplica(t, srv.URL(), nil)
	b := newReplica(t, srv.URL(), func(c *redisstore.Config) {
		c.OnRemote = func(sid string, d time.Duration) {
			mu.Lock()
			got[sid] = d
			mu.Unlock()
			arrived <- sid
		}
	})
	a.waitSynced(t)
	b.waitSynced(t)

	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		msg := fmt.Sprintf("%s: n=%d median=%v p99=%v max=%v", name, len(ds), ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
		t.Log(msg)
		fmt.Println("MEASURE", msg)
	}
	// One at a time, as revocations come in practice.
	var seq []time.Duration
	for i := range n / 2 {
		sid := fmt.Sprintf("sess_seq%d", i)
		a.deny.Deny(sid)
		select {
		case <-arrived:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s never arrived", sid)
		}
		mu.Lock()
		seq = append(seq, got[sid])
		mu.Unlock()
	}
	report("one at a time", seq)
	// A burst: n/2 revocations at once (a mass sign-out).
	for i := range n / 2 {
		a.deny.Deny(fmt.Sprintf("sess_burst%d", i))
	}
	for range n / 2 {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("a burst revocation never arrived")
		}
	}
	var burst []time.Duration
	mu.Lock()
	for sid, d := range got {
		if len(sid) > 10 && sid[:10] == "sess_burst" {
			burst = append(burst, d)
		}
	}
	mu.Unlock()
	report("burst of 1000", burst)
}
