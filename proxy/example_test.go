package proxy_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// Run sessiongate's reverse proxy in-process in front of an app that reads
// the user from identity headers, as the sessiongate binary does in front
// of an upstream in any language. Identity headers a client sends are
// always deleted, on every route, so the upstream can trust them.
func ExampleNew() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}

	// The upstream: an app that knows nothing of Clerk.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s user=%q role=%q email=%q", r.URL.Path,
			r.Header.Get("X-Sessiongate-User-Id"), r.Header.Get("X-Sessiongate-Org-Role"), r.Header.Get("X-User-Email"))
	}))
	defer app.Close()
	upstream, _ := url.Parse(app.URL)

	admins := gate.DefaultPolicy()
	admins.Require = middleware.Requirements{Roles: []string{"admin"}}
	p, err := proxy.New(proxy.Options{
		Gate: gate,
		Routes: []proxy.Route{
			{Path: "/", Upstream: upstream}, // Auth: proxy.Required
			{Path: "/admin", Upstream: upstream, Policy: admins},
			{Path: "/health", Upstream: upstream, Auth: proxy.Public},
		},
		ClaimHeaders: map[string]string{"X-User-Email": "email"}, // a custom claim of the session token
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()

	member, err := clerk.Mint(clerktest.WithUser("user_2alice"), clerktest.WithClaim("email", "alice@example.com"),
		clerktest.WithOrg(clerktest.Org{ID: "org_2acme", Role: "member"}))
	if err != nil {
		log.Fatal(err)
	}
	get := func(path, token string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Sessiongate-User-Id", "user_2admin") // spoofed: deleted
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
	get("/account", member)
	get("/account", "")
	get("/admin/users", member)
	get("/health", "")
	// Output:
	// 200 /account user="user_2alice" role="org:member" email="alice@example.com"
	// 401 session-token-missing
	// 403 missing-role
	// 200 /health user="" role="" email=""
}

// Answer forward-auth requests in-process: nginx (auth_request), Traefik
// (forwardAuth) or Caddy (forward_auth) send the original request's
// credentials and its URI (X-Forwarded-Uri or X-Original-URI) to
// /_sessiongate/auth; the route that URI selects decides, and a 200 carries
// the identity headers for the front proxy to copy to the app. The
// forwarding headers are believed only from loopback and
// Options.TrustedProxies. Routes without an Upstream only decide
// forward-auth requests.
func ExampleNew_forwardAuth() {
	clerk, err := clerktest.New(clerktest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer clerk.Close()
	gate, err := middleware.New(middleware.Config{Issuer: clerk.Issuer(), Keys: jwks.NewMemory(clerk.PublicKeys()...)})
	if err != nil {
		log.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		Gate: gate,
		Routes: []proxy.Route{
			{Path: "/"},
			{Path: "/assets", Auth: proxy.Public},
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	token, err := clerk.Mint(clerktest.WithUser("user_2alice"))
	if err != nil {
		log.Fatal(err)
	}
	decide := func(uri, token string) {
		r := httptest.NewRequest("GET", proxy.ForwardAuthPath, nil)
		r.RemoteAddr = "127.0.0.1:41000" // the front proxy, on this host
		r.Header.Set("X-Forwarded-Uri", uri)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		fmt.Printf("%s: %d user=%q reason=%q\n", uri, w.Code,
			w.Header().Get("X-Sessiongate-User-Id"), w.Header().Get("X-Clerk-Auth-Reason"))
	}
	decide("/dashboard", token)
	decide("/dashboard", "")
	decide("/assets/app.css", "")
	// Output:
	// /dashboard: 200 user="user_2alice" reason=""
	// /dashboard: 401 user="" reason="session-token-missing"
	// /assets/app.css: 200 user="" reason=""
}
