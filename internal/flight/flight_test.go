package flight_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sessiongate/sessiongate/internal/flight"
)

// The caller that starts a shared call going away neither cancels the call
// nor changes what a caller that joined it gets: the call goes on, once, and
// its result reaches the other caller. synctest.Wait makes the order
// certain: the second caller has joined before the first is cancelled.
func TestFirstCallerCancellationDoesNotFailTheOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var g flight.Group[string]
		release := make(chan struct{})
		var calls atomic.Int32
		fn := func(ctx context.Context) (string, error) {
			calls.Add(1)
			select {
			case <-release:
				return "active", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		firstCtx, cancelFirst := context.WithCancel(context.Background())
		defer cancelFirst()
		first := make(chan error, 1)
		go func() {
			_, err := g.Do(firstCtx, "sess_a", time.Minute, fn)
			first <- err
		}()
		synctest.Wait() // the first caller's call is in flight
		type result struct {
			v   string
			err error
		}
		second := make(chan result, 1)
		go func() {
			v, err := g.Do(context.Background(), "sess_a", time.Minute, fn)
			second <- result{v, err}
		}()
		// Every goroutine is blocked, and the call has not ended: the
		// second caller is waiting for it, having joined it.
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d calls with two callers of one key in flight, want 1", n)
		}
		cancelFirst()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("the cancelled caller got %v, want context.Canceled", err)
		}
		synctest.Wait()
		select {
		case r := <-second:
			t.Fatalf("the caller that joined got (%q, %v) when the first one was cancelled; want it to wait for the call", r.v, r.err)
		default:
		}
		close(release)
		if r := <-second; r.err != nil || r.v != "active" {
			t.Fatalf("the caller that joined got (%q, %v), want the shared call's \"active\"", r.v, r.err)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
	})
}

// A caller whose context has ended starts nothing.
func TestEndedCallerStartsNothing(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.Do(ctx, "k", time.Second, func(context.Context) (int, error) {
		t.Error("fn ran for a cancelled caller")
		return 0, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// The shared call's own timeout bounds it, whoever waits.
func TestTimeoutBoundsTheCall(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	_, err := g.Do(context.Background(), "k", time.Millisecond, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
