// Package testwait waits, in tests, for what nothing can announce: a
// condition on state the test does not own (a background loop's progress,
// a listener in another process, a metric) is polled until it holds, with
// a deadline, instead of sleeping for a guessed time. Only tests import
// it.
package testwait

import (
	"runtime"
	"testing"
	"time"
)

// Generous is the deadline for waits that only guard against a hang: long
// enough that a loaded machine never reaches it when the code works.
const Generous = 10 * time.Second

// interval is how often a condition is polled.
const interval = 5 * time.Millisecond

// Until polls cond until it holds and returns how long that took. Once
// within has passed it fails tb, naming what it waited for.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	if !Poll(within, cond) {
		tb.Fatalf("waited %v for %s", within, what)
	}
	return time.Since(start)
}

// Eventually is Until with the Generous deadline.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Until(tb, Generous, what, cond)
}

// Receive waits for a value on ch (or for ch to close) and returns it. The
// Generous deadline only keeps a broken test from hanging.
func Receive[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Generous):
		tb.Fatalf("waited %v for %s", Generous, what)
		var zero T
		return zero
	}
}

// SettledGoroutines waits, for at most a second, until the goroutine count
// stops moving (two samples 25 ms apart agree) and returns it: the baseline
// of a leak test. Goroutines that end in the background announce nothing,
// so sampling is the only way to see them settle.
func SettledGoroutines() int {
	prev := runtime.NumGoroutine()
	for range 40 {
		time.Sleep(25 * time.Millisecond) // the sampling interval
		n := runtime.NumGoroutine()
		if n == prev {
			return n
		}
		prev = n
	}
	return prev
}

// GoroutinesAtMost waits until at most max goroutines run and returns the
// count. After the Generous deadline it fails tb with what leaked and
// every goroutine's stack.
func GoroutinesAtMost(tb testing.TB, max int, what string) int {
	tb.Helper()
	n := runtime.NumGoroutine()
	ok := Poll(Generous, func() bool { n = runtime.NumGoroutine(); return n <= max })
	if !ok {
		buf := make([]byte, 1<<20)
		tb.Fatalf("goroutines %d, want at most %d: %s\n%s", n, max, what, buf[:runtime.Stack(buf, true)])
	}
	return n
}

// Poll polls cond until it holds or within passes, and reports whether it
// held: for callers that say themselves what went wrong.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}
