package middleware_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// benchEnv is a Gate with an in-memory key set and a pool of distinct valid
// tokens (realistic v2 tokens with an organization).
type benchEnv struct {
	gate   *middleware.Gate
	tokens []string
	pub    *rsa.PublicKey
}

func newBenchEnv(b *testing.B, n int, cacheSize int) *benchEnv {
	b.Helper()
	testKeys(b)
	inst, err := clerktest.New(clerktest.Options{SigningKey: mainKey, TokenLifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(inst.Close)
	gate, err := middleware.New(middleware.Config{
		Issuer:            inst.Issuer(),
		Keys:              jwks.NewMemory(inst.PublicKeys()...),
		AuthorizedParties: []string{"http://localhost:3000"},
		TokenCacheSize:    cacheSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i], err = inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_2abc", Slug: "acme", Role: "admin",
			Permissions: []string{"org:docs:read", "org:docs:write", "org:billing:read"}}))
		if err != nil {
			b.Fatal(err)
		}
	}
	return &benchEnv{gate: gate, tokens: tokens, pub: mainKey.Private.Public().(*rsa.PublicKey)}
}

// BenchmarkRSAFloor is the physical floor of a cold verification: SHA-256
// of the signing input and one RSA-2048 PKCS#1 v1.5 verification, on the same
// token the other benchmarks verify.
func BenchmarkRSAFloor(b *testing.B) {
	e := newBenchEnv(b, 1, -1)
	tok := e.tokens[0]
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	input := []byte(tok[:dot])
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(e.pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold verifies a token never seen before on every op (the
// cache is disabled, so each op is a full parse + signature + claims).
func BenchmarkVerifyCold(b *testing.B) {
	e := newBenchEnv(b, 256, -1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.gate.Verify(ctx, e.tokens[i%len(e.tokens)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached verifies the same token again (a cache hit).
func BenchmarkVerifyCached(b *testing.B) {
	e := newBenchEnv(b, 1, 0)
	ctx := context.Background()
	if _, err := e.gate.Verify(ctx, e.tokens[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.gate.Verify(ctx, e.tokens[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMiddlewareRoundTrip is Require around a no-op handler, through an
// httptest recorder, with a cached token in the Authorization header.
func BenchmarkMiddlewareRoundTrip(b *testing.B) {
	e := newBenchEnv(b, 1, 0)
	h := e.gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+e.tokens[0])
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkRSAFloorParallel(b *testing.B) {
	e := newBenchEnv(b, 1, -1)
	tok := e.tokens[0]
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	input := []byte(tok[:dot])
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sum := sha256.Sum256(input)
			if err := rsa.VerifyPKCS1v15(e.pub, crypto.SHA256, sum[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyColdParallel(b *testing.B) {
	e := newBenchEnv(b, 256, -1)
	ctx := context.Background()
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.gate.Verify(ctx, e.tokens[n.Add(1)%uint64(len(e.tokens))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyCachedParallel(b *testing.B) {
	e := newBenchEnv(b, 1024, 0)
	ctx := context.Background()
	for _, t := range e.tokens {
		if _, err := e.gate.Verify(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.gate.Verify(ctx, e.tokens[n.Add(1)%uint64(len(e.tokens))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMiddlewareRoundTripParallel(b *testing.B) {
	e := newBenchEnv(b, 1, 0)
	h := e.gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+e.tokens[0])
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
}

// BenchmarkHostileOrgPermissions verifies the costliest organization
// permissions a 16 KiB token can carry: the worst mask for per-bit decimal
// parsing (about 2,000 names and a 7,700-digit mask) under a signature by a
// key the Gate does not have, the costliest token within the limits under
// such a signature, and the same correctly signed (cache disabled: every op
// decodes and expands).
func BenchmarkHostileOrgPermissions(b *testing.B) {
	e := newCorpusEnv(b)
	cold := gateConfig(e.keys)
	cold.TokenCacheSize = -1
	g, err := middleware.New(cold)
	if err != nil {
		b.Fatal(err)
	}
	foreign := func(payload []byte) string {
		return clerktest.Sign([]byte(corpusHeader), payload, corpusForeign, "RS256")
	}
	for _, bc := range []struct {
		name   string
		token  string
		accept bool
	}{
		{"bad-signature/worst-mask", foreign(worstMaskClaims(b)), false},
		{"bad-signature/at-limits", foreign(atCapsClaims(b)), false},
		{"signed/at-limits", signRaw(corpusHeader, atCapsClaims(b)), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.token)))
			for i := 0; i < b.N; i++ {
				_, err := g.Verify(context.Background(), bc.token)
				if (err == nil) != bc.accept {
					b.Fatalf("accepted %v, err %v", err == nil, err)
				}
			}
		})
	}
}
