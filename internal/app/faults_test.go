package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// Fault injection on loopback. Each test states the behaviour it expects
// and bounds every request it makes: nothing may block longer than twice
// the timeout that governs it plus one second.

// clerkTimeout is the HTTP client timeout the fault tests give the app for
// Clerk (JWKS and Backend API).
const clerkTimeout = 500 * time.Millisecond

func clerkClient() *http.Client { return &http.Client{Timeout: clerkTimeout} }

// bound fails the test when d exceeds 4×limit + 4 s. The bound is loose on
// purpose: these tests prove that nothing waits for the fault itself (the
// faults last 30 s or forever), not how fast a loaded CI machine is — a
// 2×limit + 1 s bound failed under the full parallel suite with fuzzers
// running, while each test alone stays within it.
func bound(t *testing.T, what string, d, limit time.Duration) {
	t.Helper()
	if d > 4*limit+4*time.Second {
		t.Errorf("%s took %s, more than 4×%s + 4s", what, d, limit)
	}
}

// timed runs one request and checks its duration against limit.
func (h *hzApp) timed(t *testing.T, what, path, token string, limit time.Duration) hzResult {
	t.Helper()
	start := time.Now()
	r := h.do(t, nil, "GET", path, token)
	bound(t, what, time.Since(start), limit)
	return r
}

func want503(t *testing.T, what string, r hzResult, reason string) {
	t.Helper()
	if r.Err != nil || r.Status != 503 || r.reason() != reason {
		t.Fatalf("%s: %d %q (%v), want 503 %s", what, r.Status, r.reason(), r.Err, reason)
	}
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
}

// jwksFault is one way the JWKS endpoint can fail.
type jwksFault struct {
	name  string
	apply func(*clerktest.Instance)
}

var jwksFaults = []jwksFault{
	{"down", func(i *clerktest.Instance) { i.SetJWKSBehavior(clerktest.Down) }},
	{"slow beyond the client timeout", func(i *clerktest.Instance) {
		i.SetDelay(30 * time.Second)
		i.SetJWKSBehavior(clerktest.Slow)
	}},
	{"server error", func(i *clerktest.Instance) { i.SetJWKSBehavior(clerktest.ServerError) }},
	{"garbage", func(i *clerktest.Instance) { i.SetJWKSBehavior(clerktest.Garbage) }},
	{"empty key set", func(i *clerktest.Instance) { i.SetJWKSBehavior(clerktest.EmptySet) }},
	{"connection reset", func(i *clerktest.Instance) { i.SetJWKSBehavior(clerktest.Reset) }},
}

// TestJWKSFailingAtStartup: with no key set ever loaded the process is not
// ready (/readyz 503) and fails closed: every authenticated request is 503
// jwk-remote-failed-to-load with Retry-After, answered within the Clerk
// client timeout (a request waits at most for the fetch in flight). Public
// routes keep working. When the endpoint recovers, the retry loop loads the
// keys and the process becomes ready without a restart.
func TestJWKSFailingAtStartup(t *testing.T) {
	t.Parallel()
	for _, f := range jwksFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
			tok := inst.MustMint(t)
			h := hzStart(t, hzOptions{clerk: inst, httpClient: clerkClient(), beforeStart: f.apply,
				config: func(c *config.Config, _ *clerktest.Instance) {
					c.Routes = []config.Route{{Path: "/public", Auth: config.AuthPublic}, {Path: "/"}}
				}})
			h.waitReady(t, 503)
			for i := 0; i < 3; i++ {
				want503(t, "authenticated request", h.timed(t, "request without keys", "/x", tok, clerkTimeout), "jwk-remote-failed-to-load")
			}
			if r := h.timed(t, "public request", "/public/x", "", clerkTimeout); r.Status != 200 {
				t.Fatalf("public route without keys: %d", r.Status)
			}
			if f.name == "down" {
				if err := inst.Up(); err != nil {
					t.Fatal(err)
				}
			}
			inst.SetJWKSBehavior(clerktest.Normal)
			h.waitReady(t, 200)
			if r := h.timed(t, "request after recovery", "/x", tok, clerkTimeout); r.Status != 200 {
				t.Fatalf("after recovery: %d %q", r.Status, r.reason())
			}
		})
	}
}

// TestJWKSWithoutTheCurrentKidAtStartup: a key set that loads but lacks the
// kid tokens are signed with makes the process ready (it has keys) and
// rejects those tokens with 401 jwk-kid-mismatch: a missing kid is an
// answer, not an outage. Unknown kids cause at most one refetch per
// min_refresh_interval, so a flood of them costs Clerk nothing more.
func TestJWKSWithoutTheCurrentKidAtStartup(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	other, err := clerktest.NewSigningKey("ins_other_published", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	h := hzStart(t, hzOptions{clerk: inst, httpClient: clerkClient(), beforeStart: func(i *clerktest.Instance) {
		i.PublishKey(other)
		i.RemoveKey(signingKey(t).ID) // Mint keeps signing with it
	}, config: func(c *config.Config, _ *clerktest.Instance) {
		c.JWKS.MinRefreshInterval = config.Duration(time.Hour)
	}})
	h.waitReady(t, 200)
	before := inst.JWKSRequests()
	for i := 0; i < 20; i++ {
		r := h.timed(t, "unknown kid", "/x", inst.MustMint(t), clerkTimeout)
		if r.Status != 401 || r.reason() != "jwk-kid-mismatch" {
			t.Fatalf("token of an unpublished kid: %d %q", r.Status, r.reason())
		}
	}
	if n := inst.JWKSRequests() - before; n > 1 {
		t.Fatalf("20 unknown-kid requests caused %d JWKS fetches, want at most 1", n)
	}
	if r := h.timed(t, "published kid", "/x", inst.MustMint(t, clerktest.WithSigningKey(other)), clerkTimeout); r.Status != 200 {
		t.Fatalf("token of the published key: %d %q", r.Status, r.reason())
	}
}

// TestJWKSFailingAfterStartup: once a key set is loaded, a failing JWKS
// endpoint changes nothing for tokens of known kids: they are verified with
// the cached set (the process stays ready until max_stale). A token with an
// unknown kid triggers a refetch that fails: 401 jwk-kid-mismatch, within
// the client timeout. An empty set or garbage never replaces the good set.
func TestJWKSFailingAfterStartup(t *testing.T) {
	t.Parallel()
	foreign, err := clerktest.NewSigningKey("ins_never_published", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range jwksFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{} // the gate's: moved past min_refresh_interval by the test
			h := hzStart(t, hzOptions{httpClient: clerkClient(), now: clk.Now})
			h.waitReady(t, 200)
			if r := h.timed(t, "before the fault", "/x", h.inst.MustMint(t), clerkTimeout); r.Status != 200 {
				t.Fatalf("before the fault: %d", r.Status)
			}
			f.apply(h.inst)
			for i := 0; i < 3; i++ {
				r := h.timed(t, "unknown kid during the fault", "/x", h.inst.MustMint(t, clerktest.WithSigningKey(foreign)), clerkTimeout)
				if r.Status != 401 || r.reason() != "jwk-kid-mismatch" {
					t.Fatalf("unknown kid during the fault: %d %q", r.Status, r.reason())
				}
				clk.Advance(time.Second) // past min_refresh_interval: each one refetches
				// A fresh token (no verified-token cache hit) of the known kid.
				if r := h.timed(t, "known kid during the fault", "/x", h.inst.MustMint(t), clerkTimeout); r.Status != 200 {
					t.Fatalf("known kid during the fault: %d %q", r.Status, r.reason())
				}
			}
			resp, err := http.Get(h.adminURL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("readyz during the fault: %d", resp.StatusCode)
			}
		})
	}
}

// TestJWKSRotationAfterStartup: a successful fetch is the truth. When Clerk
// stops publishing the current kid (rotation), the next refetch retires it
// and its tokens, even ones verified and cached before, become 401
// jwk-kid-mismatch.
func TestJWKSRotationAfterStartup(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	h := hzStart(t, hzOptions{clerk: inst, httpClient: clerkClient()})
	h.waitReady(t, 200)
	old := inst.MustMint(t)
	if r := h.timed(t, "old key", "/x", old, clerkTimeout); r.Status != 200 {
		t.Fatalf("before rotation: %d", r.Status)
	}
	newKey, err := inst.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	inst.RemoveKey(signingKey(t).ID)
	// The first token of the new kid is unknown: one refetch loads the new set.
	if r := h.timed(t, "new key", "/x", inst.MustMint(t, clerktest.WithSigningKey(newKey)), clerkTimeout); r.Status != 200 {
		t.Fatalf("new key after rotation: %d %q", r.Status, r.reason())
	}
	if r := h.timed(t, "old token", "/x", old, clerkTimeout); r.Status != 401 || r.reason() != "jwk-kid-mismatch" {
		t.Fatalf("cached token of the retired key: %d %q", r.Status, r.reason())
	}
}

// apiFault is one way the Backend API can fail.
type apiFault struct {
	name  string
	apply func(*clerktest.Instance)
}

var apiFaults = []apiFault{
	{"429 with Retry-After", func(i *clerktest.Instance) {
		i.SetRetryAfter(10 * time.Second) // longer than the lookup bound: no retry wait
		i.SetAPIBehavior(clerktest.RateLimited)
	}},
	{"429 with a short Retry-After", func(i *clerktest.Instance) {
		i.SetRetryAfter(time.Second)
		i.SetAPIBehavior(clerktest.RateLimited)
	}},
	{"500", func(i *clerktest.Instance) { i.SetAPIBehavior(clerktest.ServerError) }},
	{"garbage", func(i *clerktest.Instance) { i.SetAPIBehavior(clerktest.Garbage) }},
	{"timeout", func(i *clerktest.Instance) {
		i.SetDelay(30 * time.Second)
		i.SetAPIBehavior(clerktest.Slow)
	}},
	{"connection reset", func(i *clerktest.Instance) { i.SetAPIBehavior(clerktest.Reset) }},
	{"down", func(i *clerktest.Instance) { i.Down() }},
}

// apiRoutes: one route per session_check mode and on_session_check_error.
func apiRoutes(c *config.Config, _ *clerktest.Instance) {
	c.Cache.SessionTTL = config.Duration(time.Minute)
	c.Routes = []config.Route{
		{Path: "/off"},
		{Path: "/cached", SessionCheck: config.SessionCheckCached},
		{Path: "/cached-allow", SessionCheck: config.SessionCheckCached, OnSessionCheckError: config.OnErrorAllow},
		{Path: "/strict", SessionCheck: config.SessionCheckStrict},
		{Path: "/strict-allow", SessionCheck: config.SessionCheckStrict, OnSessionCheckError: config.OnErrorAllow},
	}
}

// TestBackendAPIFaultsInEachMode: session_check off never calls the Backend
// API and is unaffected; cached and strict routes that fail closed (deny,
// the default) answer 503 session-status-unavailable with Retry-After; routes
// with on_session_check_error: allow trust the verified token (200). A
// lookup is bounded by the Clerk client timeout and one retry (a Retry-After
// longer than the lookup bound is not waited out), and the circuit breaker
// then answers at once.
func TestBackendAPIFaultsInEachMode(t *testing.T) {
	t.Parallel()
	// One retry after the first attempt, backoff up to 200 ms: the bound of
	// one lookup, which the Retry-After wait of a short 429 (1 s) extends.
	limit := 2*clerkTimeout + 200*time.Millisecond
	for _, f := range apiFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			h := hzStart(t, hzOptions{httpClient: clerkClient(), config: apiRoutes})
			h.waitReady(t, 200)
			sid := h.inst.CreateSession("user_faults")
			tok := h.inst.MustMint(t, clerktest.WithSession(sid))
			h.inst.ResetCounters()
			f.apply(h.inst)
			lim := limit
			if f.name == "429 with a short Retry-After" {
				lim += time.Second
			}
			for round := 0; round < 2; round++ { // the second round meets the open breaker
				for _, tc := range []struct {
					path string
					ok   bool
				}{
					{"/off", true}, {"/cached", false}, {"/cached-allow", true}, {"/strict", false}, {"/strict-allow", true},
				} {
					what := fmt.Sprintf("round %d %s", round, tc.path)
					r := h.timed(t, what, tc.path, tok, lim)
					if tc.ok {
						if r.Err != nil || r.Status != 200 {
							t.Fatalf("%s: %d %q (%v), want 200", what, r.Status, r.reason(), r.Err)
						}
						continue
					}
					want503(t, what, r, "session-status-unavailable")
				}
			}
		})
	}
}

// TestBackendAPIOffModeMakesNoCalls: session_check off is networkless.
func TestBackendAPIOffModeMakesNoCalls(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{httpClient: clerkClient(), config: apiRoutes})
	h.waitReady(t, 200)
	sid := h.inst.CreateSession("user_off")
	tok := h.inst.MustMint(t, clerktest.WithSession(sid))
	h.inst.Down()
	for i := 0; i < 5; i++ {
		if r := h.timed(t, "off", "/off", tok, clerkTimeout); r.Status != 200 {
			t.Fatalf("off with Clerk down: %d", r.Status)
		}
	}
	if err := h.inst.Up(); err != nil {
		t.Fatal(err)
	}
	if n := h.inst.Requests("/v1/sessions/" + sid); n != 0 {
		t.Fatalf("session_check off made %d Backend API calls", n)
	}
}

// TestCachedStatusOutlivesAnOutage: in cached mode a status looked up before
// the Backend API failed is served from the cache for session_ttl (200), while
// strict mode, which asks on every request, fails closed.
func TestCachedStatusOutlivesAnOutage(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{httpClient: clerkClient(), config: apiRoutes})
	h.waitReady(t, 200)
	sid := h.inst.CreateSession("user_cached")
	tok := h.inst.MustMint(t, clerktest.WithSession(sid))
	if r := h.timed(t, "warm", "/cached", tok, clerkTimeout); r.Status != 200 {
		t.Fatalf("warming the cache: %d", r.Status)
	}
	h.inst.SetAPIBehavior(clerktest.ServerError)
	if r := h.timed(t, "cached during the outage", "/cached", tok, clerkTimeout); r.Status != 200 {
		t.Fatalf("cached status during the outage: %d %q", r.Status, r.reason())
	}
	want503(t, "strict during the outage", h.timed(t, "strict during the outage", "/strict", tok, 2*clerkTimeout), "session-status-unavailable")
}

// resettingListener accepts connections and resets them (RST) at once, or
// after reading the request when readFirst is set.
func resettingListener(t *testing.T, readFirst bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if readFirst {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-")
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestUpstreamFaults: an unreachable upstream is 502, one that resets the
// connection (before or in the middle of its answer) is 502, one slower than
// server.upstream_timeout to send its headers is 504; none hangs, and the
// body never leaks the upstream's address or the error text.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	refused := "http://" + testport.Reserve(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slowSrv.Close)
	slowHeaders := slowSrv.URL
	const upstreamTimeout = 300 * time.Millisecond
	h := hzStart(t, hzOptions{config: func(c *config.Config, _ *clerktest.Instance) {
		c.Server.UpstreamTimeout = config.Duration(upstreamTimeout)
		c.Server.DialTimeout = config.Duration(upstreamTimeout)
		c.Routes = []config.Route{
			{Path: "/refused", Upstream: refused, Auth: config.AuthPublic},
			{Path: "/reset", Upstream: resettingListener(t, false), Auth: config.AuthPublic},
			{Path: "/reset-mid-answer", Upstream: resettingListener(t, true), Auth: config.AuthPublic},
			{Path: "/slow-headers", Upstream: slowHeaders, Auth: config.AuthPublic},
			{Path: "/slow-headers-auth", Upstream: slowHeaders},
		}
	}})
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t)
	for _, tc := range []struct {
		path, token string
		status      int
		code        string
	}{
		{"/refused", "", 502, "bad_gateway"},
		{"/reset", "", 502, "bad_gateway"},
		{"/reset-mid-answer", "", 502, "bad_gateway"},
		{"/slow-headers", "", 504, "gateway_timeout"},
		{"/slow-headers-auth", tok, 504, "gateway_timeout"},
	} {
		r := h.timed(t, tc.path, tc.path, tc.token, upstreamTimeout)
		if r.Err != nil || r.Status != tc.status || !strings.Contains(r.Body, `"`+tc.code+`"`) {
			t.Errorf("%s: %d %s (%v), want %d %s", tc.path, r.Status, r.Body, r.Err, tc.status, tc.code)
		}
		if strings.Contains(r.Body, "127.0.0.1") || strings.Contains(r.Body, "reset") || strings.Contains(r.Body, "dial") {
			t.Errorf("%s: the body leaks internals: %s", tc.path, r.Body)
		}
	}
}

// TestUpstreamSlowBody: server.upstream_timeout bounds the wait for response
// headers only. A body that trickles in slower than that still streams to
// the client in full (SSE, downloads); a body the upstream abandons midway
// ends the client's response with an error (no hang, no fabricated
// success), after the part that was sent.
func TestUpstreamSlowBody(t *testing.T) {
	t.Parallel()
	const upstreamTimeout = 300 * time.Millisecond
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "first;")
		http.NewResponseController(w).Flush()
		switch r.URL.Path {
		case "/trickle":
			for i := 0; i < 3; i++ {
				time.Sleep(upstreamTimeout) // a body slower than the timeout is the behaviour under test
				fmt.Fprintf(w, "part%d;", i)
				http.NewResponseController(w).Flush()
			}
		case "/abandon":
			time.Sleep(upstreamTimeout) // the upstream's pause before it abandons the body, under test
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				conn.Close()
			}
		}
	})
	h := hzStart(t, hzOptions{upstream: up, config: func(c *config.Config, _ *clerktest.Instance) {
		c.Server.UpstreamTimeout = config.Duration(upstreamTimeout)
		c.Routes = []config.Route{{Path: "/", Auth: config.AuthPublic}}
	}})
	h.waitReady(t, 200)

	start := time.Now()
	r := h.do(t, nil, "GET", "/trickle", "")
	if r.Err != nil || r.Status != 200 || r.Body != "first;part0;part1;part2;" {
		t.Fatalf("trickled body: %d %q %v", r.Status, r.Body, r.Err)
	}
	bound(t, "trickled body", time.Since(start), 3*upstreamTimeout)

	start = time.Now()
	r = h.do(t, nil, "GET", "/abandon", "")
	if r.Status != 200 || r.Err == nil || !strings.HasPrefix(r.Body, "first;") {
		t.Fatalf("abandoned body: %d %q, err %v; want the first part then an error", r.Status, r.Body, r.Err)
	}
	bound(t, "abandoned body", time.Since(start), upstreamTimeout)
}

// TestClientDisconnectDoesNotLeak (not parallel: it counts the process's
// goroutines): clients that go away while the upstream is still working get
// their upstream requests cancelled (the upstream sees its context done)
// and every goroutine they caused ends: runtime.NumGoroutine returns to the
// baseline within a few seconds.
func TestClientDisconnectDoesNotLeak(t *testing.T) {
	const clients = 25
	var entered, cancelled atomic.Int64
	allIn := make(chan struct{}) // closed when every client's request is in the upstream
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		if entered.Add(1) == clients {
			close(allIn)
		}
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(30 * time.Second):
		}
	})
	h := hzStart(t, hzOptions{upstream: up})
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if r := h.do(t, client, "GET", "/warm", tok); r.Status != 200 {
		t.Fatalf("warm-up: %d", r.Status)
	}
	baseline := testwait.SettledGoroutines()

	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", h.proxyURL+"/slow", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			go func() {
				select {
				case <-allIn:
				case <-time.After(testwait.Generous): // checked below
				}
				cancel() // the client goes away mid-request
			}()
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	testwait.Poll(testwait.Generous, func() bool { return cancelled.Load() >= clients })
	if entered.Load() != clients || cancelled.Load() != clients {
		t.Fatalf("upstream requests entered %d, cancelled %d, want %d each", entered.Load(), cancelled.Load(), clients)
	}
	client.CloseIdleConnections()
	n := testwait.GoroutinesAtMost(t, baseline+3, fmt.Sprintf("baseline %d: leak after %d client disconnects", baseline, clients))
	t.Logf("goroutines: baseline %d, after %d disconnects %d", baseline, clients, n)
}
