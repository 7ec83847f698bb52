package middleware_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// BenchmarkCacheMemoryPerToken reports the live heap each verified-token
// cache entry costs (bytes/entry), for realistic v2 tokens with an
// organization, measured after a forced GC. It mints 10,000 tokens once
// (a few seconds); b.N is ignored.
func BenchmarkCacheMemoryPerToken(b *testing.B) {
	testKeys(b)
	inst, err := clerktest.New(clerktest.Options{SigningKey: mainKey, TokenLifetime: time.Hour, AuthorizedParty: "https://app.example.com"})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	const n = 10_000
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				tokens[i], _ = inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_2abcdefghijklmnopqrstuvwxyz", Slug: "acme", Role: "admin",
					Permissions: []string{"org:docs:read", "org:docs:write", "org:billing:read"}}))
			}
		}(w)
	}
	wg.Wait()
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...),
		AuthorizedParties: []string{"https://app.example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range tokens {
		if _, err := gate.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if gate.Stats().CacheSize != n {
		b.Fatalf("cache holds %d", gate.Stats().CacheSize)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
	runtime.KeepAlive(tokens)
	runtime.KeepAlive(gate)
}
