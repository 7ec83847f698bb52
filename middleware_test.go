package sessiongate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// stack is the whole verification path as a user wires it: a fake Clerk
// instance, a remote JWKS source pointed at it, a Gate, and a handler that
// echoes the identity it was given.
type stack struct {
	inst   *clerktest.Instance
	keys   *jwks.Remote
	gate   *middleware.Gate
	server *httptest.Server
}

func newStack(t *testing.T, rc jwks.RemoteConfig) *stack {
	t.Helper()
	inst := clerktest.Start(t, clerktest.Options{})
	rc.URL = inst.BackendJWKSURL()
	rc.SecretKey = inst.SecretKey()
	keys, err := jwks.NewRemote(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := keys.WaitReady(ctx); err != nil {
		t.Fatalf("keys not ready: %v", err)
	}
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := middleware.ClaimsFromContext(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"user": c.Subject, "session": c.SessionID, "org": c.OrgID})
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &stack{inst: inst, keys: keys, gate: gate, server: srv}
}

type result struct {
	status int
	reason string
	user   string
}

func (s *stack) get(t *testing.T, token string, cookie bool) result {
	t.Helper()
	req, _ := http.NewRequest("GET", s.server.URL+"/api/me", nil)
	if token != "" {
		if cookie {
			req.AddCookie(&http.Cookie{Name: "__session", Value: token})
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	resp, err := s.server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK && body["reason"] != resp.Header.Get("X-Clerk-Auth-Reason") {
		t.Fatalf("body reason %q != header reason %q", body["reason"], resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	return result{status: resp.StatusCode, reason: body["reason"], user: body["user"]}
}

func TestEndToEndHappyPath(t *testing.T) {
	t.Parallel()
	s := newStack(t, jwks.RemoteConfig{})
	tok := s.inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "admin"}))
	for _, cookie := range []bool{false, true} {
		got := s.get(t, tok, cookie)
		if got.status != 200 || got.user != "user_alice" {
			t.Fatalf("cookie=%v: %+v", cookie, got)
		}
	}
}

func TestEndToEndRejections(t *testing.T) {
	t.Parallel()
	s := newStack(t, jwks.RemoteConfig{})
	foreign, err := clerktest.NewSigningKey("", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name   string
		token  string
		status int
		reason string
	}{
		{"missing", "", 401, "session-token-missing"},
		{"malformed", "a.b.c", 401, "token-invalid"},
		{"alg none", s.inst.MustMint(t, clerktest.WithAlgorithm("none")), 401, "token-invalid-algorithm"},
		{"HS256 confusion", s.inst.MustMint(t, clerktest.WithAlgorithm("HS256")), 401, "token-invalid-algorithm"},
		{"unknown kid", s.inst.MustMint(t, clerktest.WithSigningKey(foreign)), 401, "jwk-kid-mismatch"},
		{"bad signature", s.inst.MustMint(t, clerktest.WithSigningKey(&clerktest.SigningKey{ID: s.inst.SigningKey().ID, Algorithm: "RS256", Private: foreign.Private})), 401, "token-invalid-signature"},
		{"expired", s.inst.MustMint(t, clerktest.WithExpiry(now.Add(-time.Minute))), 401, "token-expired"},
		{"not active yet", s.inst.MustMint(t, clerktest.WithNotBefore(now.Add(time.Minute))), 401, "token-not-active-yet"},
		{"iat in the future", s.inst.MustMint(t, clerktest.WithClaim("iat", now.Add(time.Minute).Unix())), 401, "token-iat-in-the-future"},
		{"other issuer", s.inst.MustMint(t, clerktest.WithClaim("iss", "https://clerk.evil.example")), 401, "token-invalid-issuer"},
		{"template token", s.inst.MustMint(t, clerktest.WithTemplate("hasura")), 401, "token-type-mismatch"},
		{"machine token", s.inst.MustMint(t, clerktest.WithMachine()), 401, "token-type-mismatch"},
		{"pending", s.inst.MustMint(t, clerktest.WithPending()), 401, "session-pending"},
	}
	for _, tc := range cases {
		for _, cookie := range []bool{false, true} {
			got := s.get(t, tc.token, cookie)
			if got.status != tc.status || got.reason != tc.reason {
				t.Errorf("%s (cookie=%v): got %d %q, want %d %q", tc.name, cookie, got.status, got.reason, tc.status, tc.reason)
			}
		}
	}
}

func TestEndToEndAuthorizedPartiesAndNoParties(t *testing.T) {
	t.Parallel()
	s := newStack(t, jwks.RemoteConfig{})
	gate, err := middleware.New(middleware.Config{Issuer: s.inst.Issuer(), Keys: s.keys, AuthorizedParties: []string{"https://app.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		azp  string
		want error
	}{
		{"https://app.example.com", nil},
		{"https://evil.example.com", middleware.ErrTokenInvalidParties},
		{"", middleware.ErrTokenInvalidParties},
	} {
		_, err := gate.Verify(context.Background(), s.inst.MustMint(t, clerktest.WithAuthorizedParty(tc.azp)))
		if (err == nil) != (tc.want == nil) {
			t.Errorf("azp %q: %v", tc.azp, err)
		}
	}
}

func TestEndToEndKeyRotation(t *testing.T) {
	t.Parallel()
	// The key set's clock: the refetch floor passes when the test says so.
	clk := testclock.New(time.Now())
	s := newStack(t, jwks.RemoteConfig{MinRefreshInterval: time.Millisecond, Now: clk.Now})
	old := s.inst.SigningKey()
	oldTok := s.inst.MustMint(t, clerktest.WithUser("user_old"))
	if got := s.get(t, oldTok, false); got.status != 200 {
		t.Fatalf("before rotation: %+v", got)
	}
	if _, err := s.inst.RotateKey(); err != nil {
		t.Fatal(err)
	}
	newTok := s.inst.MustMint(t, clerktest.WithUser("user_new"))
	clk.Advance(time.Second) // past the refetch floor
	// The new kid is unknown to the cached set: one refetch picks it up.
	if got := s.get(t, newTok, false); got.status != 200 || got.user != "user_new" {
		t.Fatalf("token of the new key: %+v", got)
	}
	// The old key leaves the JWKS. Its tokens, even one already cached, are
	// refused once the key set is refreshed (the refetch for an unknown kid
	// brings the new set).
	s.inst.RemoveKey(old.ID)
	clk.Advance(time.Second) // past the refetch floor
	unknown, _ := clerktest.NewSigningKey("", "RS256")
	s.get(t, s.inst.MustMint(t, clerktest.WithSigningKey(unknown)), false) // triggers a refetch
	if got := s.get(t, oldTok, false); got.status != 401 || got.reason != "jwk-kid-mismatch" {
		t.Fatalf("token of the removed key: %+v", got)
	}
}

func TestEndToEndJWKSOutageAfterStart(t *testing.T) {
	t.Parallel()
	s := newStack(t, jwks.RemoteConfig{MinRefreshInterval: time.Millisecond})
	tok := s.inst.MustMint(t)
	for _, b := range []clerktest.Behavior{clerktest.ServerError, clerktest.Garbage, clerktest.EmptySet, clerktest.Down} {
		s.inst.SetJWKSBehavior(b)
		fresh := s.inst.MustMint(t) // a token never seen: not in the token cache
		if got := s.get(t, fresh, false); got.status != 200 {
			t.Fatalf("JWKS %v: a fresh token of a cached key: %+v", b, got)
		}
		if got := s.get(t, tok, true); got.status != 200 {
			t.Fatalf("JWKS %v: %+v", b, got)
		}
		s.inst.SetJWKSBehavior(clerktest.Normal)
	}
}

func TestEndToEndUnknownKidBurstFetchesOncePerFloor(t *testing.T) {
	t.Parallel()
	// The key source's clock is settable so the floor can pass without sleeping.
	var mu sync.Mutex
	now := time.Now()
	clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newStack(t, jwks.RemoteConfig{MinRefreshInterval: 10 * time.Second, Now: clk})

	// 1,000 tokens, each with a random unknown kid and good claims (the only
	// kind that may cause a fetch).
	key, err := clerktest.NewSigningKey("", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = s.inst.MustMint(t, clerktest.WithSigningKey(key), clerktest.WithHeader("kid", fmt.Sprintf("ins_%016x", rand.Uint64())))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	defer client.CloseIdleConnections()
	burst := func() {
		t.Helper()
		var wg sync.WaitGroup
		statuses := make([]int, len(tokens))
		reasons := make([]string, len(tokens))
		for i := range tokens {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req, _ := http.NewRequest("GET", s.server.URL+"/api/me", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				statuses[i] = resp.StatusCode
				reasons[i] = resp.Header.Get("X-Clerk-Auth-Reason")
				resp.Body.Close()
			}(i)
		}
		wg.Wait()
		for i := range tokens {
			if statuses[i] != 401 || reasons[i] != "jwk-kid-mismatch" {
				t.Fatalf("request %d: %d %q, want 401 jwk-kid-mismatch", i, statuses[i], reasons[i])
			}
		}
	}

	// Within the floor of the start-up fetch: no fetch at all.
	s.inst.ResetCounters()
	burst()
	if n := s.inst.JWKSRequests(); n != 0 {
		t.Fatalf("JWKS fetches within the floor of the start-up fetch = %d, want 0", n)
	}
	// Past the floor: the whole burst shares exactly one fetch.
	advance(11 * time.Second)
	burst()
	if n := s.inst.JWKSRequests(); n != 1 {
		t.Fatalf("JWKS fetches for a burst past the floor = %d, want 1", n)
	}
	// Again within the floor of that fetch: none.
	burst()
	if n := s.inst.JWKSRequests(); n != 1 {
		t.Fatalf("JWKS fetches for a second burst within the floor = %d, want still 1", n)
	}
}
