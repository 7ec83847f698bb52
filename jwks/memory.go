package jwks

import (
	"context"
	"fmt"
	"sync"
)

// Memory is a key source held in memory, for tests and for embedders that
// obtain keys some other way. It is safe for concurrent use.
//
// Keys are replaced with the same rules as a Remote refresh: a key equal to
// the one already held under its kid (same algorithm, modulus and exponent)
// leaves the existing *Key in place, and a key that leaves the set is retired.
// A retired *Key passed to Set or Add is copied, since retirement is final.
type Memory struct {
	mu   sync.Mutex // guards following
	keys map[string]*Key
}

// NewMemory returns a Memory holding keys (see Set).
func NewMemory(keys ...*Key) *Memory {
	m := &Memory{}
	m.Set(keys...)
	return m
}

// Key returns the key with the given kid, or an error wrapping ErrKeyNotFound.
func (m *Memory) Key(_ context.Context, kid string) (*Key, error) {
	m.mu.Lock()
	k, ok := m.keys[kid]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w (in-memory key set)", ErrKeyNotFound)
	}
	return k, nil
}

// Set replaces the whole set with keys. Unchanged keys keep their pointer;
// keys that left are retired. A later key wins over an earlier one with the
// same ID; nil keys are ignored.
func (m *Memory) Set(keys ...*Key) {
	m.mu.Lock()
	merged, gone := mergeKeys(m.keys, keys)
	m.keys = merged
	m.mu.Unlock()
	retireAll(gone)
}

// Add adds k to the set, replacing (and retiring) a different key with the
// same ID. Adding a key equal to the one held keeps the held pointer.
func (m *Memory) Add(k *Key) {
	if k == nil {
		return
	}
	m.mu.Lock()
	prev, ok := m.keys[k.ID]
	if ok && sameKey(prev, k) && !prev.Retired() {
		m.mu.Unlock()
		return
	}
	if m.keys == nil {
		m.keys = make(map[string]*Key)
	}
	m.keys[k.ID] = freshKey(k)
	m.mu.Unlock()
	if ok {
		prev.Retire()
	}
}

// Remove removes and retires the key with the given kid, if any.
func (m *Memory) Remove(kid string) {
	m.mu.Lock()
	k, ok := m.keys[kid]
	delete(m.keys, kid)
	m.mu.Unlock()
	if ok {
		k.Retire()
	}
}

// Ready reports whether the set holds at least one key.
func (m *Memory) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys) > 0
}

func retireAll(keys []*Key) {
	for _, k := range keys {
		k.Retire()
	}
}
