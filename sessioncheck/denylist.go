package sessioncheck

import (
	"sync"
	"time"
)

// DenyList holds revoked session ids until no token minted before the
// revocation can still be valid. It is consulted on every request, on every
// route, before any cache, and never causes a network call.
//
// It is bounded: past Max entries the entry that expires soonest is dropped
// first (and logged by the caller through Evictions). Size it above the
// number of revocations expected within one TTL.
type DenyList struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu        sync.RWMutex // guards following
	until     map[string]time.Time
	adds      int // since the last sweep
	evictions uint64
	onAdd     []func(sid string, until time.Time)
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
	return &DenyList{ttl: ttl, max: max, now: now, until: make(map[string]time.Time)}
}

// Deny puts sid on the list from now for the list's TTL. It returns the
// expiry.
func (d *DenyList) Deny(sid string) time.Time {
	until := d.now().Add(d.ttl)
	d.DenyUntil(sid, until)
	return until
}

// DenyUntil puts sid on the list until the given time (a replica applying a
// revocation another one made keeps the original expiry). An existing later
// expiry is kept. The OnDeny hooks run.
func (d *DenyList) DenyUntil(sid string, until time.Time) {
	d.add(sid, until, true)
}

// Apply puts sid on the list until the given time like DenyUntil, but
// without running the OnDeny hooks: it is how a shared store applies a
// revocation another replica made (and already published), so that it is
// not published again.
func (d *DenyList) Apply(sid string, until time.Time) {
	d.add(sid, until, false)
}

func (d *DenyList) add(sid string, until time.Time, fire bool) {
	now := d.now()
	if !until.After(now) {
		return
	}
	d.mu.Lock()
	if prev, ok := d.until[sid]; !ok || until.After(prev) {
		d.adds++
		if !ok && (len(d.until) >= d.max || d.adds >= 4096) {
			// Amortized: expired entries go at most every 4,096 additions.
			d.adds = 0
			d.evictLocked(now)
		}
		d.until[sid] = until
	}
	hooks := d.onAdd
	d.mu.Unlock()
	if !fire {
		return
	}
	for _, h := range hooks {
		h(sid, until)
	}
}

// evictLocked drops expired entries, and if the list is still full, the one
// that expires soonest.
func (d *DenyList) evictLocked(now time.Time) {
	var soonest string
	var soonestAt time.Time
	for sid, until := range d.until {
		if !until.After(now) {
			delete(d.until, sid)
			continue
		}
		if soonest == "" || until.Before(soonestAt) {
			soonest, soonestAt = sid, until
		}
	}
	if len(d.until) >= d.max && soonest != "" {
		delete(d.until, soonest)
		d.evictions++
	}
}

// Denied reports whether sid is on the list.
func (d *DenyList) Denied(sid string) bool {
	d.mu.RLock()
	until, ok := d.until[sid]
	d.mu.RUnlock()
	return ok && d.now().Before(until)
}

// Entries returns a copy of the live entries (for resync with a shared store).
func (d *DenyList) Entries() map[string]time.Time {
	now := d.now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make(map[string]time.Time, len(d.until))
	for sid, until := range d.until {
		if until.After(now) {
			out[sid] = until
		}
	}
	return out
}

// Len is the number of entries, expired ones not yet dropped included.
func (d *DenyList) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.until)
}

// Evictions counts live entries dropped because the list was full.
func (d *DenyList) Evictions() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.evictions
}

// OnDeny registers a hook called after every Deny/DenyUntil, not Apply (a
// shared store publishes from here). Hooks run on the caller's goroutine and must not
// block.
func (d *DenyList) OnDeny(h func(sid string, until time.Time)) {
	d.mu.Lock()
	d.onAdd = append(d.onAdd, h)
	d.mu.Unlock()
}
