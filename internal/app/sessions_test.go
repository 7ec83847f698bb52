package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

const webhookSecret = "whsec_c2Vzc2lvbmdhdGUtdGVzdC13ZWJob29rLWtleQ=="

// sessionRoutes: one route per session_check mode and error policy.
func sessionRoutes(c *config.Config, _ *clerktest.Instance) {
	c.Clerk.WebhookSecret = webhookSecret
	c.Cache.SessionTTL = config.Duration(10 * time.Second)
	c.Routes = []config.Route{
		{Path: "/off"},
		{Path: "/cached", SessionCheck: config.SessionCheckCached},
		{Path: "/strict", SessionCheck: config.SessionCheckStrict},
		{Path: "/strict-allow", SessionCheck: config.SessionCheckStrict, OnSessionCheckError: config.OnErrorAllow},
		{Path: "/template", TokenTemplate: "hasura"},
	}
}

func reason(resp *http.Response) string { return resp.Header.Get("X-Clerk-Auth-Reason") }

func sessionOf(t *testing.T, h *harness) (sid, token string) {
	t.Helper()
	sid = h.inst.CreateSession("user_sess")
	return sid, h.inst.MustMint(t, clerktest.WithSession(sid))
}

func TestSessionCheckModes(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	for _, p := range []string{"/off", "/cached", "/strict"} {
		if resp, body := getWith(t, h.proxyURL+p, tok); resp.StatusCode != 200 {
			t.Fatalf("%s active: %d %s", p, resp.StatusCode, body)
		}
	}
	if err := h.inst.SetSessionStatus(sid, "revoked"); err != nil { // revoked at Clerk, not through sessiongate
		t.Fatal(err)
	}
	// off trusts the token; cached trusts its cache for the TTL; strict asks.
	if resp, _ := getWith(t, h.proxyURL+"/off", tok); resp.StatusCode != 200 {
		t.Fatalf("off: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.proxyURL+"/cached", tok); resp.StatusCode != 200 {
		t.Fatalf("cached within the TTL: %d", resp.StatusCode)
	}
	resp, body := getWith(t, h.proxyURL+"/strict", tok)
	if resp.StatusCode != 401 || reason(resp) != "session-revoked" || !strings.Contains(body, "revoked") {
		t.Fatalf("strict: %d %q %s", resp.StatusCode, reason(resp), body)
	}
	// The inactive status seen by strict went on the deny list: every route
	// now refuses the session, off and cached included.
	for _, p := range []string{"/off", "/cached"} {
		if resp, _ := getWith(t, h.proxyURL+p, tok); resp.StatusCode != 401 || reason(resp) != "session-revoked" {
			t.Fatalf("%s after a revoked status was seen: %d %q", p, resp.StatusCode, reason(resp))
		}
	}
}

func TestCachedModeSeesRevocationAfterTTL(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	if resp, _ := getWith(t, h.proxyURL+"/cached", tok); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	_ = h.inst.SetSessionStatus(sid, "ended")
	h.clk.Advance(11 * time.Second)
	resp, body := getWith(t, h.proxyURL+"/cached", tok)
	if resp.StatusCode != 401 || reason(resp) != "session-revoked" || !strings.Contains(body, "ended") {
		t.Fatalf("after the TTL: %d %q %s", resp.StatusCode, reason(resp), body)
	}
}

func TestThousandConcurrentCachedRequestsMakeOneBackendCall(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	h.inst.SetAPIBehavior(clerktest.Slow) // every request arrives while the lookup is in flight
	h.inst.SetDelay(300 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	codes := make([]int, 1000)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", h.proxyURL+"/cached", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			codes[i] = resp.StatusCode
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if n := h.inst.Requests("/v1/sessions/" + sid); n != 1 {
		t.Fatalf("Backend API calls for 1,000 concurrent requests = %d, want 1", n)
	}
}

func TestAdminRevokeTakesEffectOnTheNextRequest(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	// Warm every cache: the token cache and the cached status.
	for _, p := range []string{"/off", "/cached"} {
		if resp, _ := getWith(t, h.proxyURL+p, tok); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
	}
	resp, err := http.Post(h.adminURL+"/sessions/"+sid+"/revoke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body["clerk"] != "revoked" || body["denied_locally"] != true {
		t.Fatalf("revoke: %d %v", resp.StatusCode, body)
	}
	if info, _ := h.inst.Session(sid); info.Status != "revoked" {
		t.Fatalf("status at Clerk: %q", info.Status)
	}
	for _, p := range []string{"/off", "/cached", "/strict"} {
		if resp, _ := getWith(t, h.proxyURL+p, tok); resp.StatusCode != 401 || reason(resp) != "session-revoked" {
			t.Fatalf("%s right after the revoke: %d %q", p, resp.StatusCode, reason(resp))
		}
	}
	// Bad ids are refused without side effects.
	resp, _ = http.Post(h.adminURL+"/sessions/sess_..%2F/revoke", "", nil)
	if resp.StatusCode != 400 && resp.StatusCode != 404 {
		t.Fatalf("bad id: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestAdminRevokeDeniesLocallyWhenClerkFails(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	h.inst.SetAPIBehavior(clerktest.ServerError)
	resp, err := http.Post(h.adminURL+"/sessions/"+sid+"/revoke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("revoke with Clerk down: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.proxyURL+"/off", tok); resp.StatusCode != 401 {
		t.Fatalf("not denied locally: %d", resp.StatusCode)
	}
}

func TestBackendAPIDownFollowsOnSessionCheckError(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	_, tok := sessionOf(t, h)
	h.inst.SetAPIBehavior(clerktest.ServerError)
	resp, _ := getWith(t, h.proxyURL+"/strict", tok)
	if resp.StatusCode != 503 || reason(resp) != "session-status-unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("deny: %d %q", resp.StatusCode, reason(resp))
	}
	if resp, _ := getWith(t, h.proxyURL+"/strict-allow", tok); resp.StatusCode != 200 {
		t.Fatalf("allow: %d", resp.StatusCode)
	}
	_, metrics := getWith(t, h.adminURL+"/metrics", "")
	for _, want := range []string{
		"sessiongate_session_checks_allowed_on_error_total 1",
		`sessiongate_backend_api_requests_total{endpoint="GET /v1/sessions/{id}",status="500"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestWebhookRevokes(t *testing.T) {
	t.Parallel()
	h := start(t, sessionRoutes, nil)
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	if resp, _ := getWith(t, h.proxyURL+"/off", tok); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	url := h.proxyURL + "/_sessiongate/webhooks/clerk"
	// Signed with another secret: refused, nothing changes.
	resp, err := h.inst.SendWebhook(context.Background(), url, "whsec_"+base64.StdEncoding.EncodeToString([]byte("wrong")), "session.revoked", sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("wrongly signed webhook: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.proxyURL+"/off", tok); resp.StatusCode != 200 {
		t.Fatalf("a refused webhook changed something: %d", resp.StatusCode)
	}
	resp, err = h.inst.SendWebhook(context.Background(), url, webhookSecret, "session.revoked", sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	if resp, _ := getWith(t, h.proxyURL+"/off", tok); resp.StatusCode != 401 || reason(resp) != "session-revoked" {
		t.Fatalf("after the webhook: %d %q", resp.StatusCode, reason(resp))
	}
}

func TestTemplateTokenToTheUpstream(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	h := start(t, func(c *config.Config, i *clerktest.Instance) {
		sessionRoutes(c, i)
		i.SetTemplate("hasura", map[string]any{"https://hasura.io/jwt/claims": map[string]any{"x-hasura-default-role": "user"}})
	}, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
	})
	h.waitReady(t, 200)
	sid, tok := sessionOf(t, h)
	for i := 0; i < 3; i++ {
		if resp, body := getWith(t, h.proxyURL+"/template", tok); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] != seen[2] || !strings.HasPrefix(seen[0], "Bearer ") || seen[0] == "Bearer "+tok {
		t.Fatalf("upstream Authorization: %q", seen)
	}
	parts := strings.Split(strings.TrimPrefix(seen[0], "Bearer "), ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !strings.Contains(string(hdr), clerktest.CategoryTemplate) || !strings.Contains(string(payload), "x-hasura-default-role") {
		t.Fatalf("not a template token: %s %s", hdr, payload)
	}
	if n := h.inst.Requests("/v1/sessions/" + sid + "/tokens/hasura"); n != 1 {
		t.Fatalf("mints for 3 requests = %d, want 1 (cached)", n)
	}
	// Minting fails: the route denies on error.
	sid2, tok2 := sessionOf(t, h)
	_ = sid2
	h.inst.SetAPIBehavior(clerktest.ServerError)
	if resp, _ := getWith(t, h.proxyURL+"/template", tok2); resp.StatusCode != 503 || reason(resp) != "session-status-unavailable" {
		t.Fatalf("mint failure: %d %q", resp.StatusCode, reason(resp))
	}
}
