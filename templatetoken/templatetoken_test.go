package templatetoken_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testwait"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/templatetoken"
)

type minter struct {
	calls atomic.Int64
	now   func() time.Time
	life  time.Duration
	err   error
	gate  chan struct{}
	// entered, when set, gets a value (if it has room) as each mint
	// starts.
	entered chan struct{}
}

func (m *minter) CreateToken(ctx context.Context, sid, template string) (string, error) {
	n := m.calls.Add(1)
	if m.entered != nil {
		select {
		case m.entered <- struct{}{}:
		default:
		}
	}
	if m.gate != nil {
		<-m.gate
	}
	if m.err != nil {
		return "", m.err
	}
	payload := fmt.Sprintf(`{"sub":"user_1","exp":%d,"n":%d,"tpl":%q}`, m.now().Add(m.life).Unix(), n, template)
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig", nil
}

func TestCachedUntilMarginBeforeExp(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := &minter{now: clock, life: 60 * time.Second}
	s, err := templatetoken.New(templatetoken.Config{Minter: m, Template: "hasura", Now: clock, Margin: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &middleware.Claims{SessionID: "sess_1"}
	first, err := s.UpstreamToken(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(49 * time.Second)
	mu.Unlock()
	if again, _ := s.UpstreamToken(context.Background(), c); again != first || m.calls.Load() != 1 {
		t.Fatalf("re-minted within the lifetime: calls %d", m.calls.Load())
	}
	mu.Lock()
	now = now.Add(2 * time.Second) // 51 s: within the 10 s margin
	mu.Unlock()
	if again, _ := s.UpstreamToken(context.Background(), c); again == first || m.calls.Load() != 2 {
		t.Fatalf("not re-minted within the margin: calls %d", m.calls.Load())
	}
	// Another session gets its own token.
	if _, err := s.UpstreamToken(context.Background(), &middleware.Claims{SessionID: "sess_2"}); err != nil || m.calls.Load() != 3 {
		t.Fatalf("second session: %v, calls %d", err, m.calls.Load())
	}
	s.Forget("sess_2")
	_, _ = s.UpstreamToken(context.Background(), &middleware.Claims{SessionID: "sess_2"})
	if m.calls.Load() != 4 {
		t.Fatalf("Forget did not drop the token: calls %d", m.calls.Load())
	}
}

func TestOneMintPerSessionUnderConcurrency(t *testing.T) {
	t.Parallel()
	m := &minter{now: time.Now, life: time.Minute, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s, _ := templatetoken.New(templatetoken.Config{Minter: m, Template: "t"})
	var wg sync.WaitGroup
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpstreamToken(context.Background(), &middleware.Claims{SessionID: "sess_c"}); err != nil {
				t.Error(err)
			}
		}()
	}
	testwait.Receive(t, m.entered, "the first mint")
	close(m.gate)
	wg.Wait()
	if n := m.calls.Load(); n != 1 {
		t.Fatalf("mints = %d, want 1", n)
	}
}

func TestMintErrorIsReturnedAndNotCached(t *testing.T) {
	t.Parallel()
	m := &minter{now: time.Now, life: time.Minute, err: errors.New("clerk: 500")}
	s, _ := templatetoken.New(templatetoken.Config{Minter: m, Template: "t"})
	c := &middleware.Claims{SessionID: "sess_e"}
	for i := 0; i < 2; i++ {
		if _, err := s.UpstreamToken(context.Background(), c); err == nil {
			t.Fatal("no error")
		}
	}
	if m.calls.Load() != 2 {
		t.Fatalf("calls %d", m.calls.Load())
	}
	if _, err := templatetoken.New(templatetoken.Config{Template: "t"}); err == nil {
		t.Fatal("New without a Minter")
	}
}
