package machine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/machine"
	"github.com/sessiongate/sessiongate/middleware"
)

type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)) }

type env struct {
	inst *clerktest.Instance
	clk  *clock
	v    *machine.Verifier
}

func newEnv(t *testing.T, mutate func(*machine.Config)) *env {
	t.Helper()
	clk := newClock()
	inst := clerktest.Start(t, clerktest.Options{Now: clk.Now})
	api, err := clerkapi.New(clerkapi.Config{SecretKey: inst.SecretKey(), APIURL: inst.APIURL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := machine.Config{API: api, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := machine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{inst: inst, clk: clk, v: v}
}

func reasonOf(err error) middleware.Reason {
	if err == nil {
		return ""
	}
	_, r, _ := middleware.Outcome(err)
	return r
}

// Each kind of opaque credential: valid, revoked, expired, unknown, and
// Clerk failing (down, 429, 500, our key refused) answer with their reasons.
func TestVerifyEachKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *machine.Config) { c.NegativeTTL = time.Nanosecond; c.TTL = time.Nanosecond })
	mch := e.inst.CreateMachine("worker")
	type cred struct{ id, secret string }
	mk := map[middleware.TokenType]func(expiresIn time.Duration) cred{
		middleware.APIKey: func(d time.Duration) cred {
			id, s := e.inst.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"read"}, ExpiresIn: d})
			return cred{id, s}
		},
		middleware.M2MToken: func(d time.Duration) cred {
			id, s, err := e.inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{Scopes: []string{mch.ID}, ExpiresIn: d})
			if err != nil {
				t.Fatal(err)
			}
			return cred{id, s}
		},
		middleware.OAuthToken: func(d time.Duration) cred {
			id, s, err := e.inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{ClientID: "client_1", Scopes: []string{"email"}, ExpiresIn: d})
			if err != nil {
				t.Fatal(err)
			}
			return cred{id, s}
		},
	}
	prefix := map[middleware.TokenType]string{middleware.APIKey: "ak_", middleware.M2MToken: "mt_", middleware.OAuthToken: "oat_"}
	for kind, create := range mk {
		t.Run(string(kind), func(t *testing.T) {
			valid := create(0)
			m, err := e.v.VerifyMachine(context.Background(), kind, valid.secret, "c1")
			if err != nil || m.ID != valid.id || m.Type != kind || m.Subject == "" {
				t.Fatalf("valid: %+v %v", m, err)
			}
			revoked := create(0)
			if err := e.inst.RevokeMachineCredential(revoked.id, "leaked"); err != nil {
				t.Fatal(err)
			}
			expired := create(time.Minute)
			e.inst.ExpireMachineCredential(expired.id)
			for _, tc := range []struct {
				name   string
				secret string
				want   middleware.Reason
			}{
				{"revoked", revoked.secret, middleware.ReasonMachineTokenRevoked},
				{"expired", expired.secret, middleware.ReasonMachineTokenExpired},
				{"unknown", prefix[kind] + "madeup", middleware.ReasonMachineTokenInvalid},
			} {
				if _, err := e.v.VerifyMachine(context.Background(), kind, tc.secret, "c1"); reasonOf(err) != tc.want {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
				}
			}
			for _, b := range []clerktest.Behavior{clerktest.ServerError, clerktest.RateLimited, clerktest.Reset} {
				e.clk.Advance(time.Second) // past the TTL: ask Clerk again
				e.inst.SetAPIBehavior(b)
				_, err := e.v.VerifyMachine(context.Background(), kind, valid.secret, "c1")
				e.inst.SetAPIBehavior(clerktest.Normal)
				if reasonOf(err) != middleware.ReasonMachineUnavailable {
					t.Errorf("Clerk %v: %v, want unavailable", b, err)
				}
			}
		})
	}
}

// A Backend API key Clerk refuses is sessiongate's problem, not the
// client's: 503, never "invalid".
func TestWrongSecretKeyIsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	api, _ := clerkapi.New(clerkapi.Config{SecretKey: "sk_test_wrong", APIURL: e.inst.APIURL(), MaxRetries: -1})
	v, _ := machine.New(machine.Config{API: api})
	_, secret := e.inst.CreateAPIKey(clerktest.APIKeyOptions{})
	if _, err := v.VerifyMachine(context.Background(), middleware.APIKey, secret, "c"); reasonOf(err) != middleware.ReasonMachineUnavailable {
		t.Fatalf("%v, want unavailable", err)
	}
}

// Accepted results are cached for TTL, never past the credential's
// expiration; rejected ones for NegativeTTL; only the same secret hits.
func TestCacheBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *machine.Config) { c.TTL = 10 * time.Second; c.NegativeTTL = 5 * time.Second })
	id, secret := e.inst.CreateAPIKey(clerktest.APIKeyOptions{ExpiresIn: 3 * time.Second})
	calls := func() int { return e.inst.Requests(clerktest.APIKeysVerifyPath) }
	for i := 0; i < 3; i++ {
		if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, secret, "c"); err != nil {
			t.Fatal(err)
		}
	}
	if calls() != 1 {
		t.Fatalf("%d calls for one key, want 1", calls())
	}
	// A revocation is seen after the TTL... but this key expires first.
	_ = e.inst.RevokeMachineCredential(id, "x")
	e.clk.Advance(3 * time.Second)
	if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, secret, "c"); reasonOf(err) == "" {
		t.Fatal("an expired key was served from the cache")
	}
	// Another secret differing in one character misses.
	if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, secret[:len(secret)-1]+"x", "c"); reasonOf(err) != middleware.ReasonMachineTokenInvalid {
		t.Fatalf("a near miss: %v", err)
	}
	before := calls()
	for i := 0; i < 5; i++ {
		e.v.VerifyMachine(context.Background(), middleware.APIKey, secret[:len(secret)-1]+"x", "c")
	}
	if calls() != before {
		t.Errorf("a rejected secret cost %d more calls within NegativeTTL", calls()-before)
	}
	e.clk.Advance(6 * time.Second)
	e.v.VerifyMachine(context.Background(), middleware.APIKey, secret[:len(secret)-1]+"x", "c")
	if calls() != before+1 {
		t.Errorf("after NegativeTTL: %d calls, want 1", calls()-before)
	}
}

// A flood of made-up API keys from one address costs Clerk at most that
// address's budget of calls; a cached valid key keeps working meanwhile,
// and another address keeps its own budget.
func TestFloodOfUnknownKeysIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *machine.Config) { c.MissRate = 1; c.MissBurst = 5 })
	_, good := e.inst.CreateAPIKey(clerktest.APIKeyOptions{})
	if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, good, "1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	base := e.inst.Requests(clerktest.APIKeysVerifyPath)
	var wg sync.WaitGroup
	var limited, goodOK atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			_, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, fmt.Sprintf("ak_flood%d", i), "6.6.6.6")
			if reasonOf(err) == middleware.ReasonMachineRateLimited {
				limited.Add(1)
			}
		}(i)
		go func() {
			defer wg.Done()
			if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, good, "6.6.6.6"); err == nil {
				goodOK.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := e.inst.Requests(clerktest.APIKeysVerifyPath) - base; n > 5 {
		t.Errorf("200 made-up keys cost %d Backend API calls, want at most the burst of 5", n)
	}
	if limited.Load() < 195 {
		t.Errorf("%d of 200 rate-limited, want at least 195", limited.Load())
	}
	if goodOK.Load() != 200 {
		t.Errorf("the cached key answered %d of 200 during the flood", goodOK.Load())
	}
	_, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, "ak_other_client", "7.7.7.7")
	if reasonOf(err) != middleware.ReasonMachineTokenInvalid {
		t.Errorf("another address: %v, want its own budget (invalid)", err)
	}
	var me *middleware.Error
	_, err = e.v.VerifyMachine(context.Background(), middleware.APIKey, "ak_more", "6.6.6.6")
	if !errors.As(err, &me) || me.RetryAfter <= 0 {
		t.Errorf("rate-limited answer without Retry-After: %v", err)
	}
}

// Concurrent requests with one credential share one call.
func TestConcurrentVerificationsShareOneCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, secret := e.inst.CreateAPIKey(clerktest.APIKeyOptions{})
	e.inst.SetDelay(100 * time.Millisecond)
	e.inst.SetAPIBehavior(clerktest.Slow)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.v.VerifyMachine(context.Background(), middleware.APIKey, secret, fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.inst.Requests(clerktest.APIKeysVerifyPath); n != 1 {
		t.Errorf("%d calls for 20 concurrent verifications of one key, want 1", n)
	}
}

// A machine secret key verifies only M2M tokens granted to its machine.
func TestM2MWithMachineSecretKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a, b := e.inst.CreateMachine("a"), e.inst.CreateMachine("b")
	m2m, err := clerkapi.New(clerkapi.Config{SecretKey: a.SecretKey, APIURL: e.inst.APIURL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := clerkapi.New(clerkapi.Config{SecretKey: e.inst.SecretKey(), APIURL: e.inst.APIURL(), MaxRetries: -1})
	v, _ := machine.New(machine.Config{API: api, M2MAPI: m2m})
	_, toA, _ := e.inst.CreateM2MToken(b.ID, clerktest.M2MTokenOptions{Scopes: []string{a.ID}})
	_, toB, _ := e.inst.CreateM2MToken(a.ID, clerktest.M2MTokenOptions{Scopes: []string{b.ID}})
	if m, err := v.VerifyMachine(context.Background(), middleware.M2MToken, toA, "c"); err != nil || m.MachineID() != b.ID {
		t.Errorf("token for machine a: %+v %v", m, err)
	}
	if _, err := v.VerifyMachine(context.Background(), middleware.M2MToken, toB, "c"); reasonOf(err) != middleware.ReasonMachineTokenInvalid {
		t.Errorf("token for machine b with a's key: %v, want invalid", err)
	}
}

// A cached credential costs no allocation: the HMAC that keys the cache
// writes and sums into buffers pooled with it. (Not parallel:
// AllocsPerRun.)
func TestCachedVerificationDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	e := newEnv(t, func(c *machine.Config) { c.TTL = time.Hour })
	_, secret := e.inst.CreateAPIKey(clerktest.APIKeyOptions{})
	ctx := context.Background()
	if _, err := e.v.VerifyMachine(ctx, middleware.APIKey, secret, "c"); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := e.v.VerifyMachine(ctx, middleware.APIKey, secret, "c"); err != nil {
			t.Fatal(err)
		}
	}); allocs > 0 {
		t.Errorf("%v allocations per cached verification, want 0", allocs)
	}
	if n := e.inst.Requests(clerktest.APIKeysVerifyPath); n != 1 {
		t.Errorf("%d Backend API calls, want 1", n)
	}
}
