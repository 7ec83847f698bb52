package proxy

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/tracing"
	"github.com/sessiongate/sessiongate/middleware"
)

// Tracing (Options.TracerProvider). Everything here runs only with a
// tracer: ServeHTTP and rewrite test p.tracer != nil before calling in, so
// that tracing off costs a nil check and nothing else.

// serverSpan is the start option of every request's span, built once.
var serverSpan = trace.WithSpanKind(trace.SpanKindServer)

// setupTracing keeps the tracer and propagator of a Proxy; tp nil leaves
// tracing off.
func (p *Proxy) setupTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) {
	if tp == nil {
		return
	}
	p.tracer = tracing.Tracer(tp, "proxy")
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	p.prop = prop
	for _, f := range prop.Fields() {
		p.propFields = append(p.propFields, http.CanonicalHeaderKey(f))
	}
}

// startSpan continues the caller's trace from r's headers and starts the
// request's server span; st.Context becomes the span's context, so that
// the calls made for the request (key fetches, Backend API calls) are its
// children and rewrite passes it upstream.
func (p *Proxy) startSpan(r *http.Request, st *state) trace.Span {
	ctx := p.prop.Extract(st.Context, propagation.HeaderCarrier(r.Header))
	method := spanMethod(r.Method)
	ctx, span := p.tracer.Start(ctx, method, serverSpan)
	if span.IsRecording() { // an unsampled request pays for no attribute
		span.SetAttributes(attribute.String("http.request.method", method), tracing.RequestIDKey.String(st.requestID))
	}
	st.Context = ctx
	return span
}

// endSpan records the request's outcome on its span and ends it: the
// route, the credential kind, the reason code, the status and the user
// id. A rejection (a reason with a 4xx or 5xx) and any 5xx mark the span
// failed, the reason as its description.
func (p *Proxy) endSpan(span trace.Span, r *http.Request, st *state, ev Event) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, attribute.Int("http.response.status_code", ev.Status))
	if ev.Route != "" {
		span.SetName(spanMethod(r.Method) + " " + ev.Route)
		attrs = append(attrs, tracing.RouteKey.String(ev.Route))
	}
	if t := tokenType(r, st); t != "" {
		attrs = append(attrs, tracing.TokenTypeKey.String(string(t)))
	}
	if ev.Reason != "" {
		attrs = append(attrs, tracing.ReasonKey.String(string(ev.Reason)))
	}
	if ev.UserID != "" {
		attrs = append(attrs, tracing.UserIDKey.String(ev.UserID))
	}
	if ev.UpstreamError != "" {
		attrs = append(attrs, attribute.String("error.type", ev.UpstreamError))
	}
	span.SetAttributes(attrs...)
	switch {
	case ev.Reason != "" && ev.Status >= 400:
		span.SetStatus(codes.Error, string(ev.Reason))
	case ev.Status >= 500:
		span.SetStatus(codes.Error, http.StatusText(ev.Status))
	}
}

// tokenType is the kind of the request's credential: the verified one's,
// else what its form tells (middleware.ClaimedTokenType).
func tokenType(r *http.Request, st *state) middleware.TokenType {
	switch {
	case st.machine != nil:
		return st.machine.Type
	case st.claims != nil:
		return middleware.SessionToken
	}
	return middleware.ClaimedTokenType(r)
}

// injectTrace puts the server span's trace context on the upstream
// request, in place of the caller's headers of the same names.
func (p *Proxy) injectTrace(out *http.Request, st *state) {
	for _, f := range p.propFields {
		delete(out.Header, f)
	}
	p.prop.Inject(st.Context, propagation.HeaderCarrier(out.Header))
}

// traceField is the access log's trace_id: the request's trace, or a field
// that writes nothing with tracing off.
func traceField(span trace.Span) zap.Field {
	if id := traceID(span); id != "" {
		return zap.String("trace_id", id)
	}
	return zap.Skip()
}

// traceID is span's trace id in hex, or "" without one.
func traceID(span trace.Span) string {
	if span == nil {
		return ""
	}
	if sc := span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// spanMethod is the method for span names and attributes: a known one, or
// "_OTHER" (a client may send any token as a method).
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}
