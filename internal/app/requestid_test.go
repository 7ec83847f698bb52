package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/testwait"
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

// TestRecheckLogLinesCarryTheStreamsRequestID: the re-checks of an open
// event stream run after its request's handler started streaming, on a
// context of their own; the lines they write when the Backend API is down
// (the client's retries, the breaker, the watcher's "re-check undecided")
// carry the request_id of the request that opened the stream.
func TestRecheckLogLinesCarryTheStreamsRequestID(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckStrict}}
		c.Connections.RecheckInterval = config.Duration(50 * time.Millisecond)
	}, wsApp(nil))
	h.waitReady(t, 200)
	_, tok := session(t, h.inst)
	req, _ := http.NewRequest("GET", h.proxyURL+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || id == "" {
		t.Fatalf("stream: %d, X-Request-Id %q", resp.StatusCode, id)
	}
	from := h.logs.Len()
	h.inst.SetAPIBehavior(clerktest.Down)
	testwait.Eventually(t, "a re-check undecided line", func() bool {
		return h.logs.FilterMessageSnippet("re-check undecided").Len() > 0
	})
	seen := map[string]bool{}
	for _, e := range h.logs.All()[from:] {
		switch {
		case strings.HasPrefix(e.Message, "re-check undecided"), e.Message == "clerkapi: retrying",
			strings.HasPrefix(e.Message, "session status lookups failing"):
			seen[e.Message] = true
			if got := e.ContextMap()["request_id"]; got != id {
				t.Errorf("%q has request_id %v, want the stream's %q", e.Message, got, id)
			}
		}
	}
	if len(seen) < 2 {
		t.Errorf("too few re-check lines to judge: %v", seen)
	}
}
