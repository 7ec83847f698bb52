// Package redisstore shares a sessiongate replica's revocations and session
// state with the other replicas through Redis (docs/scaling.md).
//
// A Store hangs off a replica's sessioncheck.DenyList and never sits on the
// request path: Denied stays a local map lookup. What it does, off the hot
// path:
//
//   - Every local deny (admin revoke, webhook, inactive status seen) is
//     queued without blocking, then written as <prefix>deny:<sid> = <until
//     unix ms> expiring at until (a later expiry already there is kept) and
//     published on <prefix>revocations, both by one Lua script.
//   - Every replica subscribes to that channel and applies what it receives
//     with DenyList.Apply, which does not publish again.
//   - On every (re)subscription a replica first writes its own live entries
//     back (a Redis restarted empty regains everything any replica still
//     knows, and what was denied while Redis was away is pushed), then
//     reloads the shared set with SCAN, so nothing published while it was
//     away is missed. Pub/sub alone is at-most-once; this resync is what
//     makes the set converge.
//   - Redis down: the replica serves from its local list, reconnects with
//     backoff, and resyncs on return.
//
// It also offers a shared session-status cache (StatusLookup) and
// cross-replica webhook de-duplication (Seen), both of which fall back to
// the local behaviour on any Redis error.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/redisurl"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// DefaultPrefix starts every key and the channel name.
const DefaultPrefix = "sessiongate:"

// Config configures a Store. Zero values take the defaults given.
type Config struct {
	// URL is revocation.redis_url: redis://, rediss://, redis+sentinel://,
	// redis+cluster:// (and rediss+…); see docs/scaling.md. Required.
	URL string
	// DenyList is the replica's deny list. Required.
	DenyList *sessioncheck.DenyList
	// ShareRevocations publishes local denies, applies remote ones and
	// resyncs on reconnection (revocation.store: redis). False: the Store
	// only serves the shared status cache and webhook de-duplication.
	ShareRevocations bool
	// TTL is revocation.ttl. A remote revocation is never kept longer than
	// TTL plus MaxClockSkew from now. Zero: 1 h.
	TTL time.Duration
	// Required makes NotReady report the replica not ready whenever it is
	// not in step with Redis (revocation.required).
	Required bool
	// StartupWait bounds how long NotReady waits for the first load when
	// Redis answers at start-up. Zero: 5 s.
	StartupWait time.Duration
	// Prefix of every key and of the channel. Empty: DefaultPrefix.
	Prefix string
	// QueueSize bounds the revocations waiting to be written. A full queue
	// drops (and counts) the write; the entry stays on the local list and
	// is written by the next write-back. Zero: 10,000.
	QueueSize int
	// Timeout is the dial, read and write timeout of the Redis client when
	// the URL sets none, and the bound of each operation. Zero: 1 s.
	Timeout time.Duration
	// PingInterval is how often an idle subscription is checked. Zero: 5 s.
	PingInterval time.Duration
	// CacheLockTTL is how long one replica may hold the right to look a
	// session up for all of them (StatusLookup); the others wait at most
	// this long. Zero: 2 s.
	CacheLockTTL time.Duration
	// MinBackoff and MaxBackoff bound reconnection and resync retries.
	// Zero: 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// OnRemote, when set, is called for every revocation received over
	// pub/sub, with the time since the originating replica denied it (by
	// that replica's clock). It runs on the subscriber and must not block.
	OnRemote func(sid string, delay time.Duration)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Logger gets connection changes, resyncs and errors. Nil: nop.
	Logger *zap.Logger
}

// MaxClockSkew is how far another replica's clock may run ahead before its
// revocation expiries are cut short (to TTL + MaxClockSkew from now).
const MaxClockSkew = 5 * time.Minute

// Store connects one replica to Redis. Its methods are safe for concurrent
// use.
type Store struct {
	cfg     Config
	client  redis.UniversalClient
	kind    redisurl.Kind
	deny    *sessioncheck.DenyList
	now     func() time.Time
	log     *zap.Logger
	prefix  string
	channel string
	id      string // tells this Store's own messages from the others'

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	lastWarn  atomic.Int64 // unix ns of the last write-failure warning

	psMu sync.Mutex    // guards following
	ps   *redis.PubSub // the subscriber's; Close closes it to end a blocked read

	queue chan item     // local denies waiting to be written
	kick  chan struct{} // a resync is due

	subscribed  atomic.Bool   // the subscription is confirmed
	synced      atomic.Bool   // …and the resync that followed it completed
	gen         atomic.Uint64 // changes on every subscription and loss
	dirty       atomic.Bool   // a write failed while subscribed: write back
	down        atomic.Bool   // an outage is being reported (logs once)
	startup     chan struct{} // closed once NotReady stops waiting
	startupOnce sync.Once

	stats counters
}

type item struct {
	sid   string
	until time.Time
	at    time.Time // when it was denied locally; zero for write-backs
}

type counters struct {
	resyncs, resyncErrors, disconnects                 atomic.Uint64
	published, publishErrors, publishDropped           atomic.Uint64
	received, loaded, writtenBack                      atomic.Uint64
	commands                                           atomic.Uint64
	cacheHits, cacheMisses, cacheWaits, cacheFallbacks atomic.Uint64
	webhookDuplicates, webhookFallbacks                atomic.Uint64
}

// New parses the URL, starts the subscriber and the writer, and hooks the
// Store to the deny list. It does not wait for Redis: a Redis that does not
// answer is retried in the background. Close stops it.
func New(cfg Config) (*Store, error) {
	if cfg.DenyList == nil {
		return nil, errors.New("redisstore: Config.DenyList is required")
	}
	target, err := redisurl.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.StartupWait <= 0 {
		cfg.StartupWait = 5 * time.Second
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10_000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 5 * time.Second
	}
	if cfg.CacheLockTTL <= 0 {
		cfg.CacheLockTTL = 2 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{
		cfg: cfg, kind: target.Kind, deny: cfg.DenyList, now: now, log: log,
		prefix: cfg.Prefix, channel: cfg.Prefix + "revocations", id: randomToken()[:12],
		queue: make(chan item, cfg.QueueSize), kick: make(chan struct{}, 1), startup: make(chan struct{}),
	}
	s.client = newClient(target, cfg.Timeout)
	s.client.AddHook(countHook{&s.stats.commands})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.ShareRevocations {
		cfg.DenyList.OnDeny(s.enqueue)
	}
	s.wg.Add(3)
	go s.subscriber()
	go s.resyncer()
	go s.writer()
	time.AfterFunc(cfg.StartupWait, s.startupDone)
	log.Info("redis: connecting", zap.String("topology", target.Kind.String()), zap.Bool("share_revocations", cfg.ShareRevocations))
	return s, nil
}

// newClient builds the go-redis client for the target with short timeouts
// where the URL sets none: no caller ever waits on Redis for long.
func newClient(t *redisurl.Target, timeout time.Duration) redis.UniversalClient {
	def := func(d *time.Duration) {
		if *d == 0 {
			*d = timeout
		}
	}
	retries := func(n *int) {
		if *n == 0 {
			*n = 1 // one retry: a pooled connection may be stale after a Redis restart
		}
	}
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch t.Kind {
	case redisurl.Sentinel:
		o := t.Failover
		def(&o.DialTimeout)
		def(&o.ReadTimeout)
		def(&o.WriteTimeout)
		def(&o.PoolTimeout)
		retries(&o.MaxRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		return redis.NewFailoverClient(o)
	case redisurl.Cluster:
		o := t.Cluster
		def(&o.DialTimeout)
		def(&o.ReadTimeout)
		def(&o.WriteTimeout)
		def(&o.PoolTimeout)
		retries(&o.MaxRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		o.MaintNotificationsConfig = noMaint
		return redis.NewClusterClient(o)
	default:
		o := t.Single
		def(&o.DialTimeout)
		def(&o.ReadTimeout)
		def(&o.WriteTimeout)
		def(&o.PoolTimeout)
		retries(&o.MaxRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		o.MaintNotificationsConfig = noMaint
		return redis.NewClient(o)
	}
}

// countHook counts the commands sent, so that a benchmark can show that
// the request path sends none.
type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}

// Close stops the background work, after one last bounded attempt to write
// what is queued, and closes the client. It is idempotent.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *Store) close() error {
	s.cancel()
	s.psMu.Lock()
	if s.ps != nil {
		_ = s.ps.Close() // a blocked Receive returns at once
	}
	s.psMu.Unlock()
	s.wg.Wait()
	return s.client.Close()
}

// Connected reports whether the subscription is up.
func (s *Store) Connected() bool { return s.subscribed.Load() }

// Synced reports whether the replica is in step with Redis: subscribed,
// and the resync that followed the subscription completed.
func (s *Store) Synced() bool { return s.synced.Load() }

// NotReady returns why the replica should not report ready, or "": while
// Redis answered at start-up and the first load is not done (at most
// StartupWait), and, with Required, whenever it is not Synced.
func (s *Store) NotReady() string {
	if s.synced.Load() {
		return ""
	}
	if s.cfg.Required {
		return "redis required and not synced"
	}
	select {
	case <-s.startup:
		return ""
	default:
		return "redis: loading the shared deny list"
	}
}

func (s *Store) startupDone() { s.startupOnce.Do(func() { close(s.startup) }) }

// Stats are the Store's counters, for metrics.
type Stats struct {
	// Connected and Synced are Store.Connected and Store.Synced at the
	// time of the call.
	Connected, Synced bool
	// Resyncs completed, failed; subscriptions lost.
	Resyncs, ResyncErrors, Disconnects uint64
	// Revocations written (new to Redis or extending its expiry), writes
	// that failed, writes dropped because the queue was full.
	Published, PublishErrors, PublishDropped uint64
	// Remote revocations applied from pub/sub, entries applied by reloads,
	// entries a write-back found missing from Redis.
	Received, Loaded, WrittenBack uint64
	// Commands sent to Redis, all kinds.
	Commands uint64
	// Shared status cache: answers read from Redis, lookups made by this
	// replica for the cache, waits for another replica's lookup, plain
	// lookups because of a Redis error or outage or a lock not released in
	// time.
	CacheHits, CacheMisses, CacheWaits, CacheFallbacks uint64
	// Webhook deliveries another replica had claimed; claims decided
	// locally because of a Redis error or outage.
	WebhookDuplicates, WebhookFallbacks uint64
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Connected: s.subscribed.Load(), Synced: s.synced.Load(),
		Resyncs: c.resyncs.Load(), ResyncErrors: c.resyncErrors.Load(), Disconnects: c.disconnects.Load(),
		Published: c.published.Load(), PublishErrors: c.publishErrors.Load(), PublishDropped: c.publishDropped.Load(),
		Received: c.received.Load(), Loaded: c.loaded.Load(), WrittenBack: c.writtenBack.Load(),
		Commands:  c.commands.Load(),
		CacheHits: c.cacheHits.Load(), CacheMisses: c.cacheMisses.Load(), CacheWaits: c.cacheWaits.Load(), CacheFallbacks: c.cacheFallbacks.Load(),
		WebhookDuplicates: c.webhookDuplicates.Load(), WebhookFallbacks: c.webhookFallbacks.Load(),
	}
}

// sleep waits d with ±20 % jitter, or until Close; it reports whether the
// Store is still running.
func (s *Store) sleep(d time.Duration) bool {
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Store) opContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.cfg.Timeout)
}
