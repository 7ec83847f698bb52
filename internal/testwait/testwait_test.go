package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	Until(t, Generous, "the third poll", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("polled %d times, want 3", n.Load())
	}
}

// fatalTB records Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Helper()               {}
func (f *fatalTB) Fatalf(string, ...any) { f.failed = true }

func TestUntilFailsAfterTheDeadline(t *testing.T) {
	t.Parallel()
	tb := &fatalTB{TB: t}
	calls := 0
	Until(tb, 20*time.Millisecond, "never", func() bool { calls++; return tb.failed })
	if !tb.failed || calls < 2 {
		t.Fatalf("failed %v after %d polls", tb.failed, calls)
	}
}

func TestReceive(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 1)
	ch <- 7
	if got := Receive(t, ch, "a value"); got != 7 {
		t.Fatalf("got %d", got)
	}
	done := make(chan struct{})
	close(done)
	Receive(t, done, "the close")
}
