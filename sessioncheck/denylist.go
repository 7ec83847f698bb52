package sessioncheck

import (
	"container/heap"
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// DenyList holds revoked session ids until no token minted before the
// revocation can still be valid. It is consulted on every request, on every
// route, before any cache, and never causes a network call.
//
// Denied is O(1) and never waits for a writer scanning anything: it takes
// the read lock of one of 64 shards (picked by a seeded hash of the sid),
// which writers hold only for one map assignment or deletion. Every other
// operation is O(log n): entries are also kept in a min-heap by expiry,
// under a lock readers never take, so expired entries are dropped as new
// ones arrive and the entry to evict is always at hand.
//
// It is bounded: past Max entries, expired entries go first; if every
// entry is live, the one closest to expiry is dropped, counted in Evictions
// and reported to the OnEvict hooks. That entry's session is no longer
// refused here (a cached or strict route still asks Clerk); it is the
// revocation with the least protection left, since the tokens it stops
// expire soonest. Refusing the new revocation instead would drop the one
// with the most protection left; growing without bound would let a burst
// of revocations exhaust memory. Size the list above the number of
// revocations expected within one TTL, and alert on Evictions.
type DenyList struct {
	ttl time.Duration
	max int
	now func() time.Time

	seed      maphash.Seed
	shards    [denyShards]denyShard
	size      atomic.Int64
	evictions atomic.Uint64

	// mu is held by every writer, before any shard's lock; readers never
	// take it.
	mu       sync.Mutex // guards following
	byExpiry expiryHeap // every entry of every shard, soonest expiry first
	onAdd    []func(sid string, until time.Time)
	onEvict  []func(ctx context.Context, sid string, until time.Time)

	subs subscribers // Subscribe (notify.go); has its own lock
}

// denyShards spreads readers over that many locks. A power of two.
const denyShards = 64

type denyShard struct {
	mu sync.RWMutex // guards following; written only with DenyList.mu held
	m  map[string]*denyEntry
	_  [64]byte // keeps neighbouring shards' locks off one cache line
}

// denyEntry is one revocation. until is never changed once the entry is in
// a shard (Denied reads it after releasing the shard's lock): a later
// expiry replaces the entry.
type denyEntry struct {
	sid   string
	until time.Time
	index int // in byExpiry; guarded by DenyList.mu
}

// NewDenyList returns a deny list whose entries live for ttl (revocation.ttl:
// longer than the instance's session-token lifetime) and which holds at most
// max entries (0 means 1,000,000). now nil means time.Now.
func NewDenyList(ttl time.Duration, max int, now func() time.Time) *DenyList {
	if max <= 0 {
		max = 1_000_000
	}
	if now == nil {
		now = time.Now
	}
	d := &DenyList{ttl: ttl, max: max, now: now, seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].m = make(map[string]*denyEntry)
	}
	return d
}

func (d *DenyList) shard(sid string) *denyShard {
	return &d.shards[maphash.String(d.seed, sid)&(denyShards-1)]
}

// setLocked and deleteLocked change a shard; d.mu is held.
func (d *DenyList) setLocked(e *denyEntry) {
	sh := d.shard(e.sid)
	sh.mu.Lock()
	sh.m[e.sid] = e
	sh.mu.Unlock()
}

func (d *DenyList) deleteLocked(e *denyEntry) {
	sh := d.shard(e.sid)
	sh.mu.Lock()
	if sh.m[e.sid] == e {
		delete(sh.m, e.sid)
	}
	sh.mu.Unlock()
}

// getLocked reads a shard; d.mu is held, so it cannot change meanwhile.
func (d *DenyList) getLocked(sid string) (*denyEntry, bool) {
	e, ok := d.shard(sid).m[sid]
	return e, ok
}

// Deny puts sid on the list from now for the list's TTL. It returns the
// expiry.
func (d *DenyList) Deny(sid string) time.Time {
	return d.DenyContext(context.Background(), sid)
}

// DenyContext is Deny on behalf of the request whose context is ctx: an
// entry it evicts is logged with that request's request_id. ctx only
// carries values; it never cancels the revocation.
func (d *DenyList) DenyContext(ctx context.Context, sid string) time.Time {
	until := d.now().Add(d.ttl)
	d.add(ctx, sid, until, true)
	return until
}

// DenyUntil puts sid on the list until the given time (a replica applying a
// revocation another one made keeps the original expiry). An existing later
// expiry is kept. The OnDeny hooks run.
func (d *DenyList) DenyUntil(sid string, until time.Time) {
	d.add(context.Background(), sid, until, true)
}

// Apply puts sid on the list until the given time like DenyUntil, but
// without running the OnDeny hooks: it is how a shared store applies a
// revocation another replica made (and already published), so that it is
// not published again.
func (d *DenyList) Apply(sid string, until time.Time) {
	d.add(context.Background(), sid, until, false)
}

// add puts sid on the list; ctx is the context of the request that made
// the revocation (for the eviction hooks' log lines), else Background.
func (d *DenyList) add(ctx context.Context, sid string, until time.Time, fire bool) {
	now := d.now()
	if !until.After(now) {
		return
	}
	var evicted *denyEntry
	d.mu.Lock()
	d.dropExpiredLocked(now)
	if old, ok := d.getLocked(sid); ok {
		if until.After(old.until) {
			e := &denyEntry{sid: sid, until: until, index: old.index}
			d.byExpiry[e.index] = e
			heap.Fix(&d.byExpiry, e.index)
			d.setLocked(e)
		}
	} else {
		if len(d.byExpiry) >= d.max {
			// Full of live entries (the expired ones are gone).
			evicted = heap.Pop(&d.byExpiry).(*denyEntry)
			d.deleteLocked(evicted)
			d.evictions.Add(1)
		}
		e := &denyEntry{sid: sid, until: until}
		heap.Push(&d.byExpiry, e)
		d.setLocked(e)
	}
	d.size.Store(int64(len(d.byExpiry)))
	hooks, evictHooks := d.onAdd, d.onEvict
	d.mu.Unlock()
	if evicted != nil {
		for _, h := range evictHooks {
			h(ctx, evicted.sid, evicted.until)
		}
	}
	d.subs.notify(sid) // every add, Apply included (notify.go)
	if !fire {
		return
	}
	for _, h := range hooks {
		h(sid, until)
	}
}

// dropExpiredLocked drops every expired entry: they are at the top of the
// heap. Each entry is dropped once, so this is O(log n) per entry ever
// added.
func (d *DenyList) dropExpiredLocked(now time.Time) {
	for len(d.byExpiry) > 0 && !d.byExpiry[0].until.After(now) {
		d.deleteLocked(heap.Pop(&d.byExpiry).(*denyEntry))
	}
}

// Denied reports whether sid is on the list.
func (d *DenyList) Denied(sid string) bool {
	sh := d.shard(sid)
	sh.mu.RLock()
	e, ok := sh.m[sid]
	sh.mu.RUnlock()
	return ok && d.now().Before(e.until)
}

// Entries returns a copy of the live entries (for resync with a shared
// store). It holds the writers' lock for O(n), never a lock Denied takes.
func (d *DenyList) Entries() map[string]time.Time {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]time.Time, len(d.byExpiry))
	for _, e := range d.byExpiry {
		if e.until.After(now) {
			out[e.sid] = e.until
		}
	}
	return out
}

// Len is the number of entries, expired ones not yet dropped included
// (they are dropped as new entries arrive).
func (d *DenyList) Len() int { return int(d.size.Load()) }

// Evictions counts live entries dropped because the list was full.
func (d *DenyList) Evictions() uint64 { return d.evictions.Load() }

// OnDeny registers a hook called after every Deny/DenyUntil, not Apply (a
// shared store publishes from here). Hooks run on the caller's goroutine and must not
// block.
func (d *DenyList) OnDeny(h func(sid string, until time.Time)) {
	d.mu.Lock()
	d.onAdd = append(d.onAdd, h)
	d.mu.Unlock()
}

// OnEvict registers a hook called with every live entry dropped because
// the list was full (a Service logs them). Hooks run on the goroutine that
// added the entry that took its place and must not block.
func (d *DenyList) OnEvict(h func(sid string, until time.Time)) {
	d.onEvictContext(func(_ context.Context, sid string, until time.Time) { h(sid, until) })
}

// onEvictContext is OnEvict with the context of the request whose
// revocation evicted the entry (DenyContext; Background otherwise).
func (d *DenyList) onEvictContext(h func(ctx context.Context, sid string, until time.Time)) {
	d.mu.Lock()
	d.onEvict = append(d.onEvict, h)
	d.mu.Unlock()
}

// expiryHeap is a container/heap of entries, soonest expiry first.
type expiryHeap []*denyEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*denyEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	*h = old[:n]
	return e
}
