package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sessiongate/sessiongate/clerktest"
)

// otlpSpans is an OTLP/HTTP collector (POST /v1/traces, protobuf, gzipped
// or not) that keeps the spans it receives with their service.name.
type otlpSpans struct {
	mu       sync.Mutex // guards following
	spans    []*tracepb.Span
	services []string // service.name of each span's resource
	problems []string
}

func (o *otlpSpans) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(data, req)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		o.problems = append(o.problems, fmt.Sprintf("%s %s %s: %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, s)
				o.services = append(o.services, service)
			}
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// serverSpan returns the server span of traceID and its service.name.
func (o *otlpSpans) serverSpan(traceID []byte) (*tracepb.Span, string, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, s := range o.spans {
		if s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && bytes.Equal(s.GetTraceId(), traceID) {
			return s, o.services[i], o.problems
		}
	}
	return nil, "", o.problems
}

// TestBinaryExportsTracesWithTheOTELVariables: serve, with tracing
// configured by the standard variables alone (no tracing block), continues
// a caller's traceparent to the upstream and exports the request's server
// span over OTLP/HTTP in protobuf, with the route, the credential kind, the
// user id and OTEL_SERVICE_NAME.
func TestBinaryExportsTracesWithTheOTELVariables(t *testing.T) {
	t.Parallel()
	collector := &otlpSpans{}
	col := httptest.NewServer(collector)
	t.Cleanup(col.Close)
	var mu sync.Mutex
	var upstreamTP string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamTP = r.Header.Get("Traceparent")
		mu.Unlock()
	}))
	t.Cleanup(up.Close)

	b := startServe(t, fmt.Sprintf("routes:\n  - {path: /, upstream: %q}\n", up.URL),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL,
		"OTEL_SERVICE_NAME=gate-under-test",
		"OTEL_BSP_SCHEDULE_DELAY=50", // export within 50 ms, not the default 5 s
	)
	const traceHex, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("GET", "http://"+b.listen+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+b.inst.MustMint(t, clerktest.WithUser("user_traced")))
	req.Header.Set("Traceparent", "00-"+traceHex+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	traceID, _ := hex.DecodeString(traceHex)
	var span *tracepb.Span
	var service string
	b.waitFor(t, "the collector to receive the request's server span", func() bool {
		span, service, _ = collector.serverSpan(traceID)
		return span != nil
	})
	if _, _, problems := collector.serverSpan(traceID); len(problems) > 0 {
		t.Errorf("malformed exports: %v", problems)
	}
	if got := hex.EncodeToString(span.GetParentSpanId()); got != callerSpan {
		t.Errorf("server span's parent %s, want the caller's %s", got, callerSpan)
	}
	if service != "gate-under-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}
	attrs := map[string]string{}
	for _, a := range span.GetAttributes() {
		attrs[a.GetKey()] = a.GetValue().GetStringValue()
	}
	for k, want := range map[string]string{"sessiongate.route": "/", "sessiongate.token_type": "session_token", "enduser.id": "user_traced"} {
		if attrs[k] != want {
			t.Errorf("span attribute %s = %q, want %q (span %q, attributes %v)", k, attrs[k], want, span.GetName(), attrs)
		}
	}
	mu.Lock()
	tp := upstreamTP
	mu.Unlock()
	spanHex := hex.EncodeToString(span.GetSpanId())
	if want := "00-" + traceHex + "-" + spanHex + "-01"; tp != want {
		t.Errorf("upstream traceparent %q, want %q (the trace continued, the server span as parent)", tp, want)
	}
	if strings.Contains(b.stderr.String(), "exporting spans failed") {
		t.Errorf("export failures logged:\n%s", b.stderr.String())
	}
}
