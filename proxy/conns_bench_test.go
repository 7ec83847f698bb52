package proxy_test

import (
	"testing"

	"github.com/sessiongate/sessiongate/proxy"
)

// BenchmarkProxyCachedTokenTrackingConnections is BenchmarkProxyCachedToken
// with long-lived connection tracking on, as the binary runs it: a request
// that neither upgrades nor streams must cost the same.
func BenchmarkProxyCachedTokenTrackingConnections(b *testing.B) {
	conns, err := proxy.NewConnections(proxy.ConnectionsConfig{})
	if err != nil {
		b.Fatal(err)
	}
	p, tok := benchProxy(b, func(o *proxy.Options) { o.Connections = conns })
	runProxyBench(b, p, tok)
}
