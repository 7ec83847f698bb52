package handshake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/sessiongate/sessiongate/internal/logctx"
)

// Limits on nonce exchanges. Each exchange is a Backend API call made with
// the secret key, and it spends the same per-instance rate limit that
// session-status lookups and revocations need; the nonce is a cookie value
// any client can set, on a request any client can make look like a
// navigation.
const (
	// DefaultNonceRate is the sustained number of nonce exchanges per
	// second a Handshaker makes, whatever the traffic: the cap on what
	// nonces cost the Backend API.
	DefaultNonceRate = 5
	// DefaultNonceBurst is how many exchanges may run back to back before
	// DefaultNonceRate applies. Half of it is the reserve only clients
	// within their own budget may spend.
	DefaultNonceBurst = 20
	// DefaultNonceClientRate and DefaultNonceClientBurst are each client's
	// own budget: 3 at once (a redirect loop runs into the guard after
	// MaxRedirects = 3 returns), then one every 10 s. One browser returns
	// from a handshake once per navigation that found its session token
	// stale, and Clerk's JavaScript keeps the token fresh while a tab is
	// open, so a person rarely needs more than one a minute.
	DefaultNonceClientRate  = 0.1
	DefaultNonceClientBurst = 3
	// DefaultNonceFailureTTL is how long a nonce whose exchange failed is
	// answered from memory instead of asking again.
	DefaultNonceFailureTTL = 5 * time.Second

	// nonceFailureCacheSize bounds the failed-nonce cache. Only exchanges
	// that ran are cached, so at most burst + rate × TTL entries are live.
	nonceFailureCacheSize = 1024
	// nonceClientCacheSize bounds the per-client buckets (about 1 MiB at
	// most, with keys of maxClientKeyLen). The least recently used goes
	// first; a client whose bucket was dropped starts again with a full
	// one, as a new client does.
	nonceClientCacheSize = 4096
	// maxClientKeyLen: a longer Config.ClientKey is cut (clients whose
	// keys only differ beyond it share a budget).
	maxClientKeyLen = 64
	// maxNonceLen: a nonce longer than this is refused without a call
	// (Clerk's are a few dozen characters).
	maxNonceLen = 512
)

// Why an exchange did not run. The first two end as after a failed
// exchange; a rate-limited nonce is kept for a retry (resolve).
var (
	errNonceTooLong           = errors.New("handshake: the nonce is too long")
	errNonceFailedBefore      = errors.New("handshake: the nonce's exchange failed moments ago")
	errNonceRateLimited       = errors.New("handshake: too many nonce exchanges; this one was not attempted")
	errNonceClientRateLimited = fmt.Errorf("%w (this client has spent its own budget)", errNonceRateLimited)
)

// NonceStats counts what happened to __clerk_handshake_nonce cookies.
type NonceStats struct {
	// Exchanges are Backend API calls made; ExchangeFailures of them failed.
	Exchanges, ExchangeFailures uint64
	// CachedFailures were answered from the failed-nonce cache.
	CachedFailures uint64
	// RateLimited were refused by the rate limit, without a call, and kept
	// for a retry. RateLimitedClient of them were refused because their
	// client had spent its own budget and the process's spare exchanges
	// were gone; the others found the process's budget empty.
	RateLimited, RateLimitedClient uint64
	// Ignored arrived on a request that is not a navigation.
	Ignored uint64
	// Refreshes are Backend API session refreshes (the __refresh flow,
	// refresh.go), RefreshFailures of them failed, and RefreshRateLimited
	// were held back by the same limits (the handshake ran instead).
	Refreshes, RefreshFailures, RefreshRateLimited uint64
}

// nonces exchanges handshake nonces at a bounded cost: one call per nonce
// in flight (concurrent requests share it), failures remembered for a TTL,
// and a limiter over all calls.
type nonces struct {
	x         Exchanger // nil: no secret key
	timeout   time.Duration
	ttl       time.Duration
	now       func() time.Time
	log       *zap.Logger
	clientKey func(*http.Request) string
	group     singleflight.Group
	failed    *lru.Cache[string, time.Time] // nonce → until when it is refused
	limit     *limiter

	exchanges, exchangeFailures, cachedFailures, rateLimited, rateLimitedClient, ignored atomic.Uint64
	refreshes, refreshFailures, refreshLimited                                           atomic.Uint64 // refresh.go
}

// exchange returns the directives stored under nonce, for request r.
// Requests with the same nonce share one call, which runs on its own
// context bounded by the exchange timeout: a request that goes away stops
// waiting, the call goes on for the others. The call is charged to the
// client of the request that starts it. Any failure is an error; the caller
// applies no directives.
func (n *nonces) exchange(ctx context.Context, r *http.Request, nonce string) ([]string, error) {
	if len(nonce) > maxNonceLen {
		return nil, errNonceTooLong
	}
	if n.failedRecently(nonce) {
		return nil, errNonceFailedBefore
	}
	client := n.clientKey(r)
	ch := n.group.DoChan(nonce, func() (any, error) {
		// A request that checked the cache just before the previous flight
		// for this nonce ended finds its failure here.
		if n.failedRecently(nonce) {
			return nil, errNonceFailedBefore
		}
		v, changed := n.limit.take(client, n.now())
		if changed && v != refusedProcess {
			n.log.Info("Clerk handshake: nonce exchanges back under their rate limit", logctx.Field(ctx))
		}
		switch v {
		case refusedProcess:
			n.rateLimited.Add(1)
			if changed {
				n.log.Warn("Clerk handshake: nonce exchanges over their rate limit; navigations with a nonce are answered 503 and keep it until it refills",
					zap.Float64("per_second", n.limit.rate), zap.Float64("burst", n.limit.burst), logctx.Field(ctx))
			}
			return nil, errNonceRateLimited
		case refusedClient:
			n.rateLimited.Add(1)
			n.rateLimitedClient.Add(1)
			return nil, errNonceClientRateLimited
		}
		// Detached from the starting request's cancellation, not from its
		// values: its trace span and request id (internal/flight says why).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.timeout)
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

// peerIP is the default Config.ClientKey: the address of r's peer.
func peerIP(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return r.RemoteAddr
}

// verdict is a limiter's decision.
type verdict int

const (
	allowed verdict = iota
	// refusedClient: the client has spent its own budget and the process
	// is down to its reserve.
	refusedClient
	// refusedProcess: the process's bucket is empty.
	refusedProcess
)

// limiter decides whether a nonce exchange may start. The process's token
// bucket caps the calls; each client has a small bucket of its own, and the
// process's bucket has a reserve (half its burst) that only a client with a
// token of its own may spend:
//
//   - a client within its budget spends one of its tokens and one of the
//     process's, down to empty;
//   - a client over its budget may still spend the process's tokens above
//     the reserve.
//
// So one client, however fast, drains its own budget and the process's
// spare capacity but never the reserve that other clients' returning
// handshakes draw on. The second rule keeps clients that share a key (a
// front proxy missing from trusted_proxies, a NAT) from being held to one
// client's budget while the process has capacity to spare.
type limiter struct {
	rate, burst, reserve    float64
	clientRate, clientBurst float64

	mu      sync.Mutex // guards following
	global  tokens
	clients *simplelru.LRU[string, *tokens]
	dry     bool // the last take found the process's bucket empty
}

// tokens is a token bucket's level.
type tokens struct {
	n    float64
	last time.Time // of the last refill; zero before the first
}

func newLimiter(rate float64, burst int, clientRate float64, clientBurst int) *limiter {
	clients, err := simplelru.NewLRU[string, *tokens](nonceClientCacheSize, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &limiter{
		rate: rate, burst: float64(burst), reserve: float64(burst) / 2,
		clientRate: clientRate, clientBurst: float64(clientBurst),
		global: tokens{n: float64(burst)}, clients: clients,
	}
}

// take decides one exchange for client at now and spends its tokens.
// changed reports that the process's bucket ran dry or recovered since the
// previous take, for logging once per episode rather than once per request.
func (l *limiter) take(client string, now time.Time) (v verdict, changed bool) {
	if len(client) > maxClientKeyLen {
		client = client[:maxClientKeyLen]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.rate, l.burst)
	c, ok := l.clients.Get(client)
	if !ok {
		c = &tokens{n: l.clientBurst}
		l.clients.Add(client, c)
	}
	c.refill(now, l.clientRate, l.clientBurst)
	switch {
	case l.global.n < 1:
		v = refusedProcess
	case c.n >= 1:
		c.n--
		l.global.n--
	case l.global.n >= l.reserve+1:
		l.global.n--
	default:
		v = refusedClient
	}
	dry := v == refusedProcess
	changed = dry != l.dry
	l.dry = dry
	return v, changed
}

// refill adds what rate has earned since the last refill, up to burst. A
// clock that steps back refills nothing.
func (t *tokens) refill(now time.Time, rate, burst float64) {
	if !t.last.IsZero() && now.After(t.last) {
		t.n = min(burst, t.n+now.Sub(t.last).Seconds()*rate)
	}
	if t.last.IsZero() || now.After(t.last) {
		t.last = now
	}
}
