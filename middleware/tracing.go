package middleware

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessiongate/sessiongate/internal/tracing"
)

// Tracing (Config.TracerProvider). require and optional build the traced
// handler only when the Gate has a tracer, so the untraced handlers are
// the same as without this file.

func (g *Gate) setupTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) {
	if tp == nil {
		return
	}
	g.tracer = tracing.Tracer(tp, "middleware")
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	g.prop = prop
}

// traced is require (required) or optional with a span around the
// request: a child of the request context's span, or, without one, a
// server span continuing the trace of the request headers. The handler
// after the Gate runs inside it.
func (g *Gate) traced(p Policy, next http.Handler, required bool) http.Handler {
	name := "sessiongate.optional"
	if required {
		name = "sessiongate.require"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, kind := r.Context(), trace.SpanKindInternal
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx, kind = g.prop.Extract(ctx, propagation.HeaderCarrier(r.Header)), trace.SpanKindServer
		}
		ctx, span := g.tracer.Start(ctx, name, trace.WithSpanKind(kind))
		defer span.End()
		r = r.WithContext(ctx)
		a, err := g.AuthenticateAny(r, p)
		if span.IsRecording() {
			recordAuth(span, r, a, err, required)
		}
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(ContextWithAuth(ctx, a)))
		case required:
			g.WriteError(w, err)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// recordAuth puts the outcome of authenticating r on span: the credential
// kind, the user id, and for a rejection its reason (and, where the
// request is refused, the span's error status).
func recordAuth(span trace.Span, r *http.Request, a *Auth, err error, required bool) {
	kind := ClaimedTokenType(r)
	if a != nil {
		kind = a.Type
		switch {
		case a.Session != nil:
			span.SetAttributes(tracing.UserIDKey.String(a.Session.Subject))
		case a.Machine != nil:
			span.SetAttributes(tracing.UserIDKey.String(a.Machine.Subject))
		}
	}
	if kind != "" {
		span.SetAttributes(tracing.TokenTypeKey.String(string(kind)))
	}
	if err == nil {
		return
	}
	status, reason, _ := Outcome(err)
	span.SetAttributes(tracing.ReasonKey.String(string(reason)))
	if required {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		span.SetStatus(codes.Error, string(reason))
	}
}
