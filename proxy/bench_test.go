package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// cannedTransport answers every request with a 200-byte body without any
// network: the benchmarks measure the proxy's own work, not loopback TCP.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

var canned = cannedTransport{body: strings.Repeat("x", 200)}

func benchProxy(b *testing.B, mutate func(*proxy.Options)) (*proxy.Proxy, string) {
	b.Helper()
	inst, err := clerktest.New(clerktest.Options{SigningKey: signingKey(b), TokenLifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(inst.Close)
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		b.Fatal(err)
	}
	up, _ := url.Parse("http://upstream.internal:3000")
	opts := proxy.Options{Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: up, ForwardToken: true}}, Transport: canned}
	if mutate != nil {
		mutate(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := inst.Mint(clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}))
	if err != nil {
		b.Fatal(err)
	}
	return p, tok
}

func runProxyBench(b *testing.B, h http.Handler, token string) {
	b.Helper()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "http://app.example.com/api/items?id=7", nil)
		r.Header.Set("User-Agent", "bench")
		r.Header.Set("Accept", "application/json")
		r.Header.Set("X-Sessiongate-User-Id", "user_spoofed")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}

// BenchmarkBareReverseProxy is the baseline: httputil.ReverseProxy with the
// same transport and nothing else.
func BenchmarkBareReverseProxy(b *testing.B) {
	up, _ := url.Parse("http://upstream.internal:3000")
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport: canned,
	}
	runProxyBench(b, rp, "")
}

// BenchmarkProxyCachedToken is sessiongate's proxy with a cached token,
// identity headers injected, metrics off, access log off.
func BenchmarkProxyCachedToken(b *testing.B) {
	p, tok := benchProxy(b, nil)
	runProxyBench(b, p, tok)
}

// BenchmarkProxyCachedTokenAccessLog adds the JSON access log, written to a
// discarding sink (the encoding cost without the terminal).
func BenchmarkProxyCachedTokenAccessLog(b *testing.B) {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel)
	p, tok := benchProxy(b, func(o *proxy.Options) { o.Logger = zap.New(core); o.AccessLog = true })
	runProxyBench(b, p, tok)
}

// BenchmarkProxyPublicRoute measures routing, header stripping and proxying
// without verification.
func BenchmarkProxyPublicRoute(b *testing.B) {
	p, _ := benchProxy(b, func(o *proxy.Options) { o.Routes[0].Auth = proxy.Public })
	runProxyBench(b, p, "")
}
