package app_test

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
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// otlpReceiver is an OTLP/HTTP collector: POST /v1/traces with an
// ExportTraceServiceRequest in protobuf, gzipped or not. It keeps every
// span and every problem with a request, for the test to check.
type otlpReceiver struct {
	url string

	mu       sync.Mutex // guards following
	spans    []*tracepb.Span
	problems []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *otlpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	req, err := decodeExport(r)
	rc.mu.Lock()
	if err != nil {
		rc.problems = append(rc.problems, err.Error())
	} else {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				rc.spans = append(rc.spans, ss.GetSpans()...)
			}
		}
	}
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func decodeExport(r *http.Request) (*coltracepb.ExportTraceServiceRequest, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		return nil, fmt.Errorf("%s %s: want POST /v1/traces", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return nil, fmt.Errorf("Content-Type %q", ct)
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return nil, err
	}
	return req, nil
}

// received returns the spans and the problems seen so far.
func (rc *otlpReceiver) received() ([]*tracepb.Span, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...), append([]string(nil), rc.problems...)
}

// headerRecorder is an upstream that records the trace headers it got.
type headerRecorder struct {
	mu  sync.Mutex // guards following
	got []http.Header
}

func (hr *headerRecorder) handler(w http.ResponseWriter, r *http.Request) {
	hr.mu.Lock()
	hr.got = append(hr.got, http.Header{"Traceparent": r.Header.Values("Traceparent"), "Tracestate": r.Header.Values("Tracestate")})
	hr.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (hr *headerRecorder) requests() []http.Header {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return append([]http.Header(nil), hr.got...)
}

func getTraced(t *testing.T, url, token, traceparent string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
		req.Header.Set("Tracestate", "vendor=opaque")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		m[kv.GetKey()] = anyString(kv.GetValue())
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return v.String()
}

func spansOf(spans []*tracepb.Span, traceID string, kind tracepb.Span_SpanKind) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID && s.GetKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

func TestTracingExportsSpansOverOTLPAndContinuesTheTraceUpstream(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	up := &headerRecorder{}
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Tracing.Endpoint = rc.url
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckStrict}}
	}, up.handler)
	h.waitReady(t, 200)
	sid := h.inst.CreateSession("user_traced")
	tok := h.inst.MustMint(t, clerktest.WithSession(sid))
	expired := h.inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Hour)))

	const (
		okTrace, okParent   = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		badTrace, badParent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	)
	ok := getTraced(t, h.proxyURL+"/items", tok, "00-"+okTrace+"-"+okParent+"-01")
	if ok.StatusCode != 200 {
		t.Fatalf("valid token: %d", ok.StatusCode)
	}
	bad := getTraced(t, h.proxyURL+"/items", expired, "00-"+badTrace+"-"+badParent+"-01")
	if bad.StatusCode != 401 {
		t.Fatalf("expired token: %d", bad.StatusCode)
	}
	h.app.Close() // flushes the batched spans (what the binary does on exit)

	// The upstream got the trace, with sessiongate's span as the parent.
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream requests: %d, want 1", len(got))
	}
	tp := got[0].Values("Traceparent")
	if len(tp) != 1 {
		t.Fatalf("upstream traceparent: %q", tp)
	}
	parts := strings.Split(tp[0], "-")
	if len(parts) != 4 || parts[1] != okTrace || parts[2] == okParent || parts[3] != "01" {
		t.Fatalf("upstream traceparent %q: want trace %s with a new parent span", tp[0], okTrace)
	}
	if ts := got[0].Values("Tracestate"); len(ts) != 1 || ts[0] != "vendor=opaque" {
		t.Errorf("upstream tracestate: %q", ts)
	}

	spans, problems := rc.received()
	if len(problems) > 0 {
		t.Fatalf("receiver: %q", problems)
	}
	for _, s := range spans {
		all := s.GetName() + " " + s.GetStatus().GetMessage()
		for _, kv := range s.GetAttributes() {
			all += " " + anyString(kv.GetValue())
		}
		for _, secret := range []string{tok, expired, tok[len(tok)-40:], expired[len(expired)-40:]} {
			if strings.Contains(all, secret) {
				t.Fatalf("span %q carries a token: %s", s.GetName(), all)
			}
		}
	}

	servers := spansOf(spans, okTrace, tracepb.Span_SPAN_KIND_SERVER)
	if len(servers) != 1 {
		t.Fatalf("server spans of trace %s: %d (of %d spans)", okTrace, len(servers), len(spans))
	}
	srv := servers[0]
	if hex.EncodeToString(srv.GetParentSpanId()) != okParent || hex.EncodeToString(srv.GetSpanId()) != parts[2] {
		t.Errorf("server span %x (parent %x): want parent %s and the id the upstream got, %s",
			srv.GetSpanId(), srv.GetParentSpanId(), okParent, parts[2])
	}
	if srv.GetTraceState() != "vendor=opaque" {
		t.Errorf("server span tracestate %q", srv.GetTraceState())
	}
	a := attrs(srv)
	for k, want := range map[string]string{
		"sessiongate.route":         "/",
		"sessiongate.token_type":    "session_token",
		"enduser.id":                "user_traced",
		"http.request.method":       "GET",
		"http.response.status_code": "200",
		"sessiongate.request_id":    ok.Header.Get("X-Request-Id"),
	} {
		if a[k] != want {
			t.Errorf("server span %s = %q, want %q", k, a[k], want)
		}
	}
	if _, has := a["sessiongate.reason"]; has || srv.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("allowed request: reason %q, status %v", a["sessiongate.reason"], srv.GetStatus())
	}
	if srv.GetName() != "GET /" {
		t.Errorf("server span name %q", srv.GetName())
	}

	// The strict session check's Backend API call is a child of the server span.
	clients := spansOf(spans, okTrace, tracepb.Span_SPAN_KIND_CLIENT)
	if len(clients) != 1 || clients[0].GetName() != "GET /v1/sessions/{id}" || !bytes.Equal(clients[0].GetParentSpanId(), srv.GetSpanId()) {
		t.Errorf("Backend API client spans of the trace: %v", clients)
	} else if ca := attrs(clients[0]); ca["http.response.status_code"] != "200" || strings.Contains(fmt.Sprint(ca), sid) {
		t.Errorf("Backend API client span attributes: %v", ca)
	}

	// The start-up JWKS fetch has its client span.
	jwksSpans := 0
	for _, s := range spans {
		if s.GetName() == "GET jwks" && s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT {
			jwksSpans++
			if ja := attrs(s); ja["http.response.status_code"] != "200" || ja["server.address"] != "127.0.0.1" {
				t.Errorf("JWKS client span attributes: %v", ja)
			}
		}
	}
	if jwksSpans == 0 {
		t.Errorf("no JWKS client span among %d spans", len(spans))
	}

	// The rejected request: its reason, and an error status.
	rejected := spansOf(spans, badTrace, tracepb.Span_SPAN_KIND_SERVER)
	if len(rejected) != 1 {
		t.Fatalf("server spans of the rejected request: %d", len(rejected))
	}
	ra := attrs(rejected[0])
	if want := bad.Header.Get("X-Clerk-Auth-Reason"); want == "" || ra["sessiongate.reason"] != want || ra["http.response.status_code"] != "401" {
		t.Errorf("rejected span attributes %v, want reason %q and status 401", ra, want)
	}
	if st := rejected[0].GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != ra["sessiongate.reason"] {
		t.Errorf("rejected span status %v", st)
	}
	if _, has := ra["enduser.id"]; has {
		t.Errorf("rejected span has a user id: %v", ra)
	}
}

func TestTracingOffPassesTraceHeadersThroughUntouched(t *testing.T) {
	t.Parallel()
	up := &headerRecorder{}
	h := start(t, nil, up.handler)
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t)
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp := getTraced(t, h.proxyURL+"/a", tok, incoming); resp.StatusCode != 200 {
		t.Fatalf("with traceparent: %d", resp.StatusCode)
	}
	if resp := getTraced(t, h.proxyURL+"/b", tok, ""); resp.StatusCode != 200 {
		t.Fatalf("without traceparent: %d", resp.StatusCode)
	}
	got := up.requests()
	if len(got) != 2 {
		t.Fatalf("upstream requests: %d", len(got))
	}
	if tp, ts := got[0].Values("Traceparent"), got[0].Values("Tracestate"); len(tp) != 1 || tp[0] != incoming || len(ts) != 1 || ts[0] != "vendor=opaque" {
		t.Errorf("tracing off: upstream got traceparent %q, tracestate %q; want the client's, unchanged", tp, ts)
	}
	if tp, ts := got[1].Values("Traceparent"), got[1].Values("Tracestate"); len(tp) != 0 || len(ts) != 0 {
		t.Errorf("tracing off: a trace was invented: traceparent %q, tracestate %q", tp, ts)
	}
	for _, e := range h.logs.All() {
		if _, has := e.ContextMap()["trace_id"]; has {
			t.Errorf("tracing off: log line %q has a trace_id", e.Message)
		}
	}
}
