package sessioncheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sessiongate/sessiongate/clerkapi"
)

// ClerkLookup returns the StatusLookup that asks Clerk's Backend API
// through c (GET /v1/sessions/{sid}): Config.Lookup for a Go app, as
// sessiongate configures it from clerk.secret_key. A session Clerk does not
// know (404), or an id no Clerk session can have, wraps ErrSessionNotFound;
// a 429 is a *RateLimitedError carrying Clerk's Retry-After.
func ClerkLookup(c *clerkapi.Client) StatusLookup { return clerkLookup{c} }

type clerkLookup struct{ c *clerkapi.Client }

var _ StatusLookup = clerkLookup{}

func (l clerkLookup) SessionStatus(ctx context.Context, sid string) (string, error) {
	s, err := l.c.Get(ctx, sid)
	if err == nil {
		return string(s.Status), nil
	}
	var ae *clerkapi.APIError
	switch {
	case errors.Is(err, clerkapi.ErrNotFound), errors.Is(err, clerkapi.ErrInvalidParams):
		return "", fmt.Errorf("%w: %w", ErrSessionNotFound, err)
	case errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests:
		return "", &RateLimitedError{RetryAfter: ae.RetryAfter, Err: err}
	}
	return "", err
}
