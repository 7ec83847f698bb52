package handshake_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// requireBrowser serves next to signed-in requests only, like the Gate's
// Require, but decides browser requests (those without an Authorization
// Bearer header) by Clerk's cookie rules: a browser navigation whose session
// token is missing, stale or expired while its Clerk client may still be
// signed in goes to Clerk's handshake and comes back with a fresh one. It
// is what package proxy does on a route with a Handshake.
//
// signIn, when set, builds the sign-in URL that sends the browser back to
// page; navigations that end signed out go there. Other signed-out requests
// are answered with the Gate's rejection.
func requireBrowser(gate *middleware.Gate, hs *handshake.Handshaker, signIn func(page string) string, next http.Handler) http.Handler {
	policy := gate.DefaultPolicy()
	bearer := gate.RequireWith(policy)(next) // a Bearer token never takes a handshake
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, src, _ := middleware.ExtractToken(r); src == middleware.SourceHeader {
			bearer.ServeHTTP(w, r)
			return
		}
		// The URL the browser asked for: build it from your public origin
		// when the app runs behind TLS termination or another proxy.
		page := "http://" + r.Host + r.URL.RequestURI()
		o := hs.Authenticate(r, policy, func() string { return page }, true)
		switch o.Status {
		case handshake.Redirect:
			o.WriteRedirect(w)
		case handshake.SignedIn:
			// The cookies of a returning handshake (the new __session)
			// ride on the page; the claims are in the context, while r's
			// Cookie header still holds the old token.
			o.AddCookies(w.Header())
			next.ServeHTTP(w, r.WithContext(middleware.ContextWithClaims(r.Context(), o.Claims)))
		case handshake.Failed: // a development instance's bad handshake payload
			o.AddCookies(w.Header())
			http.Error(w, o.Err.Message, http.StatusInternalServerError)
		default: // handshake.SignedOut
			o.AddCookies(w.Header())
			if signIn != nil && middleware.IsBrowserNavigation(r) {
				http.Redirect(w, r, signIn(page), http.StatusSeeOther)
				return
			}
			gate.WriteError(w, o.Err)
		}
	})
}

// Decide browser requests with Clerk's handshake in a Go app: the
// publishable key gives the Frontend API and the cookie suffix, and the
// Handshaker turns each request into an Outcome that requireBrowser (above)
// applies. A navigation with an expired session token is sent to Clerk's
// handshake endpoint, which answers with a fresh token
// (Example_serverRenderedApp follows the whole trip with a browser); a
// fetch is refused instead, since only a navigation can be redirected.
func ExampleHandshaker_Authenticate() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	pk, err := config.ParsePublishableKey(clerk.PublishableKey()) // CLERK_PUBLISHABLE_KEY
	if err != nil {
		log.Fatal(err)
	}
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}
	hs, err := handshake.New(handshake.Config{
		Gate:         gate,
		FrontendAPI:  pk.FrontendAPI,
		CookieSuffix: pk.CookieSuffix,
		Production:   pk.Live,
		BaseURL:      clerk.URL(), // the fake's Frontend API speaks http; empty for https://<FrontendAPI>
	})
	if err != nil {
		log.Fatal(err)
	}
	app := requireBrowser(gate, hs, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	}))

	signedInAt := time.Now().Add(-time.Hour)
	fresh, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	expired, err := clerk.Mint(clerktest.WithUser("user_2alice"), clerktest.WithIssuedAt(time.Now().Add(-2*time.Minute)))
	if err != nil {
		log.Fatal(err)
	}
	request := func(what, dest, session string) {
		r := httptest.NewRequest("GET", "http://app.example.com/account", nil)
		r.Header.Set("Sec-Fetch-Dest", dest) // "document": a navigation; "empty": fetch()
		if session != "" {
			r.AddCookie(&http.Cookie{Name: "__session", Value: session})
			r.AddCookie(&http.Cookie{Name: "__client_uat", Value: strconv.FormatInt(signedInAt.Unix(), 10)})
		}
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			fmt.Printf("%s: %d %s\n", what, w.Code, w.Body)
		case http.StatusTemporaryRedirect:
			loc, _ := url.Parse(w.Header().Get("Location"))
			fmt.Printf("%s: %d %s to %s, back to %s\n", what, w.Code, w.Header().Get("X-Clerk-Auth-Status"),
				loc.Path, loc.Query().Get("redirect_url"))
		default:
			fmt.Printf("%s: %d %s\n", what, w.Code, w.Header().Get("X-Clerk-Auth-Reason"))
		}
	}
	request("signed in", "document", fresh)
	request("expired, navigation", "document", expired)
	request("expired, fetch", "empty", expired)
	request("never signed in", "document", "")
	// Output:
	// signed in: 200 hello user_2alice
	// expired, navigation: 307 handshake to /v1/client/handshake, back to http://app.example.com/account
	// expired, fetch: 401 token-expired
	// never signed in: 401 session-token-missing
}
