package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/redisurl"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/webhook"
)

const (
	// pollEvery is how often a waiting replica looks for the answer.
	pollEvery = 20 * time.Millisecond
	// notFound is stored for a session Clerk does not know.
	notFound = "!not-found"
)

// releaseScript deletes KEYS[1] if it still holds ARGV[1] (our lock, not
// one taken after ours expired).
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// StatusLookup wraps next in the shared session-status cache
// (cache.shared): N replicas make about one Backend API call per session
// per ttl between them.
//
// A lookup reads <prefix>status:<sid>; on a miss it takes
// <prefix>lock:<sid> (SET NX, Config.CacheLockTTL), asks next, and stores the answer
// for ttl ("pending" and errors are not stored); a replica that does not get
// the lock polls for the answer and asks next itself if none comes within
// the lock's TTL or the lock is released without one. Any Redis error, or Redis
// being away, means a plain call to next: never a failure because of
// Redis.
//
// The answer is cached again by the caller (sessioncheck's own cache, for
// ttl), so an active status can be trusted for up to twice ttl after Clerk
// gave it. Inactive statuses reach the deny list, which every replica
// shares.
func (s *Store) StatusLookup(next sessioncheck.StatusLookup, ttl time.Duration) sessioncheck.StatusLookup {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return &sharedLookup{s: s, next: next, ttl: ttl}
}

type sharedLookup struct {
	s    *Store
	next sessioncheck.StatusLookup
	ttl  time.Duration
}

var _ sessioncheck.StatusLookup = (*sharedLookup)(nil)

func (l *sharedLookup) statusKey(sid string) string { return l.s.prefix + "status:" + sid }
func (l *sharedLookup) lockKey(sid string) string   { return l.s.prefix + "lock:" + sid }

func (l *sharedLookup) SessionStatus(ctx context.Context, sid string) (string, error) {
	s := l.s
	if !s.subscribed.Load() {
		return l.fallback(ctx, sid, nil)
	}
	v, err := l.get(ctx, sid)
	switch {
	case err == nil:
		s.stats.cacheHits.Add(1)
		return decodeStatus(v)
	case !errors.Is(err, redis.Nil):
		return l.fallback(ctx, sid, err)
	}
	token := randomToken()
	won, v, err := l.lock(ctx, sid, token)
	if err != nil {
		return l.fallback(ctx, sid, err)
	}
	if v != "" {
		// Another replica stored the answer and released the lock between
		// our read and our SET NX.
		if won {
			l.store(ctx, sid, token, "", errNoStore)
		}
		s.stats.cacheHits.Add(1)
		return decodeStatus(v)
	}
	if won {
		s.stats.cacheMisses.Add(1)
		status, err := l.next.SessionStatus(ctx, sid)
		l.store(ctx, sid, token, status, err)
		return status, err
	}
	s.stats.cacheWaits.Add(1)
	deadline := time.Now().Add(s.cfg.CacheLockTTL)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
		v, held, err := l.poll(ctx, sid)
		if err != nil {
			return l.fallback(ctx, sid, err)
		}
		if v != "" {
			s.stats.cacheHits.Add(1)
			return decodeStatus(v)
		}
		if !held {
			break // released without an answer: the lookup failed
		}
	}
	return l.fallback(ctx, sid, nil)
}

// errNoStore makes store release the lock without storing anything.
var errNoStore = errors.New("redisstore: nothing to store")

// lock tries to take the lookup lock and reads the answer again after it,
// in one round trip: the winner stores the answer before it releases the
// lock, so a lock free by now means the answer, if any, is visible.
func (l *sharedLookup) lock(ctx context.Context, sid, token string) (bool, string, error) {
	octx, cancel := l.s.opContext(ctx)
	defer cancel()
	pipe := l.s.client.Pipeline()
	won := pipe.SetNX(octx, l.lockKey(sid), token, l.s.cfg.CacheLockTTL)
	get := pipe.Get(octx, l.statusKey(sid))
	if _, err := pipe.Exec(octx); err != nil && !errors.Is(err, redis.Nil) {
		return false, "", err
	}
	v, _ := get.Result()
	return won.Val(), v, nil
}

func (l *sharedLookup) get(ctx context.Context, sid string) (string, error) {
	octx, cancel := l.s.opContext(ctx)
	defer cancel()
	return l.s.client.Get(octx, l.statusKey(sid)).Result()
}

// poll reads whether the lock is still held, then the answer, in one round
// trip (the two keys may sit in different cluster slots: a pipeline, not a
// transaction). In that order: the winner stores the answer before it
// releases the lock, so a lock seen free means the answer, if any, is
// visible to the read that follows.
func (l *sharedLookup) poll(ctx context.Context, sid string) (string, bool, error) {
	octx, cancel := l.s.opContext(ctx)
	defer cancel()
	pipe := l.s.client.Pipeline()
	held := pipe.Exists(octx, l.lockKey(sid))
	get := pipe.Get(octx, l.statusKey(sid))
	if _, err := pipe.Exec(octx); err != nil && !errors.Is(err, redis.Nil) {
		return "", false, err
	}
	v, _ := get.Result()
	if v == "" && held.Val() == 0 && l.s.kind == redisurl.Cluster {
		// Different nodes: no ordering between the two reads. Read again.
		v, _ = l.s.client.Get(octx, l.statusKey(sid)).Result()
	}
	return v, held.Val() > 0, nil
}

// store saves the winner's answer and releases the lock, on a context of
// its own: the answer is worth keeping even if the request went away. req
// is the request's context, for the request_id of the log line only.
func (l *sharedLookup) store(req context.Context, sid, token, status string, lookupErr error) {
	ctx, cancel := context.WithTimeout(l.s.ctx, l.s.cfg.Timeout)
	defer cancel()
	var v string
	switch {
	case lookupErr == nil && status != "" && status != "pending":
		v = status
	case errors.Is(lookupErr, sessioncheck.ErrSessionNotFound):
		v = notFound
	}
	pipe := l.s.client.Pipeline()
	if v != "" {
		pipe.Set(ctx, l.statusKey(sid), v, l.ttl)
	}
	pipe.Eval(ctx, releaseScript, []string{l.lockKey(sid)}, token)
	if _, err := pipe.Exec(ctx); err != nil {
		l.s.log.Debug("redis: storing a shared session status failed", zap.String("sid", sid), zap.Error(err), logctx.Field(req))
	}
}

func (l *sharedLookup) fallback(ctx context.Context, sid string, err error) (string, error) {
	l.s.stats.cacheFallbacks.Add(1)
	if err != nil {
		l.s.log.Debug("redis: shared status cache unavailable; asking Clerk directly", zap.String("sid", sid), zap.Error(err), logctx.Field(ctx))
	}
	return l.next.SessionStatus(ctx, sid)
}

func decodeStatus(v string) (string, error) {
	if v == notFound {
		return "", fmt.Errorf("%w (shared status cache)", sessioncheck.ErrSessionNotFound)
	}
	return v, nil
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Seen returns a webhook.Seen shared by every replica: a message id is
// claimed with SET NX <prefix>webhook:<id> for the handler's TTL. On a Redis
// error, or while Redis is away, local decides (an event is never dropped
// because Redis is down; at worst a replay is applied twice, which is
// harmless for revocations). Every claim is also recorded in local, so
// that what this replica saw stays de-duplicated through an outage. Nil
// local: a webhook.MemorySeen.
func (s *Store) Seen(local webhook.Seen) webhook.Seen {
	if local == nil {
		local = webhook.NewMemorySeen(0, nil)
	}
	return &sharedSeen{s: s, local: local}
}

type sharedSeen struct {
	s     *Store
	local webhook.Seen
}

var _ webhook.ContextSeen = (*sharedSeen)(nil)

func (w *sharedSeen) Claim(id string, ttl time.Duration) bool {
	return w.ClaimContext(context.Background(), id, ttl)
}

// ClaimContext is Claim for the webhook request of req, whose request_id
// its log line carries (req is not a deadline: the claim runs within the
// store's own timeout).
func (w *sharedSeen) ClaimContext(req context.Context, id string, ttl time.Duration) bool {
	s := w.s
	if s.subscribed.Load() {
		ctx, cancel := s.opContext(s.ctx)
		fresh, err := s.client.SetNX(ctx, s.webhookKey(id), 1, ttl).Result()
		cancel()
		if err == nil {
			localFresh := w.local.Claim(id, ttl)
			if !fresh {
				s.stats.webhookDuplicates.Add(1)
			}
			return fresh && localFresh
		}
		s.log.Warn("redis: webhook de-duplication unavailable; deciding locally", zap.Error(err), logctx.Field(req))
	}
	s.stats.webhookFallbacks.Add(1)
	return w.local.Claim(id, ttl)
}

func (s *Store) webhookKey(id string) string {
	if len(id) > 128 {
		sum := sha256.Sum256([]byte(id))
		id = "sha256:" + hex.EncodeToString(sum[:])
	}
	return s.prefix + "webhook:" + id
}
