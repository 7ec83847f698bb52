// Package testclock is the settable clock of sessiongate's tests: its Now
// is injected where a Config or Options takes a clock (Now func() time.Time),
// and the test moves it with Advance instead of sleeping. It is safe for
// concurrent use: the code under test reads it from its own goroutines.
package testclock

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when told to.
type Clock struct {
	mu sync.Mutex // guards following
	t  time.Time
}

// New returns a Clock reading start.
func New(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
