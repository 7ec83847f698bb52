package sessioncheck_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/sessioncheck"
)

// benchDenyListSize is the deny list's default bound: the benchmarks run
// it full.
const benchDenyListSize = 1_000_000

// fullDenyList returns a deny list holding its maximum of live entries,
// each denied one nanosecond after the previous, so that the oldest is the
// one closest to expiry.
func fullDenyList(tb testing.TB) (*sessioncheck.DenyList, *clock) {
	tb.Helper()
	clk := newClock()
	d := sessioncheck.NewDenyList(time.Hour, benchDenyListSize, clk.Now)
	for i := range benchDenyListSize {
		d.Deny("sess_" + strconv.Itoa(i))
		clk.Advance(time.Nanosecond)
	}
	if d.Len() != benchDenyListSize {
		tb.Fatalf("Len = %d, want %d", d.Len(), benchDenyListSize)
	}
	return d, clk
}

// BenchmarkDenyListAddFull is a revocation arriving while the list is full
// of live entries: each one evicts the entry closest to expiry.
func BenchmarkDenyListAddFull(b *testing.B) {
	d, clk := fullDenyList(b)
	b.ReportAllocs()
	i := benchDenyListSize
	for b.Loop() {
		d.Deny("sess_" + strconv.Itoa(i))
		clk.Advance(time.Nanosecond)
		i++
	}
}

// BenchmarkDenyListDenied is the request path's check on a full list, from
// every core at once, for a session that is on it and one that is not.
func BenchmarkDenyListDenied(b *testing.B) {
	d, _ := fullDenyList(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			sid := "sess_424242"
			if n&1 == 1 {
				sid = "sess_live"
			}
			if d.Denied(sid) != (n&1 == 0) {
				b.Error("wrong answer")
				return
			}
			n++
		}
	})
}

// BenchmarkDenyListDeniedWhileAdding is BenchmarkDenyListDenied while one
// goroutine adds revocations to the full list as fast as it can (a webhook
// burst, a resync): the check must not wait for the writer.
func BenchmarkDenyListDeniedWhileAdding(b *testing.B) {
	d, _ := fullDenyList(b)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := benchDenyListSize; !stop.Load(); i++ {
			d.Deny("sess_w" + strconv.Itoa(i))
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Denied("sess_live")
		}
	})
	b.StopTimer()
	stop.Store(true)
	<-done
}
