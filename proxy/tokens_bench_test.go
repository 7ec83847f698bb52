package proxy_test

import (
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// benchTokens runs the proxy handler (in-memory transport) with n distinct
// cached tokens in rotation: it separates what a large token cache costs the
// handler from what the load harness's row (b) measures around it.
func benchTokens(b *testing.B, n int) {
	inst, err := clerktest.New(clerktest.Options{SigningKey: signingKey(b), TokenLifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	gate, _ := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	up, _ := url.Parse("http://upstream.internal:3000")
	p, _ := proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: up, ForwardToken: true}}, Transport: canned})
	toks := make([]string, n)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				toks[i], _ = inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read"}}))
			}
		}(w)
	}
	wg.Wait()
	for _, t := range toks {
		r := httptest.NewRequest("GET", "http://app/x", nil)
		r.Header.Set("Authorization", "Bearer "+t)
		p.ServeHTTP(httptest.NewRecorder(), r)
	}
	var ctr atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "http://app/x", nil)
		for pb.Next() {
			r.Header.Set("Authorization", "Bearer "+toks[ctr.Add(1)%uint64(n)])
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
}

// BenchmarkProxyTokens1 rotates one cached token.
func BenchmarkProxyTokens1(b *testing.B) { benchTokens(b, 1) }

// BenchmarkProxyTokens10000 rotates 10,000 cached tokens (minting them takes
// a few seconds).
func BenchmarkProxyTokens10000(b *testing.B) { benchTokens(b, 10000) }
