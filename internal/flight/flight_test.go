package flight_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/flight"
)

// The caller that starts a shared call going away neither cancels the call
// nor changes what the other callers get.
func TestFirstCallerCancellationDoesNotFailTheOthers(t *testing.T) {
	t.Parallel()
	var g flight.Group[string]
	started, release := make(chan struct{}), make(chan struct{})
	calls := 0
	fn := func(ctx context.Context) (string, error) {
		calls++
		close(started)
		select {
		case <-release:
			return "active", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := g.Do(firstCtx, "sess_a", time.Minute, fn)
		first <- err
	}()
	<-started
	second := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, err := g.Do(context.Background(), "sess_a", time.Minute, func(context.Context) (string, error) {
			return "", errors.New("a second call was made")
		})
		if err != nil {
			v = err.Error()
		}
		second <- v
	}()
	cancelFirst()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	// The second caller either joined the call or (if it arrived after the
	// call ended) made its own; it must never see the first one's
	// cancellation.
	if v := <-second; v != "active" && v != "a second call was made" {
		t.Fatalf("the other caller got %q", v)
	}
	if calls != 1 {
		t.Fatalf("calls = %d", calls)
	}
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
