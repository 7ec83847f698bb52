//go:build race

package middleware_test

// raceEnabled: the race detector changes allocation counts (sync.Pool
// entries are dropped at random), so allocation tests skip under it; the
// test script runs them once without -race.
const raceEnabled = true
