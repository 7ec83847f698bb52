package middleware

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/sessiongate/sessiongate/jwks"
)

// The verified-token cache (docs/security.md, "The verified-token cache").
//
// Only the exact same token can hit. Entries are keyed by a 128-bit
// Carter–Wegman MAC of the whole token: GHASH under a secret, random
// per-Gate key, computed with AES-GCM over the token as additional data and
// an empty plaintext. GHASH is a polynomial in the secret hash key H, so two
// different tokens of at most L 16-byte blocks get the same key only if H is
// a root of a non-zero polynomial of degree <= L+1: probability <= (L+1)/2^128
// whatever tokens an attacker chooses (L <= 1,024 for a 16 KiB token). The
// key and the tags never leave the process; an attacker learns at most
// hit/miss, which excludes <= L+1 of 2^128 values of H per attempt. A
// forgery therefore needs ~2^100 attempts per cached token. The index finds
// a record by 64 bits of the tag; a hit then compares all 128 bits stored in
// the record, so the index's narrower key changes nothing to this bound.
//
// Why not SHA-256: it costs ~520 ns for a 900-byte token on the reference
// machine, more than the whole cached verification target (300 ns); this MAC
// costs ~115 ns (AES-NI, PCLMULQDQ). Why not keep the token and compare it: a
// 16-byte key instead of a ~1 KiB token keeps 100,000 cached tokens within
// the memory budget. The fixed nonce is safe here because the tags are never
// revealed (nonce reuse breaks GCM only for someone who sees two tags).
//
// An entry never outlives its token: every hit re-runs the exp/nbf/iat checks,
// and an entry whose key has left the key set (jwks.Key.Retired) is dropped
// and the token verified again from scratch, which then fails on its kid.
// The policy checks (pending, session status, deny list) run after the cache,
// on hits as on misses.
//
// Memory. The cache is invisible to the garbage collector: each token's
// claims are a pointer-free record (record.go) in a per-shard ring of bytes
// outside the Go heap (slab_*.go), found through a map[uint64]uint32 (no
// pointers: the collector does not scan it), as bigcache and freecache do.
// A GC cycle costs the same with 100,000 cached tokens as with none, and the
// slabs do not count towards the heap the collector paces itself on (with
// GOGC=100, a heap slab would let the heap grow by its own size again before
// each collection). A hit decodes its record into a new Claims.
//
// Each shard's ring is a FIFO of records: new ones at the tail, the oldest
// evicted at the head when space or the entry limit requires it. Tokens
// live ~60 s and arrive in the order they expire, so the oldest record is
// almost always the first expired one. A shard reserves
// size*maxBytesPerToken/shards bytes of address space but uses only what its
// live records need: it starts small and grows by a quarter while live
// records fill more than 80 % of it (see growLocked).

type cacheKey [16]byte

// keyer derives cache keys. It is safe for concurrent use.
type keyer struct {
	mac cipher.AEAD
	// bufs hold Seal's output: a buffer passed to the AEAD interface escapes,
	// and the pool keeps the hit path free of allocations.
	bufs sync.Pool
}

func newKeyer() (*keyer, error) {
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(secret[:])
	if err != nil {
		return nil, err
	}
	mac, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	k := &keyer{mac: mac}
	k.bufs.New = func() any { return new([32]byte) }
	return k, nil
}

var zeroNonce [12]byte

func (k *keyer) keyOf(token string) cacheKey {
	var out cacheKey
	// The token's bytes are read, never written or kept: no copy needed.
	aad := unsafe.Slice(unsafe.StringData(token), len(token))
	buf := k.bufs.Get().(*[32]byte)
	copy(out[:], k.mac.Seal(buf[:0], zeroNonce[:], nil, aad))
	k.bufs.Put(buf)
	return out
}

// indexKey is the part of the tag the shard index is keyed by; shardOf uses
// other bits.
func indexKey(k cacheKey) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

const (
	// cacheShards spreads the locks: a hit takes its shard's read lock, a
	// miss its write lock.
	cacheShards = 64
	// maxBytesPerToken bounds the slab memory: size*maxBytesPerToken in all
	// (a session token with an organization needs ~200).
	maxBytesPerToken = 1 << 10
	// minShardReserve and initialShardBytes: the smallest reservation of a
	// shard and the ring it starts with.
	minShardReserve   = 128 << 10
	initialShardBytes = 16 << 10
)

func shardOf(k cacheKey) uint32 { return uint32(k[8]) % cacheShards }

type tokenCache struct {
	*keyer
	intern *interner
	keys   keyTable
	max    int64        // entry limit
	count  atomic.Int64 // live entries, in all shards
	victim atomic.Uint32
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu        sync.RWMutex      // guards following
	idx       map[uint64]uint32 // indexKey → offset of the record in ring
	ring      []byte            // len(ring) is the ring's current size
	reserve   []byte            // the mapped reservation ring grows in; nil: ring is on the Go heap
	max       uint32            // the size ring may grow to
	head      uint32            // offset of the oldest record
	tail      uint32            // offset of the next record
	used      uint32            // bytes from head to tail, dead records and padding included
	liveBytes uint32            // bytes of the records idx points to
	wrapped   bool              // tail has wrapped to the start of ring and is behind head
	_         [64]byte          // keeps shards' locks on separate cache lines
}

func newTokenCache(size int, in *interner) (*tokenCache, error) {
	k, err := newKeyer()
	if err != nil {
		return nil, err
	}
	c := &tokenCache{keyer: k, intern: in, max: int64(size)}
	per := uint64(size) * maxBytesPerToken / cacheShards
	per = min(max(per, minShardReserve), 1<<31) &^ 7
	var region []byte
	if total := per * cacheShards; total <= math.MaxInt {
		region = mapSlab(int(total))
	}
	if region != nil {
		runtime.AddCleanup(c, unmapSlab, region)
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.idx = make(map[uint64]uint32)
		s.max = uint32(per)
		if region != nil {
			s.reserve = region[i*int(per) : (i+1)*int(per) : (i+1)*int(per)]
			s.ring = s.reserve[:initialShardBytes]
		} else {
			s.ring = make([]byte, initialShardBytes)
		}
	}
	return c, nil
}

// get returns a new copy of the claims cached for k. A record whose key has
// been retired (or whose key slot was reused) is dropped: a miss.
func (c *tokenCache) get(k cacheKey) (*Claims, bool) {
	s := &c.shards[shardOf(k)]
	s.mu.RLock()
	off, ok := s.idx[indexKey(k)]
	if !ok {
		s.mu.RUnlock()
		return nil, false
	}
	rec := s.ring[off:]
	if *(*cacheKey)(rec[8:24]) != k { // another token with the same 64 index bits
		s.mu.RUnlock()
		return nil, false
	}
	ref := c.keys.slots.Load()[rec[4]]
	if ref.key == nil || ref.gen != binary.LittleEndian.Uint32(rec[48:]) || ref.key.Retired() {
		s.mu.RUnlock()
		c.remove(k)
		return nil, false
	}
	claims := decodeRecord(rec, c.intern)
	// s points into c, so c (and the slab its cleanup unmaps) is alive
	// until here.
	s.mu.RUnlock()
	return claims, true
}

// add caches the claims of a token verified by key. Claims a record cannot
// hold exactly are not cached.
func (c *tokenCache) add(k cacheKey, key *jwks.Key, claims *Claims) {
	slot, gen := c.keys.ref(key)
	rec, ok := appendRecord(nil, claims, k, slot, gen, c.intern)
	if !ok {
		return
	}
	s := &c.shards[shardOf(k)]
	ik := indexKey(k)
	if c.count.Load() >= c.max {
		c.makeRoom(s, ik)
	}
	s.mu.Lock()
	s.insertLocked(c, ik, rec)
	s.mu.Unlock()
}

// makeRoom evicts one entry for a new one in shard s: s's oldest if s holds
// its share of the limit, else the oldest of a shard that holds more. Each
// shard thus keeps about the same number of entries, and evicting the
// oldest of one is close to evicting the oldest of all. No two shard locks
// are ever held at once. Between the check of the count and the insert,
// other goroutines may insert too: the limit can be exceeded by the number
// of concurrent misses, until the next insert evicts.
func (c *tokenCache) makeRoom(s *cacheShard, ik uint64) {
	share := int((c.max + cacheShards - 1) / cacheShards)
	s.mu.Lock()
	_, replacing := s.idx[ik]
	done := replacing || (len(s.idx) >= share && s.evictLiveLocked(c))
	s.mu.Unlock()
	if done {
		return
	}
	for _, over := range [...]int{share, 1} {
		for range cacheShards {
			v := &c.shards[c.victim.Add(1)%cacheShards]
			v.mu.Lock()
			ok := len(v.idx) >= over && v.evictLiveLocked(c)
			v.mu.Unlock()
			if ok {
				return
			}
		}
	}
}

// remove drops the entry of k, if it is still k's.
func (c *tokenCache) remove(k cacheKey) {
	s := &c.shards[shardOf(k)]
	ik := indexKey(k)
	s.mu.Lock()
	if off, ok := s.idx[ik]; ok && *(*cacheKey)(s.ring[off+8 : off+24]) == k {
		s.dropLocked(c, ik, off)
	}
	s.mu.Unlock()
}

// Len is the number of cached tokens.
func (c *tokenCache) Len() int { return int(c.count.Load()) }

func (s *cacheShard) dropLocked(c *tokenCache, ik uint64, off uint32) {
	delete(s.idx, ik)
	s.liveBytes -= binary.LittleEndian.Uint32(s.ring[off:])
	c.count.Add(-1)
}

// evictOldestLocked removes the record (or padding) at the head. It reports
// whether it was a live entry.
func (s *cacheShard) evictOldestLocked(c *tokenCache) bool {
	rec := s.ring[s.head:]
	size := binary.LittleEndian.Uint32(rec)
	live := false
	if rec[4] != padSlot {
		ik := binary.LittleEndian.Uint64(rec[8:])
		if off, ok := s.idx[ik]; ok && off == s.head {
			s.dropLocked(c, ik, off)
			live = true
		}
	}
	s.head += size
	s.used -= size
	if s.wrapped && s.head == uint32(len(s.ring)) {
		s.head, s.wrapped = 0, false
	}
	if s.used == 0 {
		s.head, s.tail, s.wrapped = 0, 0, false
	}
	return live
}

// evictLiveLocked evicts from the head until a live entry has gone or the
// shard is empty. It reports whether a live entry went.
func (s *cacheShard) evictLiveLocked(c *tokenCache) bool {
	for s.used > 0 {
		if s.evictOldestLocked(c) {
			return true
		}
	}
	return false
}

// insertLocked writes rec at the tail, evicting from the head as needed,
// and points the index at it.
func (s *cacheShard) insertLocked(c *tokenCache, ik uint64, rec []byte) {
	n := uint32(len(rec))
	if n > s.max/4 {
		return
	}
	for {
		if !s.wrapped {
			if s.tail+n <= uint32(len(s.ring)) {
				break
			}
			if s.growLocked(n) {
				continue
			}
			// Wrap: the end of the ring becomes padding.
			if pad := uint32(len(s.ring)) - s.tail; pad > 0 {
				binary.LittleEndian.PutUint32(s.ring[s.tail:], pad)
				s.ring[s.tail+4] = padSlot
				s.used += pad
			}
			s.tail, s.wrapped = 0, true
			continue
		}
		if s.head-s.tail >= n { // wrapped: the free bytes are [tail, head)
			break
		}
		s.evictOldestLocked(c)
	}
	copy(s.ring[s.tail:], rec)
	if old, ok := s.idx[ik]; ok {
		s.liveBytes -= binary.LittleEndian.Uint32(s.ring[old:])
	} else {
		c.count.Add(1)
	}
	s.idx[ik] = s.tail
	s.liveBytes += n
	s.tail += n
	s.used += n
}

// growLocked enlarges a ring that live records fill (not one full of dead
// records and padding, which evicting reclaims), up to its reservation. Only
// an unwrapped ring grows: its records keep their offsets.
func (s *cacheShard) growLocked(n uint32) bool {
	size := uint32(len(s.ring))
	if size >= s.max || s.liveBytes+n <= size-size/5 {
		return false
	}
	next := min(max(size+size/4, s.tail+n), s.max)
	next = (next + 7) &^ 7
	if s.reserve != nil {
		s.ring = s.reserve[:next]
	} else {
		ring := make([]byte, next)
		copy(ring, s.ring)
		s.ring = ring
	}
	return true
}

// keyTable numbers the keys that verified cached tokens, so that a record
// names its key with a slot and a generation instead of a pointer. A slot is
// reused (with a new generation, which orphans its old records) for a new
// key when all are taken: a retired key's slot first.
type keyTable struct {
	slots atomic.Pointer[[maxKeys]keyRef] // replaced, never changed in place
	mu    sync.Mutex                      // guards following
	gen   uint32
	next  int // the slot to reuse when none is free or retired
}

type keyRef struct {
	key *jwks.Key
	gen uint32
}

// maxKeys bounds the keys of cached tokens: a JWKS holds one to a few.
const maxKeys = 64

func (t *keyTable) ref(k *jwks.Key) (slot uint8, gen uint32) {
	cur := t.slots.Load()
	if cur != nil {
		for i := range cur {
			if cur[i].key == k {
				return uint8(i), cur[i].gen
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := new([maxKeys]keyRef)
	if cur = t.slots.Load(); cur != nil {
		*next = *cur
	}
	free := -1
	for i := range next {
		switch {
		case next[i].key == k:
			return uint8(i), next[i].gen
		case free < 0 && next[i].key == nil:
			free = i
		}
	}
	for i := 0; free < 0 && i < maxKeys; i++ {
		if next[i].key.Retired() {
			free = i
		}
	}
	if free < 0 {
		free = t.next
		t.next = (t.next + 1) % maxKeys
	}
	t.gen++
	next[free] = keyRef{key: k, gen: t.gen}
	t.slots.Store(next)
	return uint8(free), t.gen
}

// stripedCounter spreads a hot counter over cache lines, so cores
// verifying different tokens do not fight over one line.
type stripedCounter struct {
	stripes [16]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (s *stripedCounter) add(k cacheKey) { s.stripes[shardOf(k)%16].n.Add(1) }

func (s *stripedCounter) load() uint64 {
	var t uint64
	for i := range s.stripes {
		t += s.stripes[i].n.Load()
	}
	return t
}
