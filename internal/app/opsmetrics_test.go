package app_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/buildinfo"
	"github.com/sessiongate/sessiongate/internal/testport"
)

// TestUpstreamErrorIsCountedAndLoggedWithTheRequestID: a failed upstream
// round trip is counted by route and kind, and its log line carries the
// request id the client got in X-Request-Id.
func TestUpstreamErrorIsCountedAndLoggedWithTheRequestID(t *testing.T) {
	t.Parallel()
	closed := "http://" + testport.Reserve(t) // refuses connections
	h := start(t, func(c *config.Config, _ *clerktest.Instance) {
		c.Routes = []config.Route{{Path: "/down", Upstream: closed}, {Path: "/", Upstream: c.Upstream}}
	}, nil)
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t, clerktest.WithUser("user_up"))
	req, _ := http.NewRequest("GET", h.proxyURL+"/down/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusBadGateway || rid == "" {
		t.Fatalf("GET /down: %d, X-Request-Id %q", resp.StatusCode, rid)
	}
	found := false
	for _, e := range h.logs.FilterMessage("upstream error").All() {
		f := e.ContextMap()
		if f["request_id"] == rid && f["kind"] == "dial" && f["route"] == "/down" {
			found = true
		}
	}
	if !found {
		t.Errorf("no upstream error log line with request_id %s and kind dial: %v", rid, h.logs.FilterMessage("upstream error").All())
	}

	_, body := getWith(t, h.adminURL+"/metrics", "")
	bi := buildinfo.Read()
	for _, want := range []string{
		`sessiongate_upstream_errors_total{kind="dial",route="/down"} 1`,
		`sessiongate_build_info{goversion="` + bi.GoVersion + `",version="` + bi.Version + `"} 1`,
		`sessiongate_config_reloads_total{result="invalid"} 0`,
		`sessiongate_config_last_reload_successful 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The request is over (the scrape went to the admin listener, which
	// is not counted).
	if !regexp.MustCompile(`(?m)^sessiongate_requests_in_flight 0$`).MatchString(body) {
		t.Errorf("requests in flight after the request ended:\n%s", regexp.MustCompile(`(?m)^sessiongate_requests_in_flight.*$`).FindString(body))
	}
}
