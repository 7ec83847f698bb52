package app_test

import (
	"net/http"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// TestEveryLogLineOfARequestCarriesItsRequestID: with the Backend API
// unreachable, a strict session check (the client's retry, the circuit
// breaker opening), a cached one (a shared lookup, on a context of its
// own), a forward-auth decision and a template-token mint each log
// warnings while serving a request; every line written for a request
// carries that request's id.
func TestEveryLogLineOfARequestCarriesItsRequestID(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, i *clerktest.Instance) {
		sessionRoutes(c, i)
		i.SetTemplate("hasura", map[string]any{"role": "user"})
	}, nil)
	h.waitReady(t, 200)
	_, tok := sessionOf(t, h)
	h.inst.SetAPIBehavior(clerktest.Down)
	before := h.logs.Len()

	const forwardAuth = "/_sessiongate/auth"
	paths := []string{"/template", "/cached", forwardAuth}
	for range 6 { // the breaker opens after 5 consecutive failures
		paths = append(paths, "/strict")
	}
	warnings := map[string]int{}
	for _, path := range paths {
		start := h.logs.Len()
		req, _ := http.NewRequest("GET", h.proxyURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if path == forwardAuth { // from loopback: a trusted front proxy
			req.Header.Set("X-Forwarded-Uri", "/strict")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s with the Backend API down: %d", path, resp.StatusCode)
		}
		id := resp.Header.Get("X-Request-Id")
		lines := h.logs.All()[start:]
		if len(lines) == 0 {
			t.Fatalf("%s: no log line", path)
		}
		for _, e := range lines {
			if got := e.ContextMap()["request_id"]; got != id {
				t.Errorf("%s: %s line %q (%s) has request_id %v, want %q", path, e.Level, e.Message, e.LoggerName, got, id)
			}
			if e.Level >= zapcore.WarnLevel {
				warnings[e.Message]++
			}
		}
	}
	for _, want := range []string{"template token mint failed", "clerkapi: retrying", "session status lookups failing: circuit breaker open"} {
		if warnings[want] == 0 {
			t.Errorf("no %q warning among %v", want, warnings)
		}
	}
	if h.logs.Len() == before {
		t.Fatal("nothing logged")
	}
}
