package handshake_test

import (
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

var accountPage = template.Must(template.New("account").Parse(`<h1>Account of {{.}}</h1>`))

// A server-rendered Go app whose browser sessions outlive Clerk's 60-second
// session tokens, as behind any Clerk backend SDK. A signed-out navigation
// goes to the sign-in page; once signed in, the page is served; and when the
// session token has expired, the next navigation takes Clerk's handshake
// (two redirects the browser follows on its own) and gets the page with a
// fresh token. requireBrowser is in ExampleHandshaker_Authenticate.
func Example_serverRenderedApp() {
	// The time of the fake Clerk instance and of the Gate, moved forward
	// below instead of sleeping.
	var elapsed atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(elapsed.Load())) }
	clerk, err := clerktest.New(clerktest.Options{Now: now})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	pk, err := config.ParsePublishableKey(clerk.PublishableKey())
	if err != nil {
		log.Fatal(err)
	}
	gate, err := middleware.New(middleware.Config{
		Issuer: clerk.Issuer(),
		Keys:   jwks.NewMemory(clerk.PublicKeys()...),
		Now:    now,
	})
	if err != nil {
		log.Fatal(err)
	}
	hs, err := handshake.New(handshake.Config{
		Gate:         gate,
		FrontendAPI:  pk.FrontendAPI,
		CookieSuffix: pk.CookieSuffix,
		Production:   pk.Live,
		BaseURL:      clerk.URL(),
	})
	if err != nil {
		log.Fatal(err)
	}

	account := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = accountPage.Execute(w, claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /account", requireBrowser(gate, hs, clerk.SignInURL, account))
	// The fake sets its cookies on its own host, 127.0.0.1: the app must
	// listen on that host too for the browser to send them.
	app := httptest.NewServer(mux)
	defer app.Close()

	// The browser: a cookie jar, and a navigation's headers on every hop.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	navigate := func(step, method, target string, form url.Values) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, target, body)
		req.Header.Set("Sec-Fetch-Dest", "document")
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(resp.Request.URL.String(), clerk.URL()) {
			fmt.Printf("%s: %d, Clerk's %s page\n", step, resp.StatusCode, resp.Request.URL.Path)
			return
		}
		fmt.Printf("%s: %d %s\n", step, resp.StatusCode, page)
	}
	handshakes := func() int { return clerk.Requests(clerktest.HandshakePath) }

	page := app.URL + "/account"
	navigate("signed out", "GET", page, nil)
	navigate("sign in", "POST", clerk.URL()+clerktest.SignInPath, url.Values{"user_id": {"user_2alice"}, "redirect_url": {page}})
	navigate("signed in", "GET", page, nil)
	fmt.Println("handshakes:", handshakes())

	elapsed.Store(int64(2 * time.Minute))         // past the session token's exp
	navigate("token expired", "GET", page, nil)   // renewed through the handshake
	navigate("next navigation", "GET", page, nil) // with the fresh token
	fmt.Println("handshakes:", handshakes())

	navigate("sign out", "GET", clerk.SignOutURL(page), nil) // ends the session at Clerk
	// Output:
	// signed out: 200, Clerk's /sign-in page
	// sign in: 200 <h1>Account of user_2alice</h1>
	// signed in: 200 <h1>Account of user_2alice</h1>
	// handshakes: 0
	// token expired: 200 <h1>Account of user_2alice</h1>
	// next navigation: 200 <h1>Account of user_2alice</h1>
	// handshakes: 1
	// sign out: 200, Clerk's /sign-in page
}
