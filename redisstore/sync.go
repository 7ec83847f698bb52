package redisstore

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// denyScript writes one revocation: KEYS[1] = <prefix>deny:<sid>, ARGV[1] =
// until (unix ms), ARGV[2] = channel, ARGV[3] = message. A later expiry
// already in Redis is kept and then nothing is published (whoever wrote it
// published it). It returns 1 when it wrote.
const denyScript = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local n = tonumber(cur)
  if n and n >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`

// batchSize bounds one pipeline.
const batchSize = 512

func (s *Store) denyKey(sid string) string { return s.prefix + "deny:" + sid }

// enqueue is the deny list's OnDeny hook: it runs on the request or admin
// goroutine, so it never blocks.
func (s *Store) enqueue(sid string, until time.Time) {
	select {
	case s.queue <- item{sid: sid, until: until, at: s.now()}:
	default:
		// Still on the local list: the next write-back (dirty, or the
		// resync after a reconnection) writes it.
		s.stats.publishDropped.Add(1)
		s.dirty.Store(true)
	}
}

// writer drains the queue into Redis, in batches, and writes everything
// back when a write failed while the subscription stayed up.
func (s *Store) writer() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	batch := make([]item, 0, batchSize)
	for {
		select {
		case <-s.ctx.Done():
			s.flushOnClose()
			return
		case it := <-s.queue:
			batch = append(batch[:0], it)
		drain:
			for len(batch) < batchSize {
				select {
				case it := <-s.queue:
					batch = append(batch, it)
				default:
					break drain
				}
			}
			s.publish(s.ctx, batch)
		case <-tick.C:
			if s.subscribed.Load() && s.dirty.Swap(false) {
				ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
				if err := s.writeBack(ctx); err != nil {
					s.dirty.Store(true)
				}
				cancel()
			}
		}
	}
}

// publish writes a batch of local denies. Without a subscription it does
// nothing: the resync that follows the next subscription writes every
// local entry back (it reads the list after the subscription is up, so it
// sees these).
func (s *Store) publish(ctx context.Context, batch []item) {
	if !s.subscribed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.Timeout)
	defer cancel()
	if _, err := s.write(ctx, batch); err != nil {
		s.stats.publishErrors.Add(uint64(len(batch)))
		s.dirty.Store(true)
		// At most one warning a minute: a Redis that refuses every write
		// (full with noeviction, an ACL) would otherwise flood the logs.
		if now, last := time.Now().UnixNano(), s.lastWarn.Load(); now-last > int64(time.Minute) && s.lastWarn.CompareAndSwap(last, now) {
			s.log.Warn("redis: writing revocations failed; they stay denied locally and are written back later",
				zap.Int("count", len(batch)), zap.Error(err))
		}
	}
}

// flushOnClose makes one bounded attempt at what is still queued.
func (s *Store) flushOnClose() {
	var batch []item
	for {
		select {
		case it := <-s.queue:
			batch = append(batch, it)
			continue
		default:
		}
		break
	}
	if len(batch) == 0 || !s.subscribed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	_, _ = s.write(ctx, batch)
}

// write runs denyScript for every item, batchSize per round trip. It
// returns how many changed Redis.
func (s *Store) write(ctx context.Context, items []item) (int, error) {
	now := s.now()
	changed := 0
	for len(items) > 0 {
		n := min(len(items), batchSize)
		chunk := items[:n]
		items = items[n:]
		pipe := s.client.Pipeline()
		cmds := make([]*redis.Cmd, 0, n)
		for _, it := range chunk {
			if !it.until.After(now) {
				continue
			}
			ms := it.until.UnixMilli()
			var at int64 // zero for write-backs: no propagation delay to report
			if !it.at.IsZero() {
				at = it.at.UnixMicro()
			}
			msg := it.sid + " " + strconv.FormatInt(ms, 10) + " " + strconv.FormatInt(at, 10) + " " + s.id
			cmds = append(cmds, pipe.Eval(ctx, denyScript, []string{s.denyKey(it.sid)}, ms, s.channel, msg))
		}
		if len(cmds) == 0 {
			continue
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return changed, err
		}
		for _, c := range cmds {
			if v, _ := c.Int(); v == 1 {
				changed++
			}
		}
	}
	s.stats.published.Add(uint64(changed))
	return changed, nil
}

// writeBack writes every live local entry to Redis.
func (s *Store) writeBack(ctx context.Context) error {
	entries := s.deny.Entries()
	items := make([]item, 0, len(entries))
	for sid, until := range entries {
		items = append(items, item{sid: sid, until: until})
	}
	n, err := s.write(ctx, items)
	s.stats.writtenBack.Add(uint64(n))
	if err == nil && n > 0 {
		s.log.Info("redis: wrote back revocations Redis did not have", zap.Int("count", n))
	}
	return err
}

// reload applies every revocation in Redis to the local list.
func (s *Store) reload(ctx context.Context) error {
	pattern := globEscape(s.prefix+"deny:") + "*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			if err := s.loadKeys(ctx, keys); err != nil {
				return err
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.client)
}

func (s *Store) loadKeys(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	// GETs in a pipeline rather than MGET: a cluster spreads the keys over
	// slots, and the pipeline is routed per key.
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil { // expired between SCAN and GET
			continue
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if s.apply(strings.TrimPrefix(keys[i], s.prefix+"deny:"), ms) {
			s.stats.loaded.Add(1)
		}
	}
	return nil
}

// applyMessage applies a revocation received on the channel:
// "<sid> <until unix ms> <denied at unix µs, 0 for a write-back> <store
// id>". A Store receives its own messages too; they change nothing and are
// not counted.
func (s *Store) applyMessage(payload string) {
	f := strings.Fields(payload)
	if len(f) < 2 || len(f) > 3 && f[3] == s.id {
		return
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || !s.apply(f[0], ms) {
		return
	}
	s.stats.received.Add(1)
	if s.cfg.OnRemote != nil && len(f) > 2 {
		if us, err := strconv.ParseInt(f[2], 10, 64); err == nil && us > 0 {
			s.cfg.OnRemote(f[0], s.now().Sub(time.UnixMicro(us)))
		}
	}
}

// apply puts a remote revocation on the local list without publishing it
// again. Whatever is in Redis is checked: only session ids, and no expiry
// past what this replica's own TTL allows (plus clock skew).
func (s *Store) apply(sid string, untilMs int64) bool {
	if !clerkwire.ValidSessionID(sid) {
		return false
	}
	until := time.UnixMilli(untilMs)
	if limit := s.now().Add(s.cfg.TTL + MaxClockSkew); until.After(limit) {
		until = limit
	}
	s.deny.Apply(sid, until)
	return true
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// subscriber keeps the subscription up. go-redis's PubSub reconnects and
// resubscribes by itself on the next Receive after an error; every
// subscription confirmation (the first and each one after a reconnection)
// starts a resync. An idle subscription is pinged, and one that stops
// answering is replaced.
func (s *Store) subscriber() {
	defer s.wg.Done()
	ps := s.subscribe()
	defer func() { _ = ps.Close() }()
	backoff := s.cfg.MinBackoff
	pinged := false
	for s.ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(s.ctx, s.cfg.PingInterval)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if isTimeout(err) && s.subscribed.Load() {
				if !pinged {
					if err := ps.Ping(s.ctx); err == nil {
						pinged = true
						continue
					}
				}
				// Silent for a whole interval after a PING: a half-open
				// connection. Start afresh.
				s.lost(errors.New("the subscription stopped answering"))
				_ = ps.Close()
				ps = s.subscribe()
				pinged = false
				continue
			}
			s.lost(err)
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				backoff = s.cfg.MinBackoff
				s.subscribedNow()
			}
		case *redis.Message:
			if s.cfg.ShareRevocations {
				s.applyMessage(m.Payload)
			}
		}
	}
}

// subscribe opens a new PubSub where Close can find it.
func (s *Store) subscribe() *redis.PubSub {
	ps := s.client.Subscribe(s.ctx, s.channel)
	s.psMu.Lock()
	s.ps = ps
	s.psMu.Unlock()
	return ps
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// subscribedNow records a confirmed subscription and asks for a resync.
func (s *Store) subscribedNow() {
	s.gen.Add(1)
	s.subscribed.Store(true)
	if s.down.Swap(false) {
		s.log.Info("redis: reconnected; resyncing the deny list")
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// lost records that the subscription is down (or never came up).
func (s *Store) lost(err error) {
	s.gen.Add(1)
	wasUp := s.subscribed.Swap(false)
	s.synced.Store(false)
	if wasUp {
		s.stats.disconnects.Add(1)
	} else {
		// Unreachable before the first success: start-up does not wait.
		s.startupDone()
	}
	if !s.down.Swap(true) {
		s.log.Warn("redis: unreachable; serving from the local deny list and reconnecting with backoff", zap.Error(err))
	} else {
		s.log.Debug("redis: still unreachable", zap.Error(err))
	}
}

// resyncer runs the resyncs the subscriber asks for, retrying with backoff
// while the subscription stays up.
func (s *Store) resyncer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		backoff := s.cfg.MinBackoff
		for s.subscribed.Load() {
			err := s.resync(s.gen.Load())
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.stats.resyncErrors.Add(1)
			s.log.Warn("redis: resync failed; retrying", zap.Error(err))
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
		}
	}
}

// resync brings Redis and the local list in step: write back first (so a
// Redis restarted empty regains what this replica knows, and what was
// denied during an outage is pushed), then reload. The subscription is
// already up, so whatever is written from now on also arrives as a
// message: between the two, nothing is missed.
func (s *Store) resync(gen uint64) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if s.cfg.ShareRevocations {
		s.dirty.Store(false)
		if err := s.writeBack(ctx); err != nil {
			s.dirty.Store(true)
			return err
		}
		if err := s.reload(ctx); err != nil {
			return err
		}
	}
	if s.gen.Load() != gen || !s.subscribed.Load() {
		return nil // lost meanwhile: the next subscription resyncs again
	}
	s.stats.resyncs.Add(1)
	s.synced.Store(true)
	s.startupDone()
	s.log.Info("redis: in step", zap.Int("deny_list_entries", s.deny.Len()), zap.Duration("took", time.Since(start)))
	return nil
}
