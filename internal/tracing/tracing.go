// Package tracing is what sessiongate's OpenTelemetry spans share: the
// instrumentation scope, the attribute keys, and the client span of a call
// to Clerk (a JWKS fetch, a Backend API call). The packages that make spans
// take a trace.TracerProvider in their Config (nil: no span, no cost); the
// binary builds the SDK provider (internal/app). See
// docs/deployment.md#tracing.
//
// An attribute never holds a token, a cookie, a secret key, a URL's query or
// an id from a URL path: client spans are named by route template
// ("GET /v1/sessions/{id}") and error descriptions are a status or a kind,
// never server text.
package tracing

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every sessiongate span; a
// package's tracer is named ScopeName + "/" + its package name.
const ScopeName = "github.com/sessiongate/sessiongate"

// Attribute keys of sessiongate's own span attributes (the others follow
// OpenTelemetry's HTTP semantic conventions).
const (
	// RouteKey is the route's name (host and path prefix, as configured).
	RouteKey = attribute.Key("sessiongate.route")
	// TokenTypeKey is the credential kind: session_token, api_key,
	// m2m_token or oauth_token.
	TokenTypeKey = attribute.Key("sessiongate.token_type")
	// ReasonKey is the outcome's reason code (X-Clerk-Auth-Reason,
	// docs/reason-codes.md); absent when the request was allowed.
	ReasonKey = attribute.Key("sessiongate.reason")
	// RequestIDKey is the request id of the access log (X-Request-Id).
	RequestIDKey = attribute.Key("sessiongate.request_id")
	// UserIDKey is the verified user id (the token's sub), the one piece of
	// a user's data a span may carry.
	UserIDKey = attribute.Key("enduser.id")
)

// Tracer returns the tracer of package pkg, or nil when tp is nil
// (tracing off).
func Tracer(tp trace.TracerProvider, pkg string) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(ScopeName + "/" + pkg)
}

// StartClient starts the client span of an outbound call made with method
// to u. name is the span's name: a route template, never a URL with ids.
// A nil tracer starts nothing and returns a nil span. links are added as
// span links (the requests a shared fetch serves).
func StartClient(ctx context.Context, t trace.Tracer, name, method string, u *url.URL, links ...trace.Link) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.template", name),
	}
	if u != nil {
		attrs = append(attrs, attribute.String("server.address", u.Hostname()))
		if p := port(u); p > 0 {
			attrs = append(attrs, attribute.Int("server.port", p))
		}
	}
	return t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...), trace.WithLinks(links...))
}

// EndClient ends a span StartClient started (nil: nothing) with the
// response's status (0: no response) and the call's error. A status of 400
// or more, or an error, marks the span failed with error.type set to the
// status or to the error's kind (ErrorKind); the error's
// text is not recorded (a server may echo the request).
func EndClient(span trace.Span, status int, err error) {
	if span == nil {
		return
	}
	if status > 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case status >= 400:
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		span.SetStatus(codes.Error, "status "+strconv.Itoa(status))
	case err != nil:
		kind := ErrorKind(err)
		span.SetAttributes(attribute.String("error.type", kind))
		span.SetStatus(codes.Error, kind)
	}
	span.End()
}

// ErrorKind names the kind of a failed call's error for error.type:
// "timeout", "canceled", "network" (a net.Error) or "other".
func ErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case ne != nil:
		return "network"
	}
	return "other"
}

// LinkFrom is a link to the span in ctx, for a shared call started on that
// request's behalf; ok is false when ctx has no span.
func LinkFrom(ctx context.Context) (trace.Link, bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

func port(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	switch u.Scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}
