package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/machine"
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

// Gate a handler on a Clerk Billing plan and on a recent verification of
// the user's second factor, and read a custom claim of the session token.
// A session that misses a requirement gets a 403 with the reason; the
// reverification 403 carries Clerk's clerk_error body, which Clerk's
// frontend (useReverification) turns into a verification prompt.
func ExampleGate_RequireWith() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}

	strict, _ := middleware.ReverificationPreset("strict") // second factor within 10 minutes
	policy := gate.DefaultPolicy()
	policy.Require = middleware.Requirements{Plans: []string{"org:pro", "org:enterprise"}, Reverification: &strict}
	billing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		var custom struct {
			Email string `json:"email"`
		}
		_ = claims.DecodeCustom(&custom)
		fmt.Fprintf(w, "billing for %s", custom.Email)
	})
	srv := httptest.NewServer(gate.RequireWith(policy)(billing))
	defer srv.Close()

	call := func(opts ...clerktest.TokenOption) {
		token, err := clerk.Mint(opts...)
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
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
			return
		}
		fmt.Println(resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason"))
	}
	email := clerktest.WithClaim("email", "ada@example.com")
	call(email, clerktest.WithPlan("u:free"))
	call(email, clerktest.WithPlan("o:pro"), clerktest.WithFactorVerificationAge(30, 25))
	call(email, clerktest.WithPlan("o:pro"), clerktest.WithFactorVerificationAge(30, 2))
	// Output:
	// 403 missing-plan
	// 403 reverification-required
	// 200 billing for ada@example.com
}

// Accept API keys next to session tokens on one handler. Opaque API keys
// ("ak_…") are verified through Clerk's Backend API by a machine.Verifier,
// with caching and rate limits; AuthFromContext tells the handler which
// kind of credential authenticated the request.
func ExampleGate_RequireWith_machineCredentials() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	api, err := clerkapi.New(clerkapi.Config{SecretKey: clerk.SecretKey(), APIURL: clerk.APIURL()})
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := machine.New(machine.Config{API: api})
	if err != nil {
		log.Fatal(err)
	}
	gate, err := middleware.New(middleware.Config{
		Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...), Machines: verifier,
	})
	if err != nil {
		log.Fatal(err)
	}

	policy := gate.DefaultPolicy()
	policy.Accepts = []middleware.TokenType{middleware.SessionToken, middleware.APIKey}
	api2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := middleware.AuthFromContext(r.Context())
		if a.Machine != nil {
			fmt.Fprintf(w, "%s for %s, scopes %v", a.Type, a.Machine.Subject, a.Machine.Scopes)
			return
		}
		fmt.Fprintf(w, "%s for %s", a.Type, a.Session.Subject)
	})
	srv := httptest.NewServer(gate.RequireWith(policy)(api2))
	defer srv.Close()

	_, key := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: "user_2customerAAAAAAAAAAAAAAAAA", Scopes: []string{"read"}})
	session, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	for _, token := range []string{key, session, "ak_made_up"} {
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
			continue
		}
		fmt.Println(string(body))
	}
	// Output:
	// api_key for user_2customerAAAAAAAAAAAAAAAAA, scopes [read]
	// session_token for user_2alice
	// 401 machine-token-invalid
}
