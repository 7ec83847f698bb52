package templatetoken_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/templatetoken"
)

// Call an upstream API with a token of a Clerk JWT template instead of the
// browser's session token: the template's claims, for the request's
// session, minted through the Backend API and cached per session until
// shortly before it expires. A proxy route takes the Source as
// proxy.Route.UpstreamToken (token_template in the sessiongate binary).
func ExampleSource_UpstreamToken() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	clerk.SetTemplate("billing", map[string]any{"aud": "billing-api", "plan": "pro"})
	api, err := clerkapi.New(clerkapi.Config{SecretKey: clerk.SecretKey(), APIURL: clerk.APIURL()})
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := templatetoken.New(templatetoken.Config{Minter: templatetoken.ClerkMinter(api), Template: "billing"})
	if err != nil {
		log.Fatal(err)
	}

	// The upstream reads the template's claims. A real one verifies the
	// token against the instance's JWKS first.
	billing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwt := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[1])
		var c struct{ Sub, Aud, Plan string }
		_ = json.Unmarshal(payload, &c)
		fmt.Fprintf(w, "invoices of %s (aud %s, plan %s)", c.Sub, c.Aud, c.Plan)
	}))
	defer billing.Close()

	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}
	invoices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		jwt, err := tokens.UpstreamToken(r.Context(), claims)
		if err != nil {
			gate.WriteError(w, &middleware.Error{Reason: middleware.ReasonSessionStatusUnavailable, Message: "no upstream token", Err: err})
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), "GET", billing.URL, nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, "billing unavailable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	})
	app := httptest.NewServer(gate.Require(invoices))
	defer app.Close()

	sid := clerk.CreateSession("user_2alice")
	session, err := clerk.Mint(clerktest.WithSession(sid))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		req, _ := http.NewRequest("GET", app.URL, nil)
		req.Header.Set("Authorization", "Bearer "+session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	fmt.Println("minted:", clerk.Requests("/v1/sessions/"+sid+"/tokens/billing"))
	// Output:
	// 200 invoices of user_2alice (aud billing-api, plan pro)
	// 200 invoices of user_2alice (aud billing-api, plan pro)
	// minted: 1
}
