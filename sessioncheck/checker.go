// Package sessioncheck is step 6 of the pipeline: is the session of a
// verified token still alive? It implements middleware.SessionChecker with
// a deny list consulted first on every route, and per-route Backend API
// lookups (GET /v1/sessions/{sid}, status must be active):
//
//   - Off: the deny list only; networkless.
//   - Cached: the looked-up status is kept for a TTL in a bounded LRU;
//     concurrent requests for one sid share one lookup.
//   - Strict: a lookup on every request.
//
// Lookup failures follow the route's OnError: Deny answers 503
// session-status-unavailable, Allow trusts the verified token (counted). A
// circuit breaker stops calling a failing Backend API for a cooldown.
// Inactive statuses seen go on the deny list.
//
// A request whose client goes away (its context cancelled, or its own
// deadline passed) before the status is known is answered
// session-status-unavailable, and is never a Backend API failure: it does
// not count toward the breaker, is not cached, and does not end a lookup
// other requests share.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package sessioncheck

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/flight"
	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
)

// StatusLookup asks the Backend API for a session's status ("active",
// "revoked", …). It returns an error wrapping ErrSessionNotFound when Clerk
// answers 404, and a *RateLimitedError on 429.
type StatusLookup interface {
	// SessionStatus returns the status of session sid as Clerk spells it.
	SessionStatus(ctx context.Context, sid string) (string, error)
}

// ErrSessionNotFound means Clerk does not know the session: it is treated as
// revoked.
var ErrSessionNotFound = errors.New("sessioncheck: session not found")

// RateLimitedError is a lookup refused with 429; the breaker stays open for
// RetryAfter.
type RateLimitedError struct {
	// RetryAfter is the answer's Retry-After; zero when it had none (the
	// 429 then counts as an ordinary failure).
	RetryAfter time.Duration
	// Err is the lookup's error (a *clerkapi.APIError from ClerkLookup).
	Err error
}

// Error describes the refusal with the cause's text.
func (e *RateLimitedError) Error() string { return "sessioncheck: rate limited: " + e.Err.Error() }

// Unwrap returns Err, for errors.Is and errors.As.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// Mode is a route's session_check.
type Mode int

// Modes.
const (
	Off Mode = iota
	Cached
	Strict
)

// OnError is a route's on_session_check_error.
type OnError int

// What to do when the status cannot be looked up.
const (
	Deny OnError = iota
	Allow
)

// ParseMode reads a mode by its name in the configuration file's
// session_check key ("off", "cached", "strict"; "" is Off, the default).
// ok is false for any other name. It is the one translation from the
// configuration's spelling to the mode.
func ParseMode(name string) (m Mode, ok bool) {
	switch name {
	case "", "off":
		return Off, true
	case "cached":
		return Cached, true
	case "strict":
		return Strict, true
	}
	return Off, false
}

// String is the mode's name in the configuration file.
func (m Mode) String() string {
	switch m {
	case Cached:
		return "cached"
	case Strict:
		return "strict"
	default:
		return "off"
	}
}

// ParseOnError reads the configuration file's on_session_check_error
// ("deny", "allow"; "" is Deny, the default). ok is false for any other
// name.
func ParseOnError(name string) (e OnError, ok bool) {
	switch name {
	case "", "deny":
		return Deny, true
	case "allow":
		return Allow, true
	}
	return Deny, false
}

// String is the policy's name in the configuration file.
func (e OnError) String() string {
	if e == Allow {
		return "allow"
	}
	return "deny"
}

// Config configures a Service.
type Config struct {
	// Lookup asks Clerk. Required unless every route is Off.
	Lookup StatusLookup
	// CachedLookup, when set, is what Cached mode asks instead of Lookup
	// (a status cache shared by replicas); Strict mode always asks Lookup.
	CachedLookup StatusLookup
	// DenyList is consulted first on every route. Required.
	DenyList *DenyList
	// CacheSize bounds the status cache. Zero means 100,000.
	CacheSize int
	// TTL is how long an active status is trusted in Cached mode. Zero
	// means 10 s.
	TTL time.Duration
	// LookupTimeout bounds one lookup, whoever waits for it; a lookup that
	// runs out of it is a Backend API failure. Zero means 5 s.
	LookupTimeout time.Duration
	// BreakerFailures consecutive failures open the breaker. Zero means 5.
	BreakerFailures int
	// BreakerCooldown is the first open period; it doubles up to 60 s while
	// trial lookups keep failing. Zero means 5 s.
	BreakerCooldown time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger gets breaker transitions and lookup failures. Nil: nop.
	Logger *zap.Logger
}

// Service holds the state every route's checker shares.
type Service struct {
	lookup  StatusLookup
	cached  StatusLookup // Cached mode's lookup
	deny    *DenyList
	cache   *lru.Cache[string, entry]
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *zap.Logger
	flights flight.Group[string] // Cached mode's lookups, one per sid
	breaker breaker

	lookups, lookupErrors, cacheHits, allowedOnError, denied, abandoned atomic.Uint64
	lastEvictionLog                                                     atomic.Int64 // unix ns
}

type entry struct {
	status string
	until  time.Time
}

// New builds a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DenyList == nil {
		return nil, errors.New("sessioncheck: Config.DenyList is required")
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 100_000
	}
	cache, err := lru.New[string, entry](size)
	if err != nil {
		return nil, err
	}
	s := &Service{
		lookup: cfg.Lookup, cached: cfg.CachedLookup, deny: cfg.DenyList, cache: cache,
		ttl: cfg.TTL, timeout: cfg.LookupTimeout, now: cfg.Now, log: cfg.Logger,
	}
	if s.cached == nil {
		s.cached = s.lookup
	}
	if s.ttl <= 0 {
		s.ttl = 10 * time.Second
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.breaker = breaker{threshold: cfg.BreakerFailures, base: cfg.BreakerCooldown, max: 60 * time.Second}
	if s.breaker.threshold <= 0 {
		s.breaker.threshold = 5
	}
	if s.breaker.base <= 0 {
		s.breaker.base = 5 * time.Second
	}
	s.deny.onEvictContext(s.logEviction)
	return s, nil
}

// logEviction warns, at most once a minute, that the deny list is full and
// dropped a live revocation (see DenyList), with the request_id of the
// request whose revocation took its place, if a request made it.
func (s *Service) logEviction(ctx context.Context, sid string, until time.Time) {
	now := s.now().UnixNano()
	last := s.lastEvictionLog.Load()
	if now-last < int64(time.Minute) || !s.lastEvictionLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("deny list full: a live revocation was dropped (the one closest to expiry); raise its size",
		zap.String("sid", sid), zap.Time("until", until), zap.Uint64("evictions", s.deny.Evictions()), logctx.Field(ctx))
}

// DenyList is the Service's deny list.
func (s *Service) DenyList() *DenyList { return s.deny }

// Stats are the Service's counters, for metrics.
type Stats struct {
	// Lookups counts Backend API status lookups made; LookupErrors those
	// that failed (a 404 is an answer, not a failure) and those the open
	// breaker refused; CacheHits requests answered from the status cache;
	// AllowedOnError requests let through by OnError Allow without a
	// status; Denied requests refused by the deny list.
	Lookups, LookupErrors, CacheHits, AllowedOnError, Denied uint64
	// Abandoned counts requests whose client went away before their
	// session status was known. They are not LookupErrors.
	Abandoned uint64
	// BreakerOpen reports whether the circuit breaker is open now.
	BreakerOpen bool
	// DenyListSize is DenyList.Len.
	DenyListSize int
	// DenyListEvictions is DenyList.Evictions: live revocations dropped
	// because the list was full.
	DenyListEvictions uint64
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Lookups: s.lookups.Load(), LookupErrors: s.lookupErrors.Load(), CacheHits: s.cacheHits.Load(),
		AllowedOnError: s.allowedOnError.Load(), Denied: s.denied.Load(), Abandoned: s.abandoned.Load(),
		BreakerOpen: s.breaker.open(s.now()), DenyListSize: s.deny.Len(), DenyListEvictions: s.deny.Evictions(),
	}
}

// Checker returns the middleware.SessionChecker of one route. allowPending
// lets a Backend API status "pending" through (the route's allow_pending).
func (s *Service) Checker(mode Mode, onErr OnError, allowPending bool) (middleware.SessionChecker, error) {
	if mode != Off && s.lookup == nil {
		return nil, errors.New("sessioncheck: a cached or strict check needs a Lookup (clerk.secret_key)")
	}
	return &checker{s: s, mode: mode, onErr: onErr, allowPending: allowPending}, nil
}

type checker struct {
	s            *Service
	mode         Mode
	onErr        OnError
	allowPending bool
}

func revoked(msg string) error {
	return &middleware.Error{Reason: middleware.ReasonSessionRevoked, Message: msg}
}

// CheckSession implements middleware.SessionChecker.
func (c *checker) CheckSession(ctx context.Context, claims *middleware.Claims) error {
	s := c.s
	sid := claims.SessionID
	if s.deny.Denied(sid) {
		s.denied.Add(1)
		return revoked("the session was revoked")
	}
	if c.mode == Off {
		return nil
	}
	now := s.now()
	if c.mode == Cached {
		if e, ok := s.cache.Get(sid); ok && now.Before(e.until) {
			s.cacheHits.Add(1)
			return c.judge(ctx, sid, e.status)
		}
	}
	status, err := c.lookupStatus(ctx, sid)
	if err != nil {
		if errors.Is(err, ErrSessionNotFound) {
			s.deny.DenyContext(ctx, sid)
			return revoked("the session does not exist at Clerk")
		}
		if ctx.Err() != nil {
			// Not Clerk's failure, and no route lets a request through
			// on it: the client is gone.
			s.abandoned.Add(1)
			return &middleware.Error{Reason: middleware.ReasonSessionStatusUnavailable, Message: "the request ended before the session status was known", Err: ctx.Err()}
		}
		if c.onErr == Allow {
			s.allowedOnError.Add(1)
			return nil
		}
		return &middleware.Error{Reason: middleware.ReasonSessionStatusUnavailable, Message: "the session status could not be checked with Clerk", Err: err}
	}
	return c.judge(ctx, sid, status)
}

func (c *checker) judge(ctx context.Context, sid, status string) error {
	switch status {
	case "active":
		return nil
	case "pending":
		if c.allowPending {
			return nil
		}
		return &middleware.Error{Reason: middleware.ReasonSessionPending, Message: "the session is pending"}
	default:
		// Every other status is final: remember it on every route.
		c.s.deny.DenyContext(ctx, sid)
		c.s.cache.Remove(sid)
		return revoked(fmt.Sprintf("the session is %s", sanitizeStatus(status)))
	}
}

func sanitizeStatus(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return "not active"
		}
	}
	if s == "" {
		return "not active"
	}
	return s
}

var errBreakerOpen = errors.New("sessioncheck: circuit breaker open")

// lookupStatus asks Clerk, through the breaker. Cached mode shares one
// in-flight lookup per sid; Strict mode always makes its own, so that a
// request never gets an answer that predates it.
func (c *checker) lookupStatus(ctx context.Context, sid string) (string, error) {
	s := c.s
	// A client already gone takes no lookup and no half-open trial.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	ok, trial := s.breaker.allow(s.now(), s.timeout)
	if !ok {
		s.lookupErrors.Add(1)
		return "", errBreakerOpen
	}
	if c.mode == Strict {
		return s.strictLookup(ctx, sid, trial)
	}
	// The shared lookup runs on a context of its own: a waiter that goes
	// away neither fails the others nor reaches the breaker. Only the
	// lookup's own timeout does, which is Clerk being slow. (A trial
	// answered from the cache below records nothing; the breaker gives the
	// next trial after s.timeout.)
	return s.flights.Do(ctx, sid, s.timeout, func(lctx context.Context) (string, error) {
		// A request that missed the cache just before a previous flight
		// ended finds the status here instead of asking Clerk again.
		if e, ok := s.cache.Get(sid); ok && s.now().Before(e.until) {
			return e.status, nil
		}
		s.lookups.Add(1)
		status, err := s.cached.SessionStatus(lctx, sid)
		s.record(lctx, err)
		if err == nil && status == "active" {
			// Cached before the flight ends, so no request can slip between
			// the end of this lookup and the cache entry and start another.
			s.cache.Add(sid, entry{status: status, until: s.now().Add(s.ttl)})
		}
		return status, err
	})
}

// strictLookup is one request's own lookup. It runs on the request's
// context, so that a client that goes away stops it, bounded by the lookup
// timeout. Whether a failure is Clerk's is decided by the request's
// context, not by the error: if the request's context has ended (cancelled,
// or its own deadline passed) the lookup says nothing about Clerk. Only the
// lookup's own timeout, or an error with the request still there, counts.
func (s *Service) strictLookup(ctx context.Context, sid string, trial bool) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.lookups.Add(1)
	status, err := s.lookup.SessionStatus(lctx, sid)
	if err != nil && !errors.Is(err, ErrSessionNotFound) && ctx.Err() != nil {
		if trial {
			s.breaker.abandon()
		}
		return "", err
	}
	s.record(ctx, err)
	return status, err
}

// record feeds the breaker. A 404 is an answer, not a failure. ctx is the
// lookup's: its request id goes on the breaker's lines.
func (s *Service) record(ctx context.Context, err error) {
	now := s.now()
	if err == nil || errors.Is(err, ErrSessionNotFound) {
		if s.breaker.success() {
			s.log.Info("session status lookups recovered: circuit breaker closed", logctx.Field(ctx))
		}
		return
	}
	s.lookupErrors.Add(1)
	var rl *RateLimitedError
	retryAfter := time.Duration(0)
	if errors.As(err, &rl) {
		retryAfter = rl.RetryAfter
	}
	if opened, until := s.breaker.failure(now, retryAfter); opened {
		s.log.Warn("session status lookups failing: circuit breaker open", zap.Time("until", until), zap.Error(err), logctx.Field(ctx))
	}
}

// breaker opens after threshold consecutive failures (or at once on a 429
// with Retry-After) and lets one trial call through after the cooldown.
type breaker struct {
	threshold int
	base, max time.Duration

	mu         sync.Mutex // guards following
	failures   int
	cooldown   time.Duration
	openUntil  time.Time
	trialUntil time.Time // a half-open trial call is in flight until then; zero: none
}

// allow reports whether a call may go ahead and whether it is the
// half-open trial that decides the breaker. A trial that has neither
// succeeded nor failed within ttl (it was answered from a cache, or its
// client went away without abandon) no longer holds the others back: the
// breaker never stays shut on a call that cannot report.
func (b *breaker) allow(now time.Time, ttl time.Duration) (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return true, false
	}
	if now.Before(b.openUntil) || now.Before(b.trialUntil) {
		return false, false
	}
	b.trialUntil = now.Add(ttl) // half-open: one call decides
	return true, true
}

// abandon ends a trial call that decided nothing (its client went away):
// the next call is the trial.
func (b *breaker) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trialUntil = time.Time{}
}

func (b *breaker) open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openUntil.IsZero() && now.Before(b.openUntil)
}

// success closes the breaker; it reports whether it was open.
func (b *breaker) success() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasOpen := !b.openUntil.IsZero()
	b.failures, b.cooldown, b.openUntil, b.trialUntil = 0, 0, time.Time{}, time.Time{}
	return wasOpen
}

// failure counts a failure; it reports whether the breaker (re)opened.
func (b *breaker) failure(now time.Time, retryAfter time.Duration) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	wasTrial := !b.trialUntil.IsZero()
	b.trialUntil = time.Time{}
	if b.failures < b.threshold && retryAfter == 0 && !wasTrial {
		return false, time.Time{}
	}
	switch {
	case b.cooldown == 0:
		b.cooldown = b.base
	case wasTrial:
		b.cooldown = min(2*b.cooldown, b.max)
	}
	d := max(b.cooldown, min(retryAfter, b.max))
	b.openUntil = now.Add(d)
	return true, b.openUntil
}
