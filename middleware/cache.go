package middleware

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sessiongate/sessiongate/jwks"
)

// The verified-token cache (DESIGN §2.2).
//
// Entries are keyed by the SHA-256 of the whole token, so only the exact same
// token can hit: finding a second token with the same key means finding a
// SHA-256 collision, which no attacker can steer. Storing the digest rather
// than the token keeps an entry small (100,000 tokens of ~1 KiB would
// otherwise hold ~100 MiB).
//
// An entry never outlives its token: every hit re-runs the exp/nbf/iat checks,
// and an entry whose key has left the key set (jwks.Key.Retired) is dropped
// and the token verified again from scratch, which then fails on its kid.
// The policy checks (pending, session status, deny list) run after the cache,
// on hits as on misses.

type cacheKey [sha256.Size]byte

func keyOf(token string) cacheKey {
	return sha256.Sum256([]byte(token))
}

type cacheEntry struct {
	claims *Claims
	key    *jwks.Key
	times  timeLimits
}

// cacheShards spreads the LRU's lock: a hit moves the entry to the front, so
// even reads take a shard's write lock.
const cacheShards = 16

type tokenCache struct {
	shards [cacheShards]*lru.Cache[cacheKey, *cacheEntry]
}

func newTokenCache(size int) *tokenCache {
	per := (size + cacheShards - 1) / cacheShards
	c := &tokenCache{}
	for i := range c.shards {
		s, err := lru.New[cacheKey, *cacheEntry](per)
		if err != nil {
			panic(err) // per > 0, so lru.New cannot fail
		}
		c.shards[i] = s
	}
	return c
}

func (c *tokenCache) shard(k cacheKey) *lru.Cache[cacheKey, *cacheEntry] {
	return c.shards[binary.LittleEndian.Uint32(k[:4])%cacheShards]
}

func (c *tokenCache) get(k cacheKey) (*cacheEntry, bool) { return c.shard(k).Get(k) }

func (c *tokenCache) add(k cacheKey, e *cacheEntry) { c.shard(k).Add(k, e) }

func (c *tokenCache) remove(k cacheKey) { c.shard(k).Remove(k) }

// Len is the number of cached tokens.
func (c *tokenCache) Len() int {
	n := 0
	for _, s := range c.shards {
		n += s.Len()
	}
	return n
}
