// Package ratelimit holds token buckets keyed by client, bounded in memory:
// the budget one client address may spend on something that costs a
// Backend API call.
package ratelimit

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Bucket is a token bucket: burst tokens, refilled at rate per second. It is
// not safe for concurrent use; Keyed guards its buckets.
type Bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for now and takes one token if there is one.
func (b *Bucket) take(now time.Time, rate, burst float64) (ok bool, wait time.Duration) {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if rate <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// Keyed is a token bucket per key (a client address), the most recently
// used Size keys kept: a forgotten key starts again with a full bucket,
// which bounds memory at the cost of letting a client that cycles through
// more than Size addresses start afresh (it is then bounded by whatever
// global limit sits behind).
type Keyed struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex // guards following
	buckets *lru.Cache[string, *Bucket]
}

// NewKeyed returns buckets of burst tokens refilled at rate per second, for
// at most size keys. now nil means time.Now.
func NewKeyed(rate float64, burst, size int, now func() time.Time) *Keyed {
	if now == nil {
		now = time.Now
	}
	if size < 1 {
		size = 1
	}
	c, _ := lru.New[string, *Bucket](size) // size > 0: no error
	return &Keyed{rate: rate, burst: float64(burst), now: now, buckets: c}
}

// Take takes a token from key's bucket. When there is none it reports how
// long until there will be one.
func (k *Keyed) Take(key string) (ok bool, retryAfter time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, found := k.buckets.Get(key)
	if !found {
		b = &Bucket{}
		k.buckets.Add(key, b)
	}
	return b.take(k.now(), k.rate, k.burst)
}

// Len is the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buckets.Len()
}
