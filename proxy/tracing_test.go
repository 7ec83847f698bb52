package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// TestTracingReplacesTheCallersTraceHeadersUpstream: the upstream gets the
// server span's trace context and nothing of a caller's that was not
// continued (a malformed traceparent starts a new trace; its tracestate is
// not passed on beside it).
func TestTracingReplacesTheCallersTraceHeadersUpstream(t *testing.T) {
	t.Parallel()
	inst, err := clerktest.New(clerktest.Options{SigningKey: signingKey(t), TokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Close)
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	p, err := proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{{Path: "/", Upstream: upURL, Auth: proxy.Public}}, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ traceparent, tracestate string }{
		{"00-not-a-trace-01", "vendor=stale"},
		{"", "vendor=orphan"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=kept"},
	} {
		r := httptest.NewRequest("GET", "http://app.example.com/x", nil)
		if tc.traceparent != "" {
			r.Header.Set("Traceparent", tc.traceparent)
		}
		r.Header.Set("Tracestate", tc.tracestate)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%q: %d", tc.traceparent, w.Code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	ended := spans.Ended()
	if len(got) != 3 || len(ended) != 3 {
		t.Fatalf("upstream requests %d, spans %d; want 3 and 3", len(got), len(ended))
	}
	for i, h := range got {
		sc := ended[i].SpanContext()
		want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
		if tp := h.Values("Traceparent"); len(tp) != 1 || tp[0] != want {
			t.Errorf("request %d: upstream traceparent %q, want the server span's %s", i, tp, want)
		}
		ts := h.Values("Tracestate")
		switch i {
		case 2:
			if len(ts) != 1 || ts[0] != "vendor=kept" || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("continued trace: tracestate %q, trace %s", ts, sc.TraceID())
			}
		default:
			if len(ts) != 0 {
				t.Errorf("request %d: a tracestate that belongs to no trace went upstream: %q", i, ts)
			}
		}
		if !hasAttr(ended[i].Attributes(), "sessiongate.route") {
			t.Errorf("request %d: span without its route: %v", i, ended[i].Attributes())
		}
	}
}

func hasAttr(kvs []attribute.KeyValue, key attribute.Key) bool {
	for _, kv := range kvs {
		if kv.Key == key {
			return true
		}
	}
	return false
}
