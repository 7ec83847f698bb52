package middleware

import (
	"encoding/binary"
	"strings"
	"sync"
)

// interner numbers the strings and string slices that repeat across the
// tokens of one instance (issuer, azp, organization id, role and slug, plan,
// permission and feature lists), so that a cached token stores a small
// integer instead of the bytes, and every hit shares one copy of each value
// instead of decoding its own. It runs on the miss path only, after the
// signature check: an attacker cannot fill it with strings of their choosing
// without valid tokens, and it is bounded anyway (past maxInterned values a
// new one is simply stored inline in the record).
//
// Ids are never reused and values never change, so a cache hit reads them
// without the interner's lock: the id reaches the hit through a record
// written after the value was published (the cache shard's lock orders the
// two).
type interner struct {
	mu       sync.Mutex // guards following
	strIDs   map[string]uint32
	sliceIDs map[string]uint32 // keyed by sliceKey
	nStrs    uint32
	nSlices  uint32
	strs     [internChunks]*[internChunk]string   // by id; chunks allocated on first use
	slices   [internChunks]*[internChunk][]string // by id; the slices MUST NOT be modified
}

const (
	maxInterned  = 4096
	internChunk  = 256
	internChunks = maxInterned / internChunk
	// maxInternedLen bounds a string worth sharing, maxSliceKey a list.
	maxInternedLen = 256
	maxSliceKey    = 4096
)

func newInterner() *interner {
	return &interner{strIDs: make(map[string]uint32), sliceIDs: make(map[string]uint32)}
}

// strIDLocked returns the id of s, numbering it if there is room.
func (in *interner) strIDLocked(s string) (uint32, bool) {
	if s == "" || len(s) > maxInternedLen {
		return 0, false
	}
	if id, ok := in.strIDs[s]; ok {
		return id, true
	}
	if in.nStrs == maxInterned {
		return 0, false
	}
	id := in.nStrs
	chunk := in.strs[id/internChunk]
	if chunk == nil {
		chunk = new([internChunk]string)
		in.strs[id/internChunk] = chunk
	}
	chunk[id%internChunk] = s
	in.strIDs[s] = id
	in.nStrs++
	return id, true
}

// sliceKey is an unambiguous key for a list: each element prefixed by its
// length (joining with a separator would make ["a","b"] and ["a\x00b"] one
// key).
func sliceKey(ss []string) (string, bool) {
	n := 0
	for _, s := range ss {
		n += len(s) + 2
	}
	if n > maxSliceKey {
		return "", false
	}
	b := make([]byte, 0, n)
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b), true
}

// sliceIDLocked returns the id of a list equal to ss, numbering a shared
// copy of it (with its elements shared too) if there is room. Empty lists
// are not numbered: a record encodes them inline.
func (in *interner) sliceIDLocked(ss []string) (uint32, bool) {
	if len(ss) == 0 {
		return 0, false
	}
	key, ok := sliceKey(ss)
	if !ok {
		return 0, false
	}
	if id, ok := in.sliceIDs[key]; ok {
		return id, true
	}
	if in.nSlices == maxInterned {
		return 0, false
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s
		if id, ok := in.strIDLocked(s); ok {
			out[i] = in.strAt(id)
		}
	}
	id := in.nSlices
	chunk := in.slices[id/internChunk]
	if chunk == nil {
		chunk = new([internChunk][]string)
		in.slices[id/internChunk] = chunk
	}
	chunk[id%internChunk] = out
	in.sliceIDs[key] = id
	in.nSlices++
	return id, true
}

// strAt and sliceAt return the value of an id that strIDLocked or
// sliceIDLocked returned. They take no lock (see interner).
func (in *interner) strAt(id uint32) string     { return in.strs[id/internChunk][id%internChunk] }
func (in *interner) sliceAt(id uint32) []string { return in.slices[id/internChunk][id%internChunk] }

// compact copies the verified claims src into dst, out of the decoding
// structure (which would otherwise stay alive with them), for the request
// that verified them. The three values unique to each token (sub, sid, jti)
// are packed into one string: whoever keeps the session id (the session
// status cache, the template-token cache) keeps ~100 bytes, not the
// decoding structure. The cache stores its own compact record of the claims
// (record.go), where the repeating values are interned.
func (g *Gate) compact(dst, src *Claims) {
	*dst = *src
	c := dst
	if c.Issuer == g.issuer {
		c.Issuer = g.issuer
	}
	if n := len(c.Subject) + len(c.SessionID) + len(c.ID); n > 0 {
		var b strings.Builder
		b.Grow(n)
		b.WriteString(c.Subject)
		b.WriteString(c.SessionID)
		b.WriteString(c.ID)
		all := b.String()
		sub, sid := len(c.Subject), len(c.Subject)+len(c.SessionID)
		c.Subject, c.SessionID, c.ID = all[:sub], all[sub:sid], all[sid:]
	}
}
