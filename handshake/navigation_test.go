package handshake_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

// No redirect is ever issued to a non-GET or a non-navigation request: every
// method × Sec-Fetch-Dest × Accept combination, for every state that would
// redirect a navigation. Only GET with Sec-Fetch-Dest document or iframe, or
// without Sec-Fetch-Dest and with Accept starting text/html, redirects; and
// never when the caller forbids redirects (forward-auth).
func TestNoRedirectForNonNavigation(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now()
	old := now.Add(-5 * time.Minute)
	expired := e.mint(t, clerktest.WithIssuedAt(old))
	valid := e.mint(t)
	states := map[string][]kv{
		"uat without session":   {{"__client_uat", "1"}},
		"session without uat":   {{"__session", valid}},
		"expired":               {{"__session", expired}, {"__client_uat", itoa(old.Unix())}},
		"older than client_uat": {{"__session", valid}, {"__client_uat", itoa(now.Unix() + 30)}},
		"not yet valid":         {{"__session", e.mint(t, clerktest.WithNotBefore(now.Add(time.Hour)))}, {"__client_uat", "1"}},
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "get"}
	dests := []string{"", "document", "iframe", "empty", "image", "script", "style", "frame", "embed", "object", "worker", "audio", "DOCUMENT"}
	accepts := []string{"", "text/html,application/xhtml+xml", "text/html", "application/json", "*/*", "TEXT/HTML", "application/xhtml+xml,text/html"}
	n := 0
	for state, cookies := range states {
		for _, m := range methods {
			for _, d := range dests {
				for _, a := range accepts {
					hdr := map[string]string{}
					if d != "" {
						hdr["Sec-Fetch-Dest"] = d
					}
					if a != "" {
						hdr["Accept"] = a
					}
					r := request(m, "/page", hdr, cookies...)
					want := m == "GET" && (d == "document" || d == "iframe" || d == "" && len(a) >= 9 && a[:9] == "text/html")
					o := e.run(r)
					name := fmt.Sprintf("%s %s dest=%q accept=%q", state, m, d, a)
					if got := o.Status == handshake.Redirect; got != want {
						t.Errorf("%s: redirect %v, want %v", name, got, want)
					}
					if o.Status != handshake.Redirect && o.Location != "" {
						t.Errorf("%s: Location on %v", name, o.Status)
					}
					if want {
						// Forward-auth never redirects.
						if o := e.hs.Authenticate(r, middleware.Policy{}, func() string { return appURL + "/page" }, false); o.Status == handshake.Redirect {
							t.Errorf("%s: redirect with mayRedirect false", name)
						}
					}
					n++
				}
			}
		}
	}
	t.Logf("%d requests", n)
}
