package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// do sends method to url with an optional raw Authorization header and
// returns the status.
func do(t *testing.T, method, url, authorization string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminCredentialMatrix: metrics_token opens /metrics and nothing else;
// admin_token opens everything; /healthz and /readyz stay open. A revoke
// that gets past the guard answers 200 (the fake Clerk knows the session);
// one refused by it answers 401.
func TestAdminCredentialMatrix(t *testing.T) {
	t.Parallel()
	const admin, metrics = "adm-0123456789abcdef", "met-0123456789abcdef"
	type want struct{ metrics, revoke, pprof int }
	for _, tc := range []struct {
		name           string
		admin, metrics string
		// by credential presented: none, metrics, admin, wrong, lowercase scheme with admin
		none, withMetrics, withAdmin, wrong want
	}{
		{
			name: "both tokens", admin: admin, metrics: metrics,
			none:        want{401, 401, 401},
			withMetrics: want{200, 401, 401},
			withAdmin:   want{200, 200, 200},
			wrong:       want{401, 401, 401},
		},
		{
			name: "admin token only", admin: admin,
			none:        want{401, 401, 401},
			withMetrics: want{401, 401, 401},
			withAdmin:   want{200, 200, 200},
			wrong:       want{401, 401, 401},
		},
		{
			// Loopback without admin_token: revoke is open to local tools,
			// /metrics needs the scrape credential, pprof is never served.
			name: "metrics token only", metrics: metrics,
			none:        want{401, 200, 404},
			withMetrics: want{200, 200, 404},
			withAdmin:   want{401, 200, 404},
			wrong:       want{401, 200, 404},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, func(c *config.Config, _ *clerktest.Instance) {
				c.AdminToken = config.Secret(tc.admin)
				c.MetricsToken = config.Secret(tc.metrics)
				c.AdminPprof = tc.admin != ""
			}, nil)
			h.waitReady(t, 200)
			for _, cred := range []struct {
				name, header string
				want         want
			}{
				{"no credential", "", tc.none},
				{"metrics token", "Bearer " + metrics, tc.withMetrics},
				{"admin token", "Bearer " + admin, tc.withAdmin},
				{"wrong token", "Bearer " + admin + "x", tc.wrong},
			} {
				if got := do(t, "GET", h.adminURL+"/metrics", cred.header); got != cred.want.metrics {
					t.Errorf("%s: GET /metrics = %d, want %d", cred.name, got, cred.want.metrics)
				}
				sid := h.inst.CreateSession("user_matrix")
				if got := do(t, "POST", h.adminURL+"/sessions/"+sid+"/revoke", cred.header); got != cred.want.revoke {
					t.Errorf("%s: POST revoke = %d, want %d", cred.name, got, cred.want.revoke)
				}
				if got := do(t, "GET", h.adminURL+"/debug/pprof/cmdline", cred.header); got != cred.want.pprof {
					t.Errorf("%s: GET /debug/pprof/cmdline = %d, want %d", cred.name, got, cred.want.pprof)
				}
				for _, p := range []string{"/healthz", "/readyz"} {
					if got := do(t, "GET", h.adminURL+p, cred.header); got != 200 {
						t.Errorf("%s: GET %s = %d, want 200 (probes carry no credentials)", cred.name, p, got)
					}
				}
			}
			if tc.admin != "" {
				// The scheme is case-insensitive (RFC 7235); the token is not.
				if got := do(t, "GET", h.adminURL+"/metrics", "bearer "+admin); got != 200 {
					t.Errorf("lower-case scheme: %d", got)
				}
				if got := do(t, "GET", h.adminURL+"/metrics", "Bearer "+strings.ToUpper(admin)); got != 401 {
					t.Errorf("token in another case: %d", got)
				}
				if got := do(t, "GET", h.adminURL+"/metrics", "Basic "+admin); got != 401 {
					t.Errorf("another scheme: %d", got)
				}
			}
			for _, e := range h.logs.All() {
				line := e.Message
				for _, f := range e.Context {
					line += " " + f.String
				}
				if strings.Contains(line, admin) || strings.Contains(line, metrics) {
					t.Errorf("a token in a log line: %q", line)
				}
			}
		})
	}
}

func TestMetricsTokenConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"SESSIONGATE_UPSTREAM":      "http://127.0.0.1:3000",
		"SESSIONGATE_ISSUER":        "https://clerk.example.com",
		"SESSIONGATE_METRICS_TOKEN": "scrape-0123456789",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load(config.Sources{Env: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsToken.Reveal() != "scrape-0123456789" {
		t.Fatalf("SESSIONGATE_METRICS_TOKEN not read: %q", cfg.MetricsToken)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "scrape-0123456789") || !strings.Contains(string(out), "metrics_token: REDACTED") {
		t.Fatalf("metrics_token not redacted:\n%s", out)
	}
	// One token for both jobs would let the scraper revoke.
	env["SESSIONGATE_ADMIN_TOKEN"] = "scrape-0123456789"
	_, err = config.Load(config.Sources{Env: lookup})
	if err == nil || !strings.Contains(err.Error(), "metrics_token: must differ from admin_token") || strings.Contains(err.Error(), "scrape-0123456789") {
		t.Fatalf("same token for both: %v", err)
	}
}
