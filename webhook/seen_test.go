package webhook_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/webhook"
)

func newClock() *testclock.Clock { return testclock.New(time.Unix(1_800_000_000, 0)) }

// TestMemorySeenClaimsOnce: an id is new once until its TTL runs out, and
// new again afterwards.
func TestMemorySeenClaimsOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := webhook.NewMemorySeen(10, clk.Now)
	if !s.Claim("msg_1", time.Minute) {
		t.Fatal("first claim refused")
	}
	if s.Claim("msg_1", time.Minute) {
		t.Fatal("second claim accepted")
	}
	clk.Advance(59 * time.Second)
	if s.Claim("msg_1", time.Minute) {
		t.Fatal("claim inside the TTL accepted")
	}
	clk.Advance(time.Second)
	if !s.Claim("msg_1", time.Minute) {
		t.Fatal("claim after the TTL refused")
	}
	if s.Claim("msg_1", time.Minute) {
		t.Fatal("the renewed claim did not last")
	}
}

// TestMemorySeenFullEvictsExpiredBeforeLive: when full, expired ids go
// first, even when they are not the oldest claimed; live ids stay.
func TestMemorySeenFullEvictsExpiredBeforeLive(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := webhook.NewMemorySeen(3, clk.Now)
	s.Claim("live_a", 10*time.Minute)
	clk.Advance(time.Second)
	s.Claim("short", time.Minute) // claimed after live_a, expires first
	clk.Advance(time.Second)
	s.Claim("live_b", 10*time.Minute)
	clk.Advance(2 * time.Minute)
	if !s.Claim("new", 10*time.Minute) {
		t.Fatal("claim into a full set refused")
	}
	for _, id := range []string{"live_a", "live_b", "new"} {
		if s.Claim(id, 10*time.Minute) {
			t.Errorf("%s was evicted while an expired id was held", id)
		}
	}
}

// TestMemorySeenFullOfLiveEvictsTheOldest: when every id is live, the one
// claimed first (the first to expire) is forgotten, never a newer one.
func TestMemorySeenFullOfLiveEvictsTheOldest(t *testing.T) {
	t.Parallel()
	const n = 50
	clk := newClock()
	s := webhook.NewMemorySeen(n, clk.Now)
	for i := range n {
		s.Claim("msg_"+strconv.Itoa(i), 10*time.Minute)
		clk.Advance(time.Second)
	}
	for i := range 5 {
		if !s.Claim("extra_"+strconv.Itoa(i), 10*time.Minute) {
			t.Fatalf("extra_%d refused", i)
		}
	}
	// msg_0…msg_4 made room; msg_5… and the extras are still held. Check
	// the survivors first: claiming an evicted id evicts again.
	for i := 5; i < n; i++ {
		if s.Claim("msg_"+strconv.Itoa(i), 10*time.Minute) {
			t.Errorf("msg_%d (not among the oldest) was evicted", i)
		}
	}
	for i := range 5 {
		if s.Claim("extra_"+strconv.Itoa(i), 10*time.Minute) {
			t.Errorf("extra_%d (just claimed) was evicted", i)
		}
	}
	if !s.Claim("msg_0", 10*time.Minute) {
		t.Error("msg_0, the oldest, is still held")
	}
}

// TestMemorySeenHoldsAtMostMax: whatever the mix of TTLs and the pace of
// the clock, the set never holds more than max ids, and drops expired ones
// without waiting to be full.
func TestMemorySeenHoldsAtMostMax(t *testing.T) {
	t.Parallel()
	const max = 100
	clk := newClock()
	s := webhook.NewMemorySeen(max, clk.Now)
	for i := range 10 * max {
		s.Claim("msg_"+strconv.Itoa(i), time.Duration(1+i%7)*time.Second)
		if n := s.Len(); n > max {
			t.Fatalf("after %d claims the set holds %d ids, max %d", i+1, n, max)
		}
		clk.Advance(100 * time.Millisecond)
	}
	clk.Advance(8 * time.Second)
	s.Claim("last", time.Second)
	if n := s.Len(); n != 1 {
		t.Fatalf("after every TTL ran out the set holds %d ids, want 1", n)
	}
}

// BenchmarkMemorySeenFull claims new ids into a set holding a million live
// ones: every claim must evict. It is the cost a flood of distinct
// (signed) message ids imposes per delivery.
func BenchmarkMemorySeenFull(b *testing.B) {
	const size = 1_000_000
	clk := newClock()
	s := webhook.NewMemorySeen(size, clk.Now)
	for i := range size {
		s.Claim("msg_"+strconv.Itoa(i), time.Hour)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !s.Claim("new_"+strconv.Itoa(i), time.Hour) {
			b.Fatal("claim refused")
		}
	}
}

// BenchmarkMemorySeenFullExpiring is the steady state of a full set whose
// oldest ids keep expiring: the clock moves so that about one id expires
// per claim.
func BenchmarkMemorySeenFullExpiring(b *testing.B) {
	const size = 1_000_000
	const ttl = 10 * time.Minute
	step := ttl / size
	clk := newClock()
	s := webhook.NewMemorySeen(size, clk.Now)
	for i := range size {
		s.Claim("msg_"+strconv.Itoa(i), ttl)
		clk.Advance(step)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		clk.Advance(step)
		if !s.Claim("new_"+strconv.Itoa(i), ttl) {
			b.Fatal("claim refused")
		}
	}
}
