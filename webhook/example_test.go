package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/webhook"
)

// Refuse a session's tokens as soon as Clerk reports it revoked, without a
// Backend API call per request: the Handler verifies the Svix signature of
// Clerk's session.revoked (also session.ended and session.removed) webhook
// and puts the session on the deny list that the Gate's session checker
// consults on every request. Subscribe the endpoint to the session events
// in Clerk's dashboard and give the Verifier its signing secret
// (clerk.webhook_secret in the sessiongate binary, which serves it at
// /_sessiongate/webhooks/clerk).
func ExampleHandler() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	const secret = "whsec_c2Vzc2lvbmdhdGUgZXhhbXBsZSBzZWNyZXQ=" // from Clerk's dashboard

	// The deny list outlives every token minted before a revocation: make
	// its TTL longer than the instance's session-token lifetime.
	deny := sessioncheck.NewDenyList(time.Hour, 0, nil)
	sessions, err := sessioncheck.New(sessioncheck.Config{DenyList: deny})
	if err != nil {
		log.Fatal(err)
	}
	checker, err := sessions.Checker(sessioncheck.Off, sessioncheck.Deny, false) // the deny list only
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
	verifier, err := webhook.NewVerifier(secret, nil)
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/clerk", &webhook.Handler{
		Verifier: verifier,
		// Also drop what is cached for the session, such as its template
		// tokens (templatetoken.Source.Forget).
		Revoke: func(sid string) { deny.Deny(sid) },
	})
	mux.Handle("/", gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	sid := clerk.CreateSession("user_2alice")
	token, err := clerk.Mint(clerktest.WithSession(sid))
	if err != nil {
		log.Fatal(err)
	}
	get := func() {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
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
	deliver := func(secret string) {
		resp, err := clerk.SendWebhook(context.Background(), srv.URL+"/webhooks/clerk", secret, "session.revoked", sid)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println("webhook:", resp.StatusCode, strings.TrimSpace(string(body)))
	}

	get()
	if err := clerk.SetSessionStatus(sid, "revoked"); err != nil {
		log.Fatal(err)
	}
	deliver("whsec_Zm9yZ2VkIGJ5IHNvbWVvbmUgZWxzZQ==") // not signed with our secret: ignored
	get()
	deliver(secret) // Clerk's delivery
	get()
	// Output:
	// 200 hello user_2alice
	// webhook: 400 {"error":"bad_request","ok":false,"reason":"webhook-signature-invalid"}
	// 200 hello user_2alice
	// webhook: 200 {"ok":true}
	// 401 session-revoked
}
