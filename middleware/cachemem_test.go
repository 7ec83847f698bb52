package middleware_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// memTokenCount is the pool of the memory and GC benchmarks: realistic v2
// tokens with an organization, minted once per test binary (a few seconds).
const memTokenCount = 10_000

var memPool struct {
	once   sync.Once
	inst   *clerktest.Instance
	tokens []string
	err    error
}

func memTokens(b *testing.B) (*clerktest.Instance, []string) {
	b.Helper()
	testKeys(b)
	memPool.once.Do(func() {
		inst, err := clerktest.New(clerktest.Options{SigningKey: mainKey, TokenLifetime: time.Hour, AuthorizedParty: "https://app.example.com"})
		if err != nil {
			memPool.err = err
			return
		}
		tokens := make([]string, memTokenCount)
		var wg sync.WaitGroup
		for w := 0; w < runtime.GOMAXPROCS(0); w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < len(tokens); i += runtime.GOMAXPROCS(0) {
					tokens[i], _ = inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_2abcdefghijklmnopqrstuvwxyz", Slug: "acme", Role: "admin",
						Permissions: []string{"org:docs:read", "org:docs:write", "org:billing:read"}}))
				}
			}(w)
		}
		wg.Wait()
		memPool.inst, memPool.tokens = inst, tokens
	})
	if memPool.err != nil {
		b.Fatal(memPool.err)
	}
	return memPool.inst, memPool.tokens
}

// filledGate returns a Gate whose cache holds the first n pool tokens.
func filledGate(b *testing.B, n int) *middleware.Gate {
	b.Helper()
	inst, tokens := memTokens(b)
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...),
		AuthorizedParties: []string{"https://app.example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	for _, tok := range tokens[:n] {
		if _, err := gate.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
	if got := gate.Stats().CacheSize; got != n {
		b.Fatalf("cache holds %d, want %d", got, n)
	}
	return gate
}

// BenchmarkCacheMemoryPerToken reports the live Go heap each verified-token
// cache entry costs (heap-bytes/entry) and the heap objects it adds
// (objects/entry), for 10,000 realistic v2 tokens with an organization,
// measured after a forced GC. Memory the cache keeps outside the Go heap
// (its slabs, see cache.go) is reported as slab-bytes/entry. b.N is ignored.
func BenchmarkCacheMemoryPerToken(b *testing.B) {
	memTokens(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	gate := filledGate(b, memTokenCount)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/memTokenCount, "heap-bytes/entry")
	b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/memTokenCount, "objects/entry")
	b.ReportMetric(float64(middleware.CacheSlabBytesForTest(gate))/memTokenCount, "slab-bytes/entry")
	runtime.KeepAlive(gate)
}

// BenchmarkCacheGC is the cost of one full garbage collection (runtime.GC,
// which marks the whole heap) with an empty cache and with 10,000 cached
// tokens: what a large cache adds to every GC cycle of a busy process.
func BenchmarkCacheGC(b *testing.B) {
	for _, n := range []int{0, memTokenCount} {
		b.Run(fmt.Sprintf("cached=%d", n), func(b *testing.B) {
			gate := filledGate(b, n)
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runtime.GC()
			}
			b.StopTimer()
			runtime.KeepAlive(gate)
		})
	}
}

// BenchmarkVerifyCachedRotating verifies the pool's tokens in rotation, all
// cached: the hit path over a large cache (row (b) of bench/run.sh
// in-process), serial and with every core.
func BenchmarkVerifyCachedRotating(b *testing.B) {
	gate := filledGate(b, memTokenCount)
	_, tokens := memTokens(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := gate.Verify(ctx, tokens[i%len(tokens)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(time.Now().UnixNano()) % len(tokens)
			for pb.Next() {
				i++
				if i == len(tokens) {
					i = 0
				}
				if _, err := gate.Verify(ctx, tokens[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
