// Package logctx carries the id of the request being served in its
// context, so that every log line written on the request's behalf, in
// whichever package, carries it as "request_id" (docs/configuration.md#log).
//
// The proxy puts the id there (its per-request state answers Key without an
// allocation of its own); the packages it calls (handshake, sessioncheck,
// clerkapi, webhook, middleware) add Field(ctx) to the lines they write
// while serving a request. The re-checks of a long-lived connection carry
// the id of the request that opened it. Background work (key refreshes,
// Redis resyncs) has no request and writes no request_id.
package logctx

import (
	"context"

	"go.uber.org/zap"
)

// Key is the context key of the request id. A context that answers it
// returns the id as a string.
type Key struct{}

// FieldName is the log field of the request id.
const FieldName = "request_id"

// WithRequestID returns a copy of ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, Key{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(Key{}).(string)
	return id
}

// Field is the request_id field of ctx's request, or a field that writes
// nothing when ctx serves no request.
func Field(ctx context.Context) zap.Field {
	if id := RequestID(ctx); id != "" {
		return zap.String(FieldName, id)
	}
	return zap.Skip()
}
