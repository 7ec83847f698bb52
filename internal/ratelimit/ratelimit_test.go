package ratelimit

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestKeyedBucket(t *testing.T) {
	c := &clock{t: time.Unix(1_000, 0)}
	k := NewKeyed(2, 3, 2, c.now)
	for i := 0; i < 3; i++ {
		if ok, _ := k.Take("a"); !ok {
			t.Fatalf("take %d refused within the burst", i)
		}
	}
	ok, wait := k.Take("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: ok %v wait %v, want refused and 500ms", ok, wait)
	}
	if ok, _ := k.Take("b"); !ok {
		t.Fatal("another key shares a's bucket")
	}
	c.t = c.t.Add(500 * time.Millisecond)
	if ok, _ := k.Take("a"); !ok {
		t.Fatal("no refill after 1/rate")
	}
	// Size 2: a third key evicts the least recently used one.
	k.Take("c")
	if k.Len() != 2 {
		t.Fatalf("Len %d, want 2", k.Len())
	}
}

func TestZeroRateNeverRefills(t *testing.T) {
	c := &clock{t: time.Unix(1_000, 0)}
	k := NewKeyed(0, 1, 10, c.now)
	k.Take("a")
	c.t = c.t.Add(time.Hour)
	if ok, _ := k.Take("a"); ok {
		t.Fatal("a zero rate refilled")
	}
}
