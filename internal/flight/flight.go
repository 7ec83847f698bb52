// Package flight coalesces concurrent calls that fetch the same thing into
// one call, run on a context of its own.
//
// It is the one home of a rule the session-status and template-token
// caches share: a call made on behalf of several requests MUST NOT run on
// any one request's context, or the first client to go away fails every
// other one (and a circuit breaker fed by the result counts a client's
// disconnection as a Backend API failure). The shared call runs on a
// long-lived context with its own timeout; each caller waits on its own
// context.
package flight

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// Group coalesces calls by key. The zero value is ready; a Group must not
// be copied after first use.
type Group[V any] struct {
	g singleflight.Group
}

// Do calls fn once for all the callers of key while a call for key is in
// flight, and hands its result to each of them.
//
// fn runs on a context detached from the cancellation and deadline of
// every caller's (context.WithoutCancel bounded by timeout), so it is not
// cancelled when the caller that started it goes away, and anything fn
// caches or records outlives that caller. It keeps the values of the
// context of the caller that started it: its trace span, whose child the
// call's spans are, and its request id, which the call's log lines carry
// (internal/logctx). A
// caller whose ctx ends first gets ctx.Err() at once; the call goes on for
// the others. A caller whose ctx has already ended starts nothing.
func (g *Group[V]) Do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (V, error)) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	ch := g.g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(V), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
