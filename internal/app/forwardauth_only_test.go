package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

func TestForwardAuthOnlyConfigNeedsNoUpstream(t *testing.T) {
	t.Parallel()
	g := startOps(t, opsOptions{config: func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/assets", Auth: config.AuthPublic}, {Path: "/"}}
	}})
	tok := g.token(t, "user_fa")
	decide := func(uri, token string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/_sessiongate/auth", nil)
		req.Header.Set("X-Forwarded-Uri", uri)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := decide("/app/page", tok); r.StatusCode != 200 || r.Header.Get("X-Sessiongate-User-Id") != "user_fa" {
		t.Fatalf("forward-auth with a token: %d %v", r.StatusCode, r.Header)
	}
	if r := decide("/app/page", ""); r.StatusCode != 401 || r.Header.Get("X-Clerk-Auth-Reason") != "session-token-missing" {
		t.Fatalf("forward-auth without a token: %d", r.StatusCode)
	}
	if r := decide("/assets/app.js", ""); r.StatusCode != 200 {
		t.Fatalf("forward-auth of a public route: %d", r.StatusCode)
	}
	// A request sent to the gate itself has nowhere to go: a clear 404,
	// whatever the credentials.
	for _, token := range []string{tok, ""} {
		resp, body := getWith(t, "http://"+g.addr+"/app/page", token)
		if resp.StatusCode != 404 || !strings.Contains(body, "only decides forward-auth requests") {
			t.Fatalf("proxied request: %d %s", resp.StatusCode, body)
		}
	}
}
