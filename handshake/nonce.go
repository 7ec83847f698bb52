package handshake

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Limits on nonce exchanges. Each exchange is a Backend API call made with
// the secret key, and it spends the same per-instance rate limit that
// session-status lookups and revocations need; the nonce is a cookie value
// any client can set.
const (
	// DefaultNonceRate is the sustained number of nonce exchanges per
	// second a Handshaker makes, whatever the traffic.
	DefaultNonceRate = 5
	// DefaultNonceBurst is how many exchanges may run back to back before
	// DefaultNonceRate applies.
	DefaultNonceBurst = 20
	// DefaultNonceFailureTTL is how long a nonce whose exchange failed is
	// answered from memory instead of asking again.
	DefaultNonceFailureTTL = 5 * time.Second

	// nonceFailureCacheSize bounds the failed-nonce cache. Only exchanges
	// that ran are cached, so at most burst + rate × TTL entries are live.
	nonceFailureCacheSize = 1024
	// maxNonceLen: a nonce longer than this is refused without a call
	// (Clerk's are a few dozen characters).
	maxNonceLen = 512
)

// Why an exchange did not run; the request ends as after a failed exchange.
var (
	errNonceTooLong      = errors.New("handshake: the nonce is too long")
	errNonceFailedBefore = errors.New("handshake: the nonce's exchange failed moments ago")
	errNonceRateLimited  = errors.New("handshake: too many nonce exchanges; this one was not attempted")
)

// NonceStats counts what happened to __clerk_handshake_nonce cookies.
type NonceStats struct {
	// Exchanges are Backend API calls made; ExchangeFailures of them failed.
	Exchanges, ExchangeFailures uint64
	// CachedFailures were answered from the failed-nonce cache.
	CachedFailures uint64
	// RateLimited were refused by the rate limit, without a call.
	RateLimited uint64
	// Ignored arrived on a request that is not a navigation.
	Ignored uint64
}

// nonces exchanges handshake nonces at a bounded cost: one call per nonce
// in flight (concurrent requests share it), failures remembered for a TTL,
// and a token bucket over all calls.
type nonces struct {
	x       Exchanger // nil: no secret key
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time
	log     *zap.Logger
	group   singleflight.Group
	failed  *lru.Cache[string, time.Time] // nonce → until when it is refused
	bucket  bucket

	exchanges, exchangeFailures, cachedFailures, rateLimited, ignored atomic.Uint64
}

// exchange returns the directives stored under nonce. Requests with the same
// nonce share one call, which runs on its own context bounded by the
// exchange timeout: a request that goes away stops waiting, the call goes on
// for the others. Any failure is an error; the caller applies no directives.
func (n *nonces) exchange(ctx context.Context, nonce string) ([]string, error) {
	if len(nonce) > maxNonceLen {
		return nil, errNonceTooLong
	}
	if n.failedRecently(nonce) {
		return nil, errNonceFailedBefore
	}
	ch := n.group.DoChan(nonce, func() (any, error) {
		// A request that checked the cache just before the previous flight
		// for this nonce ended finds its failure here.
		if n.failedRecently(nonce) {
			return nil, errNonceFailedBefore
		}
		ok, changed := n.bucket.take(n.now())
		if !ok {
			n.rateLimited.Add(1)
			if changed {
				n.log.Warn("Clerk handshake: nonce exchanges over their rate limit; requests with a nonce end signed-out until it refills",
					zap.Float64("per_second", n.bucket.rate), zap.Float64("burst", n.bucket.burst))
			}
			return nil, errNonceRateLimited
		}
		if changed {
			n.log.Info("Clerk handshake: nonce exchanges back under their rate limit")
		}
		cctx, cancel := context.WithTimeout(context.Background(), n.timeout)
		defer cancel()
		n.exchanges.Add(1)
		d, err := n.x.GetHandshakePayload(cctx, nonce)
		if err != nil {
			n.exchangeFailures.Add(1)
			// Remembered before the flight ends, so that no request can
			// start another call for this nonce in between.
			n.failed.Add(nonce, n.now().Add(n.ttl))
			return nil, err
		}
		return d, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		// Shared by every waiter: read-only from here on (filter copies).
		d, _ := r.Val.([]string)
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *nonces) failedRecently(nonce string) bool {
	until, ok := n.failed.Get(nonce)
	if !ok {
		return false
	}
	if !n.now().Before(until) {
		n.failed.Remove(nonce)
		return false
	}
	n.cachedFailures.Add(1)
	return true
}

// bucket is a token bucket: burst tokens, refilled at rate per second.
type bucket struct {
	rate, burst float64

	mu     sync.Mutex // guards following
	tokens float64
	last   time.Time // of the last refill; zero before the first take
	dry    bool      // the last take found no token
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take spends one token if there is one. changed reports that ok differs
// from the previous take's (the bucket ran dry, or recovered), for logging
// once per episode rather than once per request.
func (b *bucket) take(now time.Time) (ok, changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A clock that steps back refills nothing.
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	ok = b.tokens >= 1
	if ok {
		b.tokens--
	}
	changed = ok == b.dry
	b.dry = !ok
	return ok, changed
}
