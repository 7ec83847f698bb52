package middleware

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/jwks"
)

// randomClaims returns claims of every shape the Gate can produce, and a
// few it cannot (empty non-nil lists, an empty Actor, empty Custom, NULs in
// strings): times are zero or whole seconds in the local location, as
// decodeClaims builds them.
func randomClaims(r *mrand.Rand, pool []string) *Claims {
	str := func() string {
		switch r.IntN(6) {
		case 0:
			return ""
		case 1: // a value that repeats across tokens (interned)
			return pool[r.IntN(len(pool))]
		case 2: // too long to intern
			return strings.Repeat("x", maxInternedLen+1+r.IntN(50))
		case 3:
			return "a\x00b" + fmt.Sprint(r.Uint64())
		default:
			b := make([]byte, r.IntN(40))
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			return string(b)
		}
	}
	list := func() []string {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		default:
			out := make([]string, 1+r.IntN(6))
			for i := range out {
				out[i] = str()
			}
			return out
		}
	}
	tm := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		return time.Unix(minNumericDate+r.Int64N(maxNumericDate-minNumericDate+1), 0)
	}
	c := &Claims{
		Subject: str(), SessionID: str(), Issuer: str(), AuthorizedParty: str(), ID: str(),
		Expiry: tm(), IssuedAt: tm(), NotBefore: tm(),
		Version:       int(r.Int64()) * (1 - 2*r.IntN(2)),
		SessionStatus: str(), OrgID: str(), OrgSlug: str(), OrgRole: str(),
		OrgPermissions: list(), Features: list(), Plan: str(),
	}
	if r.IntN(2) == 0 {
		c.FactorVerificationAge = &[2]int64{r.Int64() - r.Int64(), int64(r.IntN(3)) - 1}
	}
	switch r.IntN(3) {
	case 0:
		c.Actor = &Actor{}
	case 1:
		c.Actor = &Actor{Issuer: str(), SessionID: str(), Subject: str(), Type: str()}
	}
	switch r.IntN(4) {
	case 0:
		c.Custom = json.RawMessage{}
	case 1:
		c.Custom = json.RawMessage(`{"email":"` + str() + `","n":` + fmt.Sprint(r.IntN(1000)) + `}`)
	case 2:
		c.Custom = json.RawMessage(strings.Repeat("y", r.IntN(3000)))
	}
	return c
}

// TestRecordRoundTrip: a record decodes to claims deeply equal to those it
// was built from, for random claims, with the interner empty, in use, and
// full (values then stored inline).
func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	r := mrand.New(mrand.NewPCG(seed, 1))
	pool := []string{"https://clerk.example.com", "https://app.example.com", "active", "pending", "org:admin",
		"org_2abc", "acme", "u:pro", "o:dashboard", "org:docs:read"}
	full := newInterner()
	full.mu.Lock()
	for i := 0; full.nStrs < maxInterned; i++ {
		full.strIDLocked(fmt.Sprint("filler", i))
	}
	for i := 0; full.nSlices < maxInterned; i++ {
		full.sliceIDLocked([]string{fmt.Sprint("filler", i)})
	}
	full.mu.Unlock()
	for _, in := range []struct {
		name string
		in   *interner
	}{{"shared interner", newInterner()}, {"full interner", full}} {
		for i := range 3000 {
			c := randomClaims(r, pool)
			var tag cacheKey
			binary.LittleEndian.PutUint64(tag[:], r.Uint64())
			rec, ok := appendRecord(nil, c, tag, uint8(r.IntN(maxKeys)), r.Uint32(), in.in)
			if !ok {
				t.Fatalf("%s, seed %d, case %d: claims not encodable: %+v", in.name, seed, i, c)
			}
			if len(rec)%8 != 0 || int(binary.LittleEndian.Uint32(rec)) != len(rec) || *(*cacheKey)(rec[8:24]) != tag {
				t.Fatalf("%s, seed %d, case %d: bad header", in.name, seed, i)
			}
			if got := decodeRecord(rec, in.in); !reflect.DeepEqual(got, c) {
				t.Fatalf("%s, seed %d, case %d: round trip differs:\n got %#v\nwant %#v", in.name, seed, i, *got, *c)
			}
		}
	}
}

// TestRecordRefusesWhatItCannotReproduce: times that are not whole seconds
// in the local location are not cached rather than cached differently.
func TestRecordRefusesWhatItCannotReproduce(t *testing.T) {
	t.Parallel()
	base := Claims{Subject: "user_1", Expiry: time.Unix(1e9, 0)}
	for name, mutate := range map[string]func(*Claims){
		"nanoseconds":    func(c *Claims) { c.Expiry = time.Unix(1e9, 1) },
		"UTC location":   func(c *Claims) { c.IssuedAt = time.Unix(1e9, 0).UTC() },
		"monotonic time": func(c *Claims) { c.NotBefore = time.Now() },
	} {
		c := base
		mutate(&c)
		if _, ok := appendRecord(nil, &c, cacheKey{}, 0, 1, newInterner()); ok {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, ok := appendRecord(nil, &base, cacheKey{}, 0, 1, newInterner()); !ok {
		t.Error("plain claims refused")
	}
}

func TestSliceKeyIsUnambiguous(t *testing.T) {
	t.Parallel()
	in := newInterner()
	in.mu.Lock()
	defer in.mu.Unlock()
	a, _ := in.sliceIDLocked([]string{"a", "b"})
	b, _ := in.sliceIDLocked([]string{"a\x00b"})
	c, _ := in.sliceIDLocked([]string{"a", "b"})
	if a == b || a != c {
		t.Fatalf("ids %d %d %d", a, b, c)
	}
}

// testKey returns a key for cache tests (never used to verify anything).
func testKey(t testing.TB, kid string) *jwks.Key {
	t.Helper()
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwks.NewKey(kid, jwks.RS256, &pk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var testKeyOnce = sync.OnceValues(func() (*jwks.Key, error) {
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return jwks.NewKey("ins_test", jwks.RS256, &pk.PublicKey)
})

func sharedKey(t testing.TB) *jwks.Key {
	t.Helper()
	k, err := testKeyOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func claimsN(i int) *Claims {
	return &Claims{Subject: fmt.Sprintf("user_%027d", i), SessionID: fmt.Sprintf("sess_%027d", i),
		Issuer: "https://clerk.example.com", Expiry: time.Unix(2e9, 0), Version: 2, SessionStatus: "active"}
}

func newTestCache(t testing.TB, size int) *tokenCache {
	t.Helper()
	c, err := newTokenCache(size, newInterner())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkInvariants verifies every shard's bookkeeping against its ring.
func checkInvariants(t *testing.T, c *tokenCache) {
	t.Helper()
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		live := uint32(0)
		for ik, off := range s.idx {
			rec := s.ring[off:]
			if rec[4] == padSlot || binary.LittleEndian.Uint64(rec[8:]) != ik {
				t.Fatalf("shard %d: index %x points at a record of another key", i, ik)
			}
			live += binary.LittleEndian.Uint32(rec)
		}
		if live != s.liveBytes {
			t.Fatalf("shard %d: live bytes %d, counted %d", i, s.liveBytes, live)
		}
		// Walk the ring from head to tail.
		walked, pos, wrapped := uint32(0), s.head, s.wrapped
		for walked < s.used {
			size := binary.LittleEndian.Uint32(s.ring[pos:])
			if size == 0 || size%8 != 0 {
				t.Fatalf("shard %d: record of size %d at %d", i, size, pos)
			}
			walked += size
			pos += size
			if wrapped && pos == uint32(len(s.ring)) {
				pos, wrapped = 0, false
			}
		}
		if walked != s.used || pos != s.tail {
			t.Fatalf("shard %d: walked %d bytes to %d, used %d tail %d", i, walked, pos, s.used, s.tail)
		}
		total += len(s.idx)
		s.mu.RUnlock()
	}
	if total != c.Len() {
		t.Fatalf("count %d, indexed %d", c.Len(), total)
	}
}

func TestTokenCacheBoundedFIFO(t *testing.T) {
	t.Parallel()
	const size = 1000
	c := newTestCache(t, size)
	key := sharedKey(t)
	keys := make([]cacheKey, 5*size)
	for i := range keys {
		rand.Read(keys[i][:])
		c.add(keys[i], key, claimsN(i))
		if c.Len() > size {
			t.Fatalf("after %d adds: %d entries, limit %d", i+1, c.Len(), size)
		}
		if i%97 == 0 {
			checkInvariants(t, c)
		}
	}
	checkInvariants(t, c)
	if c.Len() != size {
		t.Fatalf("%d entries, want %d", c.Len(), size)
	}
	// The newest entries are the ones kept (the oldest of each shard goes,
	// and shards hold about the same number); each decodes to its own claims.
	for i := len(keys) - size/4; i < len(keys); i++ {
		got, ok := c.get(keys[i])
		if !ok || !reflect.DeepEqual(got, claimsN(i)) {
			t.Fatalf("entry %d: %v %+v", i, ok, got)
		}
	}
	if _, ok := c.get(keys[0]); ok {
		t.Fatal("the oldest entry survived 5 times the limit")
	}
}

// TestTokenCacheRingWrapsAndGrows: large records force the rings to grow,
// then to wrap; every entry the index still names decodes intact.
func TestTokenCacheRingWrapsAndGrows(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, 200) // 128 KiB reservations: a few 2-20 KiB records per shard
	key := sharedKey(t)
	r := mrand.New(mrand.NewPCG(1, 2))
	want := map[cacheKey]*Claims{}
	grew := false
	for i := range 3000 {
		var k cacheKey
		rand.Read(k[:])
		cl := claimsN(i)
		cl.Custom = json.RawMessage(strings.Repeat("z", r.IntN(20000)))
		c.add(k, key, cl)
		want[k] = cl
		if i%50 == 0 {
			checkInvariants(t, c)
		}
	}
	checkInvariants(t, c)
	found := 0
	for k, cl := range want {
		if got, ok := c.get(k); ok {
			found++
			if !reflect.DeepEqual(got, cl) {
				t.Fatal("a record was overwritten in place")
			}
		}
	}
	for i := range c.shards {
		grew = grew || len(c.shards[i].ring) > initialShardBytes
	}
	if found == 0 || found != c.Len() || !grew {
		t.Fatalf("found %d of %d entries; rings grew: %v", found, c.Len(), grew)
	}
}

func TestTokenCacheRemoveAndReplace(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, 100)
	key := sharedKey(t)
	var k cacheKey
	rand.Read(k[:])
	c.add(k, key, claimsN(1))
	c.add(k, key, claimsN(2)) // the same token verified twice concurrently
	if got, ok := c.get(k); !ok || got.Subject != claimsN(2).Subject || c.Len() != 1 {
		t.Fatalf("after a replace: %v %+v, %d entries", ok, got, c.Len())
	}
	// A key with the same 64 index bits but another tag must neither hit
	// nor remove the entry.
	other := k
	other[15] ^= 1
	if _, ok := c.get(other); ok {
		t.Fatal("a different tag hit")
	}
	c.remove(other)
	if _, ok := c.get(k); !ok {
		t.Fatal("removing a different tag removed the entry")
	}
	// A colliding token replaces the index entry; the first then misses.
	c.add(other, key, claimsN(3))
	if _, ok := c.get(k); ok {
		t.Fatal("the replaced entry still hits")
	}
	if got, ok := c.get(other); !ok || got.Subject != claimsN(3).Subject || c.Len() != 1 {
		t.Fatalf("colliding entry: %v %+v, %d entries", ok, got, c.Len())
	}
	c.remove(other)
	if _, ok := c.get(other); ok || c.Len() != 0 {
		t.Fatalf("removed entry still there (%d entries)", c.Len())
	}
	checkInvariants(t, c)
}

// TestTokenCacheRetiredKeys: the records of a retired key miss and are
// dropped; a reused key slot orphans the records of its previous key.
func TestTokenCacheRetiredKeys(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, 1000)
	k1, k2 := testKey(t, "ins_1"), testKey(t, "ins_2")
	var a, b cacheKey
	rand.Read(a[:])
	rand.Read(b[:])
	c.add(a, k1, claimsN(1))
	c.add(b, k2, claimsN(2))
	k1.Retire()
	if _, ok := c.get(a); ok {
		t.Fatal("a token of a retired key hit")
	}
	if _, ok := c.get(b); !ok {
		t.Fatal("a token of a live key missed")
	}
	if c.Len() != 1 {
		t.Fatalf("%d entries after dropping the retired key's", c.Len())
	}
	// More keys than slots: k2's slot is reused at some point.
	fresh := make([]*jwks.Key, 2*maxKeys)
	for i := range fresh {
		fresh[i] = &jwks.Key{ID: fmt.Sprint("ins_x", i), Algorithm: jwks.RS256, Public: k2.Public}
		var k cacheKey
		rand.Read(k[:])
		c.add(k, fresh[i], claimsN(i+10))
	}
	if _, ok := c.get(b); ok {
		t.Fatal("a token hit after its key's slot was given to another key")
	}
	checkInvariants(t, c)
}

// TestTokenCacheConcurrent hammers one cache from many goroutines (run it
// with -race): hits, misses, replaces, removals and evictions at once.
func TestTokenCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, 500)
	key := sharedKey(t)
	keys := make([]cacheKey, 2000)
	for i := range keys {
		rand.Read(keys[i][:])
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 3))
			for range 5000 {
				i := r.IntN(len(keys))
				switch r.IntN(10) {
				case 0:
					c.remove(keys[i])
				case 1, 2, 3:
					c.add(keys[i], key, claimsN(i))
				default:
					if got, ok := c.get(keys[i]); ok && got.Subject != claimsN(i).Subject {
						panic("wrong claims for a key") // no t.Fatal off the test goroutine
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if n := c.Len(); n > 500+8 || n < 0 {
		t.Fatalf("%d entries, limit 500", n)
	}
	checkInvariants(t, c)
}
