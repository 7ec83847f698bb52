package sessioncheck_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// Refuse a session that is no longer active at Clerk, although its token
// is still valid: the Gate's policy asks the Backend API for the session's
// status (GET /v1/sessions/{sid}) and keeps an active answer for TTL, so a
// revocation at Clerk takes effect within TTL at the cost of one call per
// session per TTL. Use sessioncheck.Strict to ask on every request instead.
// The route's session_check: cached in the sessiongate binary.
func ExampleService_Checker() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	api, err := clerkapi.New(clerkapi.Config{SecretKey: clerk.SecretKey(), APIURL: clerk.APIURL()})
	if err != nil {
		log.Fatal(err)
	}

	// The status cache's clock, moved forward below instead of sleeping.
	var elapsed atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(elapsed.Load())) }
	sessions, err := sessioncheck.New(sessioncheck.Config{
		Lookup:   sessioncheck.ClerkLookup(api),
		DenyList: sessioncheck.NewDenyList(time.Hour, 0, now),
		TTL:      10 * time.Second, // cache.session_ttl's default
		Now:      now,
	})
	if err != nil {
		log.Fatal(err)
	}
	cached, err := sessions.Checker(sessioncheck.Cached, sessioncheck.Deny, false)
	if err != nil {
		log.Fatal(err)
	}
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}
	policy := gate.DefaultPolicy()
	policy.Sessions = cached
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})
	srv := httptest.NewServer(gate.RequireWith(policy)(hello))
	defer srv.Close()

	sid := clerk.CreateSession("user_2alice")
	token, err := clerk.Mint(clerktest.WithSession(sid))
	if err != nil {
		log.Fatal(err)
	}
	get := func() {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Println(resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
			return
		}
		fmt.Println(resp.StatusCode, string(body))
	}

	get() // looked up: active

	// Revoked at Clerk (the dashboard, another backend, a sign-out).
	if err := clerk.SetSessionStatus(sid, "revoked"); err != nil {
		log.Fatal(err)
	}
	get() // the cached status, within TTL

	elapsed.Store(int64(11 * time.Second))
	get() // past TTL, looked up again: revoked, refused and put on the deny list
	get() // the deny list answers, without a lookup
	s := sessions.Stats()
	fmt.Println("lookups:", s.Lookups, "cache hits:", s.CacheHits, "deny list:", s.DenyListSize)
	// Output:
	// 200 hello user_2alice
	// 200 hello user_2alice
	// 401 session-revoked
	// 401 session-revoked
	// lookups: 2 cache hits: 1 deny list: 1
}
