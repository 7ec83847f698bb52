package middleware_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// End a long-lived response (a server-sent event stream here; a WebSocket
// alike) when its session is revoked. The Watcher subscribes to the deny
// list, which every revocation reaches: the admin API, a Clerk webhook, an
// inactive status seen by a cached or strict check, and, with Redis,
// revocations made on other replicas. A WebSocket handler closes its
// connection with code 4401 and the reason as the close reason when the
// context is done with an *Error cause.
func ExampleWatcher() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()

	deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
	sessions, err := sessioncheck.New(sessioncheck.Config{DenyList: deny})
	if err != nil {
		log.Fatal(err)
	}
	checker, err := sessions.Checker(sessioncheck.Off, sessioncheck.Deny, false)
	if err != nil {
		log.Fatal(err)
	}
	gate, err := middleware.New(middleware.Config{
		Issuer:   clerk.Issuer(),
		Keys:     jwks.NewMemory(clerk.PublicKeys()...),
		Sessions: checker,
	})
	if err != nil {
		log.Fatal(err)
	}
	watcher, err := middleware.NewWatcher(middleware.WatcherConfig{
		Revocations: deny,
		Sessions:    checker,         // re-checked every Interval too
		Interval:    5 * time.Second, // connections.recheck_interval's default
	})
	if err != nil {
		log.Fatal(err)
	}
	defer watcher.Close()

	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		ctx, cancel := watcher.Watch(r.Context(), claims)
		defer cancel()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: open\n\n")
		http.NewResponseController(w).Flush()
		<-ctx.Done() // the stream's work runs on ctx
		if _, reason, _ := middleware.Outcome(context.Cause(ctx)); ctx.Err() != nil && r.Context().Err() == nil {
			fmt.Fprintf(w, "data: closed: %s\n\n", reason)
		}
	})
	srv := httptest.NewServer(gate.Require(events))
	defer srv.Close()

	sid := clerk.CreateSession("user_2alice")
	token, err := clerk.Mint(clerktest.WithSession(sid))
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Scan()
	fmt.Println(lines.Text())

	deny.Deny(sid) // what POST /sessions/{sid}/revoke or a session.revoked webhook does
	for lines.Scan() {
		if lines.Text() != "" {
			fmt.Println(lines.Text())
		}
	}
	// Output:
	// data: open
	// data: closed: session-revoked
}
