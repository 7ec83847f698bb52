// Package machine verifies Clerk's opaque machine credentials (API keys
// "ak_…", M2M tokens "mt_…", OAuth access tokens "oat_…") through the
// Backend API, at a bounded cost: it implements middleware.MachineVerifier.
//
// Every credential not in the cache costs a Backend API call, which spends
// the instance's rate limit. The Verifier bounds that cost:
//
//   - results are cached, keyed by an HMAC of the credential under a random
//     per-process key, so only the exact same secret can hit: accepted
//     credentials for TTL (never past their own expiration), rejected ones
//     (unknown, revoked, expired) for NegativeTTL;
//   - concurrent requests with one credential share one call, run on a
//     context of its own;
//   - at most Concurrency calls are in flight;
//   - each client (address) may cause MissRate calls per second (MissBurst
//     at once); past that, 429 machine-token-rate-limited. A flood of
//     made-up credentials from one address therefore costs Clerk at most
//     that budget, and never delays credentials already cached.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package machine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/internal/flight"
	"github.com/sessiongate/sessiongate/internal/ratelimit"
	"github.com/sessiongate/sessiongate/middleware"
)

// Defaults of Config's zero values.
const (
	DefaultTTL         = 10 * time.Second
	DefaultNegativeTTL = 10 * time.Second
	DefaultConcurrency = 16
	DefaultMissRate    = 10
	DefaultMissBurst   = 20
	DefaultCacheSize   = 100_000
	DefaultTimeout     = 5 * time.Second
	// clientBuckets bounds the per-client rate-limit state.
	clientBuckets = 16_384
)

// Config configures a Verifier. Every field but API has a usable zero
// value.
type Config struct {
	// API calls the Backend API with the instance's secret key. Required.
	API *clerkapi.Client
	// M2MAPI, when set, verifies M2M tokens with a machine's secret key
	// instead of API (then only tokens granted to that machine verify).
	M2MAPI *clerkapi.Client
	// TTL is how long an accepted credential is trusted without asking
	// Clerk again; never past the credential's expiration. Zero:
	// DefaultTTL. A revocation at Clerk takes effect within TTL.
	TTL time.Duration
	// NegativeTTL is how long a rejected credential is refused from
	// memory. Zero: DefaultNegativeTTL.
	NegativeTTL time.Duration
	// Concurrency bounds the calls in flight. Zero: DefaultConcurrency.
	Concurrency int
	// MissRate is each client's budget of calls (cache misses) per
	// second. Zero: DefaultMissRate.
	MissRate float64
	// MissBurst is how many calls a client may make at once before
	// MissRate applies. Zero: DefaultMissBurst.
	MissBurst int
	// CacheSize bounds the cached results. Zero: DefaultCacheSize.
	CacheSize int
	// Timeout bounds one verification call, queueing for a slot included.
	// Zero: DefaultTimeout.
	Timeout time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Verifier verifies opaque machine credentials. It is safe for concurrent
// use.
type Verifier struct {
	api, m2m     *clerkapi.Client
	ttl, negTTL  time.Duration
	timeout      time.Duration
	now          func() time.Time
	macs         sync.Pool // of *mac: HMAC-SHA256 under the process key
	cache        *lru.Cache[[32]byte, result]
	flights      flight.Group[result]
	slots        chan struct{}
	clients      *ratelimit.Keyed
	verified     [4][numOutcomes]atomic.Uint64
	hits, misses atomic.Uint64
}

var _ middleware.MachineVerifier = (*Verifier)(nil)

// result is a cached (or shared) answer: an identity, or a rejection.
type result struct {
	id      *middleware.MachineIdentity
	reason  middleware.Reason // "" when id is set
	msg     string
	expires time.Time // when the cache entry stops being used
	retry   time.Duration
	cache   bool // false: not to be cached (Clerk unavailable)
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.API == nil {
		return nil, errors.New("machine: Config.API is required")
	}
	if cfg.TTL < 0 || cfg.NegativeTTL < 0 || cfg.Concurrency < 0 || cfg.MissRate < 0 || cfg.MissBurst < 0 || cfg.CacheSize < 0 || cfg.Timeout < 0 {
		return nil, errors.New("machine: Config durations, sizes and rates must not be negative")
	}
	v := &Verifier{
		api: cfg.API, m2m: cfg.M2MAPI,
		ttl: or(cfg.TTL, DefaultTTL), negTTL: or(cfg.NegativeTTL, DefaultNegativeTTL),
		timeout: or(cfg.Timeout, DefaultTimeout), now: cfg.Now,
		slots: make(chan struct{}, or(cfg.Concurrency, DefaultConcurrency)),
	}
	if v.m2m == nil {
		v.m2m = v.api
	}
	if v.now == nil {
		v.now = time.Now
	}
	macKey := make([]byte, 32)
	_, _ = rand.Read(macKey)
	v.macs.New = func() any { return &mac{h: hmac.New(sha256.New, macKey)} }
	var err error
	if v.cache, err = lru.New[[32]byte, result](or(cfg.CacheSize, DefaultCacheSize)); err != nil {
		return nil, err
	}
	v.clients = ratelimit.NewKeyed(orF(cfg.MissRate, DefaultMissRate), or(cfg.MissBurst, DefaultMissBurst), clientBuckets, v.now)
	return v, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func orF(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// mac is a pooled HMAC with the buffers it writes and sums into, which
// live on the heap with it: computing a key allocates nothing.
type mac struct {
	h   hash.Hash
	in  []byte
	sum [32]byte
}

// key is the cache and flight key of a credential: an HMAC under the
// process's random key, so the map never holds a secret and only the same
// secret of the same kind finds the entry.
func (v *Verifier) key(kind middleware.TokenType, secret string) (k [32]byte) {
	m := v.macs.Get().(*mac)
	m.h.Reset()
	m.in = append(append(append(m.in[:0], kind...), 0), secret...)
	m.h.Write(m.in)
	m.h.Sum(m.sum[:0])
	k = m.sum
	clear(m.in) // no secret stays in the pool
	v.macs.Put(m)
	return k
}

// VerifyMachine implements middleware.MachineVerifier.
func (v *Verifier) VerifyMachine(ctx context.Context, kind middleware.TokenType, secret, client string) (*middleware.MachineIdentity, error) {
	k := v.key(kind, secret)
	now := v.now()
	if r, ok := v.cache.Get(k); ok && now.Before(r.expires) {
		v.hits.Add(1)
		v.count(kind, r)
		return r.outcome()
	}
	v.misses.Add(1)
	if ok, wait := v.clients.Take(client); !ok {
		r := result{reason: middleware.ReasonMachineRateLimited, msg: "too many unknown credentials from this client: slow down", retry: wait}
		v.count(kind, r)
		return r.outcome()
	}
	ck := k // the closure's copy: k itself stays off the heap on a hit
	r, err := v.flights.Do(ctx, string(k[:]), v.timeout, func(fctx context.Context) (result, error) {
		r := v.call(fctx, kind, secret)
		if r.cache {
			v.cache.Add(ck, r)
		}
		return r, nil
	})
	if err != nil { // the caller went away
		return nil, &middleware.Error{Reason: middleware.ReasonMachineUnavailable, Message: "the credential could not be verified", Err: err}
	}
	v.count(kind, r)
	return r.outcome()
}

func (r result) outcome() (*middleware.MachineIdentity, error) {
	if r.id != nil {
		return r.id, nil
	}
	return nil, &middleware.Error{Reason: r.reason, Message: r.msg, RetryAfter: r.retry}
}

// call asks Clerk, within a slot.
func (v *Verifier) call(ctx context.Context, kind middleware.TokenType, secret string) result {
	select {
	case v.slots <- struct{}{}:
		defer func() { <-v.slots }()
	case <-ctx.Done():
		return unavailable("too many credential verifications are in flight", 0)
	}
	now := v.now()
	var (
		id      *middleware.MachineIdentity
		revoked bool
		expired bool
		err     error
	)
	switch kind {
	case middleware.APIKey:
		var k *clerkapi.APIKey
		if k, err = v.api.VerifyAPIKey(ctx, secret); err == nil {
			id = &middleware.MachineIdentity{Type: kind, ID: k.ID, Subject: k.Subject, Scopes: k.Scopes, Name: k.Name,
				Claims: nullToNil(k.Claims), Expiration: millis(k.Expiration)}
			revoked, expired = k.Revoked, k.Expired
		}
	case middleware.M2MToken:
		var t *clerkapi.M2MToken
		if t, err = v.m2m.VerifyM2MToken(ctx, secret); err == nil {
			id = &middleware.MachineIdentity{Type: kind, ID: t.ID, Subject: t.Subject, Scopes: t.Scopes,
				Claims: nullToNil(t.Claims), Expiration: millis(t.Expiration)}
			revoked, expired = t.Revoked, t.Expired
		}
	case middleware.OAuthToken:
		var t *clerkapi.OAuthAccessToken
		if t, err = v.api.VerifyOAuthAccessToken(ctx, secret); err == nil {
			if t.Active != nil && !*t.Active {
				expired = true
			}
			id = &middleware.MachineIdentity{Type: kind, ID: t.ID, Subject: t.Subject, Scopes: t.Scopes,
				ClientID: t.ClientID, Expiration: millis(t.Expiration)}
			revoked, expired = t.Revoked, expired || t.Expired
		}
	default:
		return result{reason: middleware.ReasonMachineTokenInvalid, msg: "not a machine credential", expires: now.Add(v.negTTL), cache: true}
	}
	if err != nil {
		return v.failure(err, now)
	}
	switch {
	case revoked:
		return result{reason: middleware.ReasonMachineTokenRevoked, msg: "the credential was revoked", expires: now.Add(v.negTTL), cache: true}
	case expired || (!id.Expiration.IsZero() && !now.Before(id.Expiration)):
		return result{reason: middleware.ReasonMachineTokenExpired, msg: "the credential has expired", expires: now.Add(v.negTTL), cache: true}
	}
	exp := now.Add(v.ttl)
	if !id.Expiration.IsZero() && id.Expiration.Before(exp) {
		exp = id.Expiration
	}
	return result{id: id, expires: exp, cache: true}
}

// failure maps a failed call: Clerk's 404 (and a refused request shape) is
// an unknown credential; anything else says nothing about the credential:
// our key refused (401/403), rate limited (429), down (5xx, network,
// timeout). Those are 503 and never cached.
func (v *Verifier) failure(err error, now time.Time) result {
	var apiErr *clerkapi.APIError
	if errors.As(err, &apiErr) {
		switch s := apiErr.StatusCode; {
		case s == http.StatusNotFound, s == http.StatusBadRequest, s == http.StatusUnprocessableEntity:
			return result{reason: middleware.ReasonMachineTokenInvalid, msg: "the credential is not known to Clerk", expires: now.Add(v.negTTL), cache: true}
		case s == http.StatusTooManyRequests:
			return unavailable("Clerk is rate-limiting verifications", apiErr.RetryAfter)
		case s == http.StatusUnauthorized || s == http.StatusForbidden:
			return unavailable("sessiongate's key for the Backend API was refused", 0)
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return unavailable("the Backend API did not answer in time", 0)
	}
	return unavailable("the Backend API could not be reached", 0)
}

func unavailable(msg string, retry time.Duration) result {
	return result{reason: middleware.ReasonMachineUnavailable, msg: "the credential could not be verified: " + msg, retry: retry}
}

func millis(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return time.UnixMilli(*ms)
}

func nullToNil(raw []byte) []byte {
	if string(raw) == "null" || len(raw) == 0 {
		return nil
	}
	return raw
}

// Outcomes counted by Stats.
const (
	OutcomeValid = iota
	OutcomeInvalid
	OutcomeRevoked
	OutcomeExpired
	OutcomeRateLimited
	OutcomeUnavailable
	numOutcomes
)

// OutcomeNames are the metric label values of the outcomes, by index.
var OutcomeNames = [numOutcomes]string{"valid", "invalid", "revoked", "expired", "rate_limited", "unavailable"}

var kinds = [4]middleware.TokenType{"", middleware.APIKey, middleware.M2MToken, middleware.OAuthToken}

func kindIndex(k middleware.TokenType) int {
	for i, v := range kinds {
		if v == k {
			return i
		}
	}
	return 0
}

func (v *Verifier) count(kind middleware.TokenType, r result) {
	o := OutcomeValid
	switch r.reason {
	case "":
	case middleware.ReasonMachineTokenInvalid:
		o = OutcomeInvalid
	case middleware.ReasonMachineTokenRevoked:
		o = OutcomeRevoked
	case middleware.ReasonMachineTokenExpired:
		o = OutcomeExpired
	case middleware.ReasonMachineRateLimited:
		o = OutcomeRateLimited
	default:
		o = OutcomeUnavailable
	}
	v.verified[kindIndex(kind)][o].Add(1)
}

// Stats are the Verifier's counters, for metrics.
type Stats struct {
	// Verifications counts answers by credential kind and outcome
	// (OutcomeNames), cache hits included.
	Verifications map[middleware.TokenType][numOutcomes]uint64
	// CacheHits and CacheMisses count cache lookups.
	CacheHits, CacheMisses uint64
	// CacheSize is the number of cached results.
	CacheSize int
}

// Stats returns the counters.
func (v *Verifier) Stats() Stats {
	s := Stats{Verifications: map[middleware.TokenType][numOutcomes]uint64{},
		CacheHits: v.hits.Load(), CacheMisses: v.misses.Load(), CacheSize: v.cache.Len()}
	for i, k := range kinds[1:] {
		var row [numOutcomes]uint64
		for o := range row {
			row[o] = v.verified[i+1][o].Load()
		}
		s.Verifications[k] = row
	}
	return s
}

// String never shows a key or a secret.
func (v *Verifier) String() string { return fmt.Sprintf("machine.Verifier{cached: %d}", v.cache.Len()) }
