package jwks

// sameKey reports whether a and b are the same verification key: same id,
// same algorithm, same modulus and exponent.
func sameKey(a, b *Key) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Public == nil || b.Public == nil {
		return false
	}
	return a.ID == b.ID && a.Algorithm == b.Algorithm &&
		a.Public.E == b.Public.E && a.Public.N.Cmp(b.Public.N) == 0
}

// freshKey returns k, or an unretired copy of it when k was retired: a
// retired flag never clears, so a key re-entering a set needs a new *Key.
func freshKey(k *Key) *Key {
	if !k.Retired() {
		return k
	}
	return &Key{ID: k.ID, Algorithm: k.Algorithm, Public: k.Public}
}

// mergeKeys builds the map for a new key set. A key of next equal to a key
// of old (see sameKey) keeps the old *Key, so caches keyed on the pointer stay
// valid across refreshes. gone lists the keys of old that are not in merged;
// the caller retires them after publishing merged, so that no reader can find
// a retired key in the current set. A later key in next wins over an earlier
// one with the same id; nil keys are ignored.
func mergeKeys(old map[string]*Key, next []*Key) (merged map[string]*Key, gone []*Key) {
	merged = make(map[string]*Key, len(next))
	for _, k := range next {
		if k == nil {
			continue
		}
		if prev, ok := old[k.ID]; ok && sameKey(prev, k) && !prev.Retired() {
			merged[k.ID] = prev
			continue
		}
		merged[k.ID] = freshKey(k)
	}
	for id, prev := range old {
		if merged[id] != prev {
			gone = append(gone, prev)
		}
	}
	return merged, gone
}
