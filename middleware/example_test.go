package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// Protect a handler with the Gate. The fake Clerk instance stands in for your
// instance: in production, Issuer is your Frontend API URL
// (https://clerk.example.com) and the JWKS URL is
// https://clerk.example.com/.well-known/jwks.json, or
// https://api.clerk.com/v1/jwks with your secret key.
func ExampleGate_Require() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()

	keys, err := jwks.NewRemote(jwks.RemoteConfig{URL: clerk.FrontendJWKSURL()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	if err := keys.WaitReady(context.Background()); err != nil {
		log.Fatal(err)
	}

	gate, err := middleware.New(middleware.Config{
		Issuer: clerk.Issuer(),
		Keys:   keys,
	})
	if err != nil {
		log.Fatal(err)
	}

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})
	srv := httptest.NewServer(gate.Require(hello))
	defer srv.Close()

	token, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	resp, err = http.Get(srv.URL) // no token
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	// Output:
	// 200 hello user_2alice
	// 401 session-token-missing
}
