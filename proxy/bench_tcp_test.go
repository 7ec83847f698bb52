package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sessiongate/sessiongate/proxy"
)

// tcpUpstream is a loopback HTTP server answering 200 bytes, as
// bench/run.sh's upstream does.
func tcpUpstream(b *testing.B) *url.URL {
	body := []byte(strings.Repeat("x", 200))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

// BenchmarkTCPBare and BenchmarkTCPProxy* are the in-process benchmarks
// with the upstream on loopback TCP (the transport's connection loops and
// header writes included), to split the load harness's difference between
// the bare proxy and sessiongate.
func BenchmarkTCPBare(b *testing.B) {
	up := tcpUpstream(b)
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  proxy.NewTransport(proxy.TransportOptions{}),
		BufferPool: benchPool{},
	}
	runProxyBench(b, rp, "")
}

func BenchmarkTCPProxyPublic(b *testing.B) {
	up := tcpUpstream(b)
	p, _ := benchProxy(b, func(o *proxy.Options) {
		o.Routes[0].Auth = proxy.Public
		o.Routes[0].Upstream = up
		o.Transport = proxy.NewTransport(proxy.TransportOptions{})
	})
	runProxyBench(b, p, "")
}

func BenchmarkTCPProxyCachedToken(b *testing.B) {
	up := tcpUpstream(b)
	p, tok := benchProxy(b, func(o *proxy.Options) {
		o.Routes[0].Upstream = up
		o.Transport = proxy.NewTransport(proxy.TransportOptions{})
	})
	runProxyBench(b, p, tok)
}

// benchPool is a 32 KiB buffer pool like the proxy's own.
type benchPool struct{}

var benchBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (benchPool) Get() []byte  { return *benchBufs.Get().(*[]byte) }
func (benchPool) Put(b []byte) { benchBufs.Put(&b) }

func BenchmarkTCPBareWithToken(b *testing.B) {
	up := tcpUpstream(b)
	_, tok := benchProxy(b, nil)
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  proxy.NewTransport(proxy.TransportOptions{}),
		BufferPool: benchPool{},
	}
	runProxyBench(b, rp, tok)
}

// BenchmarkTCPBareWithIdentityHeaders is the bare proxy setting, as fixed
// strings, the headers sessiongate sets for the benchmark's token (the
// identity headers of a session with an active organization, and
// X-Request-Id): what those headers cost by themselves, in the proxy's
// Rewrite, its writes to the upstream and the upstream's parsing.
func BenchmarkTCPBareWithIdentityHeaders(b *testing.B) {
	up := tcpUpstream(b)
	_, tok := benchProxy(b, nil)
	set := map[string]string{
		"X-Request-Id":                  "89c0b72e14230000000000000001",
		"X-Sessiongate-Token-Type":      "session_token",
		"X-Sessiongate-User-Id":         "user_2NNEqL2nrIRdJ194ndJqAHwEfxC",
		"X-Sessiongate-Session-Id":      "sess_2NNEqL2nrIRdJ194ndJqAHwEfxC",
		"X-Sessiongate-Org-Id":          "org_1",
		"X-Sessiongate-Org-Slug":        "acme",
		"X-Sessiongate-Org-Role":        "org:admin",
		"X-Sessiongate-Org-Permissions": "org:docs:read,org:docs:write",
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			for k, v := range set {
				pr.Out.Header[k] = []string{v}
			}
		},
		Transport:  proxy.NewTransport(proxy.TransportOptions{}),
		BufferPool: benchPool{},
	}
	runProxyBench(b, rp, tok)
}
