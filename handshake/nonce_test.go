package handshake_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

// A __clerk_handshake_nonce cookie costs a Backend API call only on a
// navigation (the return trip of a handshake is one). Any other request is
// decided as if the cookie were absent: no exchange, no deletion.
func TestNonceIgnoredOutsideNavigations(t *testing.T) {
	e := newEnv(t, nil)
	e.exch.fn = func(context.Context, string) ([]string, error) { return nil, errors.New("must not be called") }
	valid := e.mint(t)
	signedIn := []kv{{"__session", valid}, {"__client_uat", itoa(e.now() - 10)}}
	requests, mismatches := 0, 0
	for _, tc := range []struct {
		method string
		hdr    map[string]string
	}{
		{"POST", nav},
		{"PUT", nav},
		{"DELETE", nav},
		{"PATCH", nav},
		{"HEAD", nav},
		{"OPTIONS", nav},
		{"GET", fetchHdr},
		{"GET", map[string]string{"Sec-Fetch-Dest": "image"}},
	} {
		for _, base := range [][]kv{nil, signedIn} {
			for i := range 20 {
				nonce := kv{"__clerk_handshake_nonce", fmt.Sprintf("nonce_%s_%d", tc.method, i)}
				got := e.run(request(tc.method, "/page", tc.hdr, append(append([]kv{}, base...), nonce)...))
				want := e.run(request(tc.method, "/page", tc.hdr, base...))
				name := fmt.Sprintf("%s %v signed-in=%v", tc.method, tc.hdr, base != nil)
				requests++
				if got.Status != want.Status || got.ClerkReason != want.ClerkReason || fmt.Sprint(got.SetCookie) != fmt.Sprint(want.SetCookie) {
					if mismatches == 0 {
						t.Errorf("%s: with the nonce %v %q %q, without %v %q %q", name,
							got.Status, got.ClerkReason, got.SetCookie, want.Status, want.ClerkReason, want.SetCookie)
					}
					mismatches++
				}
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d requests decided differently because of the nonce", mismatches, requests)
	}
	if n := len(e.exch.calls()); n != 0 {
		t.Errorf("%d Backend API exchanges for %d requests that are not navigations, want 0", n, requests)
	}
}

// Navigations that arrive together with one nonce share one exchange.
func TestNonceConcurrentNavigationsShareOneExchange(t *testing.T) {
	e := newEnv(t, nil)
	directives := []string{"__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + e.mint(t) + "; Path=/"}
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		e.exch.fn = func(ctx context.Context, nonce string) ([]string, error) {
			select {
			case <-release:
				return directives, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		const n = 20
		out := make([]*handshake.Outcome, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				out[i] = e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_shared"}))
			})
		}
		// One more request joins and then goes away: it stops waiting at
		// once, and the shared exchange goes on for the others.
		ctx, cancel := context.WithCancel(context.Background())
		var gone *handshake.Outcome
		wg.Go(func() {
			r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_shared"})
			gone = e.run(r.WithContext(ctx))
		})
		// Every request is waiting (on the exchange or on each other).
		synctest.Wait()
		cancel()
		synctest.Wait()
		if gone == nil {
			t.Fatal("a request whose context ended is still waiting for the exchange")
		}
		wantSignedOut(t, gone, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
		close(release)
		wg.Wait()
		for i, o := range out {
			if o.Status != handshake.SignedIn {
				t.Errorf("request %d: %v (%v)", i, o.Status, o.Err)
			}
		}
	})
	if got := e.exch.calls(); len(got) != 1 {
		t.Errorf("%d exchanges for 20 concurrent navigations with one nonce, want 1", len(got))
	}
}

// A nonce whose exchange failed is not exchanged again for a while.
func TestNonceFailureCachedBriefly(t *testing.T) {
	e := newEnv(t, nil)
	e.exch.fn = func(context.Context, string) ([]string, error) { return nil, errors.New("invalid_nonce") }
	for range 20 {
		o := e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_bad"}))
		wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenMissing)
		if len(o.SetCookie) == 0 {
			t.Fatal("the failed nonce is not deleted")
		}
	}
	if n := len(e.exch.calls()); n != 1 {
		t.Errorf("%d exchanges of one failing nonce, want 1", n)
	}
	// Other nonces are not affected.
	e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_other"}))
	if n := len(e.exch.calls()); n != 2 {
		t.Errorf("%d exchanges after another nonce, want 2", n)
	}
	// Just before the TTL ends the failure still holds; after it, one more
	// exchange.
	e.clk.Advance(handshake.DefaultNonceFailureTTL - time.Millisecond)
	e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_bad"}))
	if n := len(e.exch.calls()); n != 2 {
		t.Errorf("%d exchanges just before the TTL, want 2", n)
	}
	e.clk.Advance(time.Millisecond)
	for range 5 {
		e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "nonce_bad"}))
	}
	if n := len(e.exch.calls()); n != 3 {
		t.Errorf("%d exchanges after the TTL, want 3", n)
	}
	if st := e.hs.NonceStats(); st.Exchanges != 3 || st.ExchangeFailures != 3 || st.CachedFailures != 19+1+4 {
		t.Errorf("stats %+v", st)
	}
}

// A flood of distinct nonces from distinct clients costs at most the
// process's budget of Backend API calls; the rest are refused without a
// call, and their cookies kept for a retry.
func TestNonceExchangesRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	// A token that outlives the clock's jumps below.
	tok := e.mint(t, clerktest.WithLifetime(3*time.Hour))
	directives := []string{"__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + tok + "; Path=/"}
	e.exch.fn = func(context.Context, string) ([]string, error) { return directives, nil }
	flood := func(from, count int) {
		t.Helper()
		for i := from; i < from+count; i++ {
			r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("nonce_%d", i)})
			r.RemoteAddr = fmt.Sprintf("198.51.%d.%d:40000", i/250, i%250+1)
			o := e.run(r)
			if o.Status == handshake.SignedIn {
				continue
			}
			wantRateLimited(t, o)
		}
	}
	flood(0, 200)
	if n := len(e.exch.calls()); n != handshake.DefaultNonceBurst {
		t.Errorf("%d exchanges for 200 distinct nonces at one instant, want the burst %d", n, handshake.DefaultNonceBurst)
	}
	if e.logs.FilterMessageSnippet("over their rate limit").Len() != 1 {
		t.Errorf("the limit was logged %d times, want once", e.logs.FilterMessageSnippet("over their rate limit").Len())
	}
	// One second refills DefaultNonceRate exchanges.
	e.clk.Advance(time.Second)
	flood(200, 200)
	if n := len(e.exch.calls()); n != handshake.DefaultNonceBurst+handshake.DefaultNonceRate {
		t.Errorf("%d exchanges a second later, want %d", n, handshake.DefaultNonceBurst+handshake.DefaultNonceRate)
	}
	// A long quiet spell refills no more than the burst.
	e.clk.Advance(time.Hour)
	flood(400, 200)
	if n := len(e.exch.calls()); n != 2*handshake.DefaultNonceBurst+handshake.DefaultNonceRate {
		t.Errorf("%d exchanges an hour later, want %d", n, 2*handshake.DefaultNonceBurst+handshake.DefaultNonceRate)
	}
	if st := e.hs.NonceStats(); st.RateLimited != 600-uint64(len(e.exch.calls())) {
		t.Errorf("stats %+v", st)
	}
	// A nonce far longer than Clerk's is refused without a call.
	e.clk.Advance(time.Hour)
	before := len(e.exch.calls())
	e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", strings.Repeat("n", 4000)}))
	if len(e.exch.calls()) != before {
		t.Error("a 4000-byte nonce was exchanged")
	}
}

// The limits are configurable and validated.
func TestNonceLimitsConfig(t *testing.T) {
	e := newEnv(t, func(c *handshake.Config) { c.NonceRate, c.NonceBurst = 0.5, 2 })
	e.exch.fn = func(context.Context, string) ([]string, error) { return nil, errors.New("invalid_nonce") }
	for i := range 10 {
		e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("n%d", i)}))
	}
	if n := len(e.exch.calls()); n != 2 {
		t.Errorf("%d exchanges with burst 2, want 2", n)
	}
	e.clk.Advance(time.Second)
	for i := range 10 {
		e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("m%d", i)}))
	}
	if n := len(e.exch.calls()); n != 2 {
		t.Errorf("%d exchanges after 1 s at 0.5/s, want 2", n)
	}
	e.clk.Advance(time.Second)
	e.run(request("GET", "/", nav, kv{"__clerk_handshake_nonce", "late"}))
	if n := len(e.exch.calls()); n != 3 {
		t.Errorf("%d exchanges after 2 s at 0.5/s, want 3", n)
	}
	for name, mutate := range map[string]func(*handshake.Config){
		"negative rate":  func(c *handshake.Config) { c.NonceRate = -1 },
		"negative burst": func(c *handshake.Config) { c.NonceBurst = -1 },
		"negative ttl":   func(c *handshake.Config) { c.NonceFailureTTL = -time.Second },
	} {
		cfg := handshake.Config{Gate: e.gate, FrontendAPI: fapiHost, CookieSuffix: suffix, Production: true}
		mutate(&cfg)
		if _, err := handshake.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// The Frontend API's handshake tokens carry no registered claim at all: the
// payload is exactly {"handshake": [...]} (decoded from real __clerk_handshake
// values). Such a token is accepted; an exp or nbf, when present, is
// enforced.
func TestHandshakeTokenInClerksFormat(t *testing.T) {
	e := newEnv(t, nil)
	k, _ := keys(t)
	directives := []string{"__session=" + e.mint(t) + "; Path=/", "__client_uat=1; Path=/"}
	for name, extra := range map[string]map[string]any{
		"no claims but handshake": nil,
		"exp null":                {"exp": nil},
		"exp ahead":               {"exp": e.now() + 60},
	} {
		t.Run(name, func(t *testing.T) {
			tok := handshakeJWT(t, k, nil, "", directives, extra)
			wantSignedIn(t, e.run(request("GET", "/", nav, kv{"__clerk_handshake", tok})), "user_1")
		})
	}
	for name, extra := range map[string]map[string]any{
		"exp past":  {"exp": e.now() - 60},
		"nbf ahead": {"nbf": e.now() + 60},
	} {
		t.Run(name, func(t *testing.T) {
			tok := handshakeJWT(t, k, nil, "", directives, extra)
			o := e.run(request("GET", "/", nav, kv{"__clerk_handshake", tok}))
			wantSignedOut(t, o, middleware.ReasonSessionTokenMissing, handshake.ReasonSessionTokenAndUATMissing)
		})
	}
}

// wantRateLimited checks the outcome of a nonce the rate limit kept from
// being exchanged: 503 session-status-unavailable (the browser may retry),
// not stored, and no cookie deleted: the nonce is still good at Clerk.
func wantRateLimited(t *testing.T, o *handshake.Outcome) {
	t.Helper()
	wantSignedOut(t, o, middleware.ReasonSessionStatusUnavailable, "")
	if st, _, _ := middleware.Outcome(o.Err); st != http.StatusServiceUnavailable {
		t.Errorf("a rate-limited nonce is answered %d, want 503", st)
	}
	if len(o.SetCookie) != 0 {
		t.Fatalf("a rate-limited nonce sets cookies %q: the browser could not retry it", o.SetCookie)
	}
	if !o.NoStore {
		t.Error("a rate-limited answer may be stored")
	}
}

// One client sending forged navigations with random nonces (a
// Sec-Fetch-Dest header costs nothing) spends its own budget and the
// process's spare exchanges, never the reserve that other clients'
// returning handshakes draw on: every genuine return from another address
// is exchanged, during the flood and after it.
func TestNonceFloodFromOneClientDoesNotStopOthers(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint(t, clerktest.WithLifetime(3*time.Hour))
	directives := []string{"__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + tok + "; Path=/"}
	e.exch.fn = func(_ context.Context, nonce string) ([]string, error) {
		if strings.HasPrefix(nonce, "genuine_") {
			return directives, nil
		}
		return nil, errors.New("invalid_nonce")
	}
	// 20 forged navigations a second for a minute, four times the
	// process's rate, and a genuine return from a new address every 3 s.
	const perSecond, seconds = 20, 60
	genuine := 0
	for i := range perSecond * seconds {
		r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("forged_%d", i)})
		r.RemoteAddr = "203.0.113.66:40000"
		e.run(r)
		if i%(3*perSecond) == 3*perSecond-1 {
			genuine++
			g := request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("genuine_%d", genuine)})
			g.RemoteAddr = fmt.Sprintf("198.51.100.%d:50000", genuine)
			if o := e.run(g); o.Status != handshake.SignedIn {
				t.Fatalf("after %d forged navigations in %.1f s, a genuine return from another address: %v (%v)",
					i+1, float64(i+1)/perSecond, o.Status, o.Err)
			}
		}
		e.clk.Advance(time.Second / perSecond)
	}
	// The process's cap still holds over everything.
	if n := len(e.exch.calls()); n > handshake.DefaultNonceBurst+handshake.DefaultNonceRate*seconds {
		t.Errorf("%d exchanges in %d s, over the process's budget", n, seconds)
	}
	if st := e.hs.NonceStats(); st.RateLimited == 0 {
		t.Errorf("the flood was not rate-limited: %+v", st)
	}
}

// A nonce the rate limit kept from being exchanged is still good at Clerk:
// its cookie (and a handshake cookie beside it) is kept, the answer says to
// retry, and the retry is exchanged once there is budget again.
func TestRateLimitedNonceIsKeptForARetry(t *testing.T) {
	tok := func(e *env) string { return e.mint(t, clerktest.WithLifetime(3*time.Hour)) }
	for _, tc := range []struct {
		name   string
		mutate func(*handshake.Config)
		// spend uses up the budget the last request needs.
		spend func(e *env)
		// client is the address of the request that is refused.
		client string
		wait   time.Duration
	}{
		{
			name:   "the process's budget is spent",
			mutate: func(c *handshake.Config) { c.NonceBurst, c.NonceRate = 1, 0.01 },
			spend: func(e *env) {
				r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", "spent"})
				r.RemoteAddr = "198.51.100.1:40000"
				e.run(r)
			},
			client: "198.51.100.2:40000",
			wait:   100 * time.Second,
		},
		{
			name: "the client's budget and the process's spare are spent",
			spend: func(e *env) {
				for i := range 50 {
					r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("spent_%d", i)})
					r.RemoteAddr = "203.0.113.66:40000"
					e.run(r)
				}
			},
			client: "203.0.113.66:40001",
			wait:   time.Minute,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mutate)
			directives := []string{"__client_uat=" + itoa(e.now()) + "; Path=/", "__session=" + tok(e) + "; Path=/"}
			e.exch.fn = func(_ context.Context, nonce string) ([]string, error) {
				if nonce == "kept" {
					return directives, nil
				}
				return nil, errors.New("invalid_nonce")
			}
			tc.spend(e)
			before := len(e.exch.calls())
			k, _ := keys(t)
			hsTok := handshakeJWT(t, k, nil, "", directives, nil)
			r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", "kept"}, kv{"__clerk_handshake", hsTok})
			r.RemoteAddr = tc.client
			wantRateLimited(t, e.run(r))
			if n := len(e.exch.calls()); n != before {
				t.Fatalf("%d exchanges for a refused nonce", n-before)
			}
			if st := e.hs.NonceStats(); st.RateLimited == 0 {
				t.Errorf("not counted: %+v", st)
			}
			// The browser retries with the same cookie once there is budget.
			e.clk.Advance(tc.wait)
			o := e.run(r)
			wantSignedIn(t, o, "user_1")
			if n := len(e.exch.calls()); n != before+1 {
				t.Errorf("%d exchanges for the retry, want 1", n-before)
			}
		})
	}
}

// Config.ClientKey tells clients apart: requests it puts under one key
// share one budget, whatever their peer address.
func TestNonceClientKey(t *testing.T) {
	e := newEnv(t, func(c *handshake.Config) {
		c.ClientKey = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
	})
	e.exch.fn = func(context.Context, string) ([]string, error) { return nil, errors.New("invalid_nonce") }
	send := func(client string, i int) *handshake.Outcome {
		r := request("GET", "/", nav, kv{"__clerk_handshake_nonce", fmt.Sprintf("%s_%d", client, i)})
		r.RemoteAddr = fmt.Sprintf("198.51.100.%d:40000", i%250+1)
		r.Header.Set("X-Test-Client", client)
		return e.run(r)
	}
	for i := range 50 {
		send("mallory", i)
	}
	// Its own budget, then the process's spare down to the reserve.
	want := handshake.DefaultNonceBurst - handshake.DefaultNonceBurst/2
	if n := len(e.exch.calls()); n != want {
		t.Errorf("%d exchanges for one key from 50 addresses, want %d", n, want)
	}
	if st := e.hs.NonceStats(); st.RateLimitedClient != 50-uint64(want) || st.RateLimited != st.RateLimitedClient {
		t.Errorf("stats %+v", st)
	}
	// Another key still has its own.
	for i := range handshake.DefaultNonceClientBurst {
		if o := send("alice", i); o.Err == nil || o.Err.Reason != middleware.ReasonSessionTokenMissing {
			t.Fatalf("alice's nonce %d: %v, want exchanged (and failed)", i, o.Err)
		}
	}
}
