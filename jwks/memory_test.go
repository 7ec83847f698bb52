package jwks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func mustKey(tb testing.TB, id, alg string, i int) *Key {
	tb.Helper()
	k, err := NewKey(id, alg, &rsaKey(tb, i).PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := mustKey(t, "a", RS256, 0)
	b := mustKey(t, "b", RS256, 1)
	m := NewMemory(a, b, nil)

	if got, err := m.Key(ctx, "a"); err != nil || got != a {
		t.Fatalf("Key(a) = %v, %v", got, err)
	}
	if _, err := m.Key(ctx, "zzz"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("unknown kid: err = %v, want ErrKeyNotFound", err)
	}
	if !m.Ready() {
		t.Error("Ready() = false with keys")
	}

	// Set with an equal copy of a keeps a's pointer; b leaves and retires.
	aCopy := mustKey(t, "a", RS256, 0)
	c := mustKey(t, "c", RS384, 2)
	m.Set(aCopy, c)
	if got, _ := m.Key(ctx, "a"); got != a {
		t.Error("Set replaced an unchanged key")
	}
	if a.Retired() || !b.Retired() || c.Retired() {
		t.Errorf("retired: a %v b %v c %v; want only b", a.Retired(), b.Retired(), c.Retired())
	}
	if _, err := m.Key(ctx, "b"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("removed kid: err = %v", err)
	}

	// Same kid, other algorithm: a changed key.
	a384 := mustKey(t, "a", RS384, 0)
	m.Add(a384)
	if got, _ := m.Key(ctx, "a"); got != a384 || !a.Retired() {
		t.Errorf("Add of a changed key: got %p, old retired %v", got, a.Retired())
	}
	// Adding an equal key keeps the held one.
	m.Add(mustKey(t, "a", RS384, 0))
	if got, _ := m.Key(ctx, "a"); got != a384 || a384.Retired() {
		t.Error("Add of an equal key replaced the held one")
	}
	m.Add(nil)

	m.Remove("c")
	m.Remove("not-there")
	if !c.Retired() {
		t.Error("Remove did not retire c")
	}
	if _, err := m.Key(ctx, "c"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("after Remove: err = %v", err)
	}

	// A retired key coming back is a fresh *Key.
	m.Add(c)
	got, err := m.Key(ctx, "c")
	if err != nil || got == c || got.Retired() || !sameKey(got, c) {
		t.Errorf("re-added retired key: %p (orig %p), retired %v, err %v", got, c, got.Retired(), err)
	}

	m.Set()
	if m.Ready() || !a384.Retired() || !got.Retired() {
		t.Error("Set() did not empty and retire")
	}
	var zero Memory
	zero.Add(b)
	if _, err := zero.Key(ctx, "b"); err != nil {
		t.Errorf("zero Memory Add: %v", err)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	t.Parallel()
	keys := []*Key{mustKey(t, "a", RS256, 0), mustKey(t, "b", RS256, 1), mustKey(t, "c", RS256, 2)}
	m := NewMemory(keys...)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				switch (i + j) % 4 {
				case 0:
					_, _ = m.Key(context.Background(), keys[j%3].ID)
				case 1:
					m.Set(keys[:1+j%3]...)
				case 2:
					m.Add(mustKey(t, fmt.Sprint("k", j%5), RS256, j%3))
				case 3:
					m.Remove(fmt.Sprint("k", j%5))
				}
			}
		})
	}
	wg.Wait()
}
