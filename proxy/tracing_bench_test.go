package proxy_test

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sessiongate/sessiongate/proxy"
)

// discardExporter drops every batch: the benchmark measures the spans'
// cost in the request, not a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// withTraceparent adds a caller's traceparent with flags (01: sampled) to
// the benchmark's request (once: runProxyBench reuses one request per
// goroutine).
func withTraceparent(h http.Handler, flags string) http.Handler {
	tp := []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-" + flags}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header["Traceparent"] == nil {
			r.Header["Traceparent"] = tp
		}
		h.ServeHTTP(w, r)
	})
}

// BenchmarkProxyTracing is BenchmarkProxyCachedToken with a traceparent on
// every request: "off" without a TracerProvider (the header passes
// through: the cost must be BenchmarkProxyCachedToken's), "on" with the
// SDK sampling every request and batching to a discarding exporter (the
// server span, its attributes and the upstream traceparent), "unsampled"
// with the caller's trace not sampled (parent-based: a non-recording span,
// the trace context still passed upstream).
func BenchmarkProxyTracing(b *testing.B) {
	for _, c := range []struct {
		name    string
		sampler sdktrace.Sampler // nil: tracing off
		flags   string
	}{
		{"off", nil, "01"},
		{"on", sdktrace.AlwaysSample(), "01"},
		{"unsampled", sdktrace.ParentBased(sdktrace.AlwaysSample()), "00"},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, tok := benchProxy(b, func(o *proxy.Options) {
				if c.sampler == nil {
					return
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(c.sampler), sdktrace.WithBatcher(discardExporter{}))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				o.TracerProvider = tp
			})
			runProxyBench(b, withTraceparent(p, c.flags), tok)
		})
	}
}
