package middleware

import (
	"encoding/binary"
	"encoding/json"
	"time"
	"unsafe"
)

// A record is one cached token's claims as pointer-free bytes in a cache
// slab (cache.go): the garbage collector never sees it. Layout, little
// endian, every record a multiple of 8 bytes:
//
//	0  size    u32    bytes of the record, padding included
//	4  keySlot u8     the verifying key's slot in the key table; padSlot: padding, not a record
//	5  flags   u8     rec* bits: which optional claims are present
//	6  extra   u16    refs in the extra area
//	8  tag     [16]   the token's full 128-bit cache key (a hit compares all of it)
//	24 exp     i64    Unix seconds
//	32 iat     i64
//	40 nbf     i64
//	48 keyGen  u32    the key slot's generation when the record was written
//	52 blobLen u32    bytes of the blob
//	56 version i64
//	64 refs    [13]u16  sub sid jti iss azp sts org_id org_slug org_role plan permissions features custom
//	90 extra   [extra]u16  the elements of the lists stored inline (permissions, then features), then the actor's four strings
//	   fva     2 × i64, when recFVA
//	   blob    the bytes of the strings stored inline, in the order of their refs, custom claims last
//
// A ref is an interned value's id | refInterned, or else the length of a
// string stored inline in the blob (or the number of elements of an inline
// list). Fixed offsets keep a hit's decoding to straight-line loads.
//
// A hit decodes a record into a new Claims: one allocation for the struct
// and one for the blob, whose bytes the strings and Custom share (the
// interned values are shared by every hit). The blob is separate from the
// struct so that a consumer keeping only the session id (the session status
// cache) keeps ~100 bytes, not the whole Claims.
const (
	recRefs     = 64
	nRefs       = 13
	recExtra    = recRefs + 2*nRefs
	padSlot     = 0xFF
	refInterned = 1 << 15
	maxRefLen   = refInterned - 1
)

// The refs, in order.
const (
	refSub = iota
	refSid
	refJti
	refIss
	refAzp
	refSts
	refOrgID
	refOrgSlug
	refOrgRole
	refPlan
	refPerms
	refFeatures
	refCustom
)

const (
	recExp            = 1 << iota // Expiry is set
	recIat                        // IssuedAt is set
	recNbf                        // NotBefore is set
	recFVA                        // FactorVerificationAge is not nil
	recActor                      // Actor is not nil
	recCustom                     // Custom is not nil
	recPermsNotNil                // OrgPermissions is not nil
	recFeaturesNotNil             // Features is not nil
)

// recordTime encodes exp, iat or nbf. The Gate builds them with time.Unix
// (seconds, local location) or leaves them zero; anything else cannot be
// reproduced from seconds, and ok is false (the claims are then not cached).
func recordTime(t time.Time) (sec int64, present, ok bool) {
	if t == (time.Time{}) {
		return 0, false, true
	}
	sec = t.Unix()
	return sec, true, time.Unix(sec, 0) == t
}

// recordWriter builds a record's parts. ok turns false when a value does
// not fit a ref.
type recordWriter struct {
	in    *interner // locked by the caller
	refs  [nRefs]uint16
	extra []uint16
	blob  []byte
	ok    bool
}

func (w *recordWriter) inline(s string) uint16 {
	if len(s) > maxRefLen {
		w.ok = false
		return 0
	}
	w.blob = append(w.blob, s...)
	return uint16(len(s))
}

// str stores a string that may repeat across tokens.
func (w *recordWriter) str(s string) uint16 {
	if id, ok := w.in.strIDLocked(s); ok {
		return uint16(id) | refInterned
	}
	return w.inline(s)
}

func (w *recordWriter) list(ss []string) uint16 {
	if id, ok := w.in.sliceIDLocked(ss); ok {
		return uint16(id) | refInterned
	}
	if len(ss) > maxRefLen {
		w.ok = false
		return 0
	}
	for _, s := range ss {
		w.extra = append(w.extra, w.str(s))
	}
	return uint16(len(ss))
}

// appendRecord appends the record of c to dst. ok is false for claims a
// record cannot reproduce exactly (see recordTime) or too large for one.
func appendRecord(dst []byte, c *Claims, tag cacheKey, slot uint8, gen uint32, in *interner) (rec []byte, ok bool) {
	var flags uint8
	var times [3]int64
	for i, t := range [...]time.Time{c.Expiry, c.IssuedAt, c.NotBefore} {
		sec, present, exact := recordTime(t)
		if !exact {
			return dst, false
		}
		if present {
			flags |= recExp << i
			times[i] = sec
		}
	}
	w := recordWriter{in: in, blob: make([]byte, 0, 128), ok: true}
	in.mu.Lock()
	w.refs[refSub] = w.inline(c.Subject)
	w.refs[refSid] = w.inline(c.SessionID)
	w.refs[refJti] = w.inline(c.ID)
	w.refs[refIss] = w.str(c.Issuer)
	w.refs[refAzp] = w.str(c.AuthorizedParty)
	w.refs[refSts] = w.str(c.SessionStatus)
	w.refs[refOrgID] = w.str(c.OrgID)
	w.refs[refOrgSlug] = w.str(c.OrgSlug)
	w.refs[refOrgRole] = w.str(c.OrgRole)
	w.refs[refPlan] = w.str(c.Plan)
	w.refs[refPerms] = w.list(c.OrgPermissions)
	w.refs[refFeatures] = w.list(c.Features)
	in.mu.Unlock()
	if c.OrgPermissions != nil {
		flags |= recPermsNotNil
	}
	if c.Features != nil {
		flags |= recFeaturesNotNil
	}
	if a := c.Actor; a != nil {
		flags |= recActor
		w.extra = append(w.extra, w.inline(a.Issuer), w.inline(a.SessionID), w.inline(a.Subject), w.inline(a.Type))
	}
	if c.Custom != nil {
		flags |= recCustom
		if len(c.Custom) > maxRefLen {
			return dst, false
		}
		w.refs[refCustom] = uint16(len(c.Custom))
		w.blob = append(w.blob, c.Custom...)
	}
	fva := 0
	if c.FactorVerificationAge != nil {
		flags |= recFVA
		fva = 16
	}
	if !w.ok || len(w.extra) > maxRefLen {
		return dst, false
	}
	blobAt := recExtra + 2*len(w.extra) + fva
	size := (blobAt + len(w.blob) + 7) &^ 7
	if size > maxRecordSize {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	r := dst[start:]
	le := binary.LittleEndian
	le.PutUint32(r[0:], uint32(size))
	r[4] = slot
	r[5] = flags
	le.PutUint16(r[6:], uint16(len(w.extra)))
	copy(r[8:24], tag[:])
	for i, t := range times {
		le.PutUint64(r[24+8*i:], uint64(t))
	}
	le.PutUint32(r[48:], gen)
	le.PutUint32(r[52:], uint32(len(w.blob)))
	le.PutUint64(r[56:], uint64(c.Version))
	for i, ref := range w.refs {
		le.PutUint16(r[recRefs+2*i:], ref)
	}
	for i, ref := range w.extra {
		le.PutUint16(r[recExtra+2*i:], ref)
	}
	if f := c.FactorVerificationAge; f != nil {
		le.PutUint64(r[blobAt-16:], uint64(f[0]))
		le.PutUint64(r[blobAt-8:], uint64(f[1]))
	}
	copy(r[blobAt:], w.blob)
	return dst, true
}

// maxRecordSize bounds a record: far above what Clerk issues (~200 bytes for
// a session token with an organization; a 16 KiB token at the permission
// limits needs ~20 KiB), under the smallest shard (minShardReserve).
const maxRecordSize = 32 << 10

// cachedClaims is what a hit allocates: the claims and the fva array they
// point to, in one object.
type cachedClaims struct {
	Claims
	fva [2]int64
}

// recordReader decodes refs against the hit's own copy of the blob.
type recordReader struct {
	in   *interner
	blob []byte
	off  int // next inline byte in blob
}

// inline returns the next n bytes of the blob as a string. The blob is this
// hit's own and nothing writes it: the strings may share it (as
// strings.Builder does).
func (r *recordReader) inline(n int) string {
	if n == 0 {
		return ""
	}
	s := unsafe.String(&r.blob[r.off], n)
	r.off += n
	return s
}

func (r *recordReader) str(ref uint16) string {
	if ref&refInterned != 0 {
		return r.in.strAt(uint32(ref &^ refInterned))
	}
	return r.inline(int(ref))
}

// list decodes a list ref; inline elements are read from extra.
func (r *recordReader) list(ref uint16, notNil bool, extra *[]byte) []string {
	if ref&refInterned != 0 {
		return r.in.sliceAt(uint32(ref &^ refInterned))
	}
	if ref == 0 {
		if notNil {
			return []string{}
		}
		return nil
	}
	out := make([]string, ref)
	for i := range out {
		out[i] = r.str(binary.LittleEndian.Uint16(*extra))
		*extra = (*extra)[2:]
	}
	return out
}

// decodeRecord returns a new Claims equal to the one rec was built from.
// rec MUST be a record appendRecord wrote, read under the shard's lock.
func decodeRecord(rec []byte, in *interner) *Claims {
	le := binary.LittleEndian
	flags := rec[5]
	extra := rec[recExtra : recExtra+2*int(le.Uint16(rec[6:]))]
	blobAt := recExtra + len(extra)
	if flags&recFVA != 0 {
		blobAt += 16
	}
	h := new(cachedClaims)
	c := &h.Claims
	r := recordReader{in: in}
	if n := int(le.Uint32(rec[52:])); n > 0 {
		r.blob = make([]byte, n)
		copy(r.blob, rec[blobAt:])
	}
	if flags&recExp != 0 {
		c.Expiry = time.Unix(int64(le.Uint64(rec[24:])), 0)
	}
	if flags&recIat != 0 {
		c.IssuedAt = time.Unix(int64(le.Uint64(rec[32:])), 0)
	}
	if flags&recNbf != 0 {
		c.NotBefore = time.Unix(int64(le.Uint64(rec[40:])), 0)
	}
	c.Version = int(int64(le.Uint64(rec[56:])))
	refs := (*[2 * nRefs]byte)(rec[recRefs:recExtra])
	ref := func(i int) uint16 { return le.Uint16(refs[2*i:]) }
	c.Subject = r.inline(int(ref(refSub)))
	c.SessionID = r.inline(int(ref(refSid)))
	c.ID = r.inline(int(ref(refJti)))
	c.Issuer = r.str(ref(refIss))
	c.AuthorizedParty = r.str(ref(refAzp))
	c.SessionStatus = r.str(ref(refSts))
	c.OrgID = r.str(ref(refOrgID))
	c.OrgSlug = r.str(ref(refOrgSlug))
	c.OrgRole = r.str(ref(refOrgRole))
	c.Plan = r.str(ref(refPlan))
	c.OrgPermissions = r.list(ref(refPerms), flags&recPermsNotNil != 0, &extra)
	c.Features = r.list(ref(refFeatures), flags&recFeaturesNotNil != 0, &extra)
	if flags&recActor != 0 {
		a := &Actor{}
		for _, f := range [...]*string{&a.Issuer, &a.SessionID, &a.Subject, &a.Type} {
			*f = r.inline(int(le.Uint16(extra)))
			extra = extra[2:]
		}
		c.Actor = a
	}
	if flags&recFVA != 0 {
		h.fva = [2]int64{int64(le.Uint64(rec[blobAt-16:])), int64(le.Uint64(rec[blobAt-8:]))}
		c.FactorVerificationAge = &h.fva
	}
	if flags&recCustom != 0 {
		if n := int(ref(refCustom)); n == 0 {
			c.Custom = json.RawMessage{}
		} else {
			c.Custom = r.blob[r.off : r.off+n : r.off+n] // capacity n: an append copies
		}
	}
	return c
}
