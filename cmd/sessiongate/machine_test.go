package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
)

// machineKinds are the credential forms of docs/machine-auth.md, with the
// route kind each is accepted on.
var machineKinds = []struct{ name, kind string }{
	{"api key", "api_key"}, {"m2m token", "m2m_token"}, {"oauth token", "oauth_token"},
	{"m2m JWT", "m2m_token"}, {"oauth JWT", "oauth_token"},
}

// machineCreds creates, on inst, a valid (scope "read"), a revoked, an
// expired and an unknown credential of each form ("" where a form has no
// such state: a JWT cannot be revoked before its exp), and returns them
// with what the upstream must see for the valid one.
type machineCred struct {
	valid, revoked, expired, unknown string
	subject, tokenID, machineID      string
	jwt                              bool
}

func newMachineCreds(t *testing.T, inst *clerktest.Instance) map[string]machineCred {
	t.Helper()
	mch := inst.CreateMachine("binary")
	foreign, err := clerktest.NewSigningKey("ins_foreign", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	must := func(id, tok string, err error) (string, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id, tok
	}
	revoke := func(id, tok string) string {
		t.Helper()
		if err := inst.RevokeMachineCredential(id, "test"); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expire := func(id, tok string) string {
		t.Helper()
		if err := inst.ExpireMachineCredential(id); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	user := "user_" + strings.Repeat("m", 27)
	out := map[string]machineCred{}
	{
		id, v := inst.CreateAPIKey(clerktest.APIKeyOptions{Subject: user, Scopes: []string{"read"}})
		out["api key"] = machineCred{valid: v, revoked: revoke(inst.CreateAPIKey(clerktest.APIKeyOptions{})),
			expired: expire(inst.CreateAPIKey(clerktest.APIKeyOptions{ExpiresIn: time.Hour})), unknown: "ak_unknown",
			subject: user, tokenID: id}
	}
	{
		id, v := must(inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{Scopes: []string{"read"}}))
		out["m2m token"] = machineCred{valid: v, revoked: revoke(must(inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{}))),
			expired: expire(must(inst.CreateM2MToken(mch.ID, clerktest.M2MTokenOptions{ExpiresIn: time.Hour}))), unknown: "mt_unknown",
			subject: mch.ID, tokenID: id, machineID: mch.ID}
	}
	{
		id, v := must(inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{UserID: user, ClientID: "client_1", Scopes: []string{"read"}}))
		out["oauth token"] = machineCred{valid: v, revoked: revoke(must(inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{}))),
			expired: expire(must(inst.CreateOAuthAccessToken(clerktest.OAuthTokenOptions{ExpiresIn: time.Hour}))), unknown: "oat_unknown",
			subject: user, tokenID: id}
	}
	m2m := func(opts ...clerktest.TokenOption) string {
		return inst.MustMint(t, append([]clerktest.TokenOption{clerktest.WithMachine(), clerktest.WithUser(mch.ID),
			clerktest.WithClaim("jti", "jti_m2m"), clerktest.WithClaim("scopes", "read")}, opts...)...)
	}
	oauth := func(opts ...clerktest.TokenOption) string {
		return inst.MustMint(t, append([]clerktest.TokenOption{clerktest.WithMachine(), clerktest.WithUser(user),
			clerktest.WithHeader("typ", "at+jwt"), clerktest.WithoutHeader("cat"), clerktest.WithClaim("jti", "jti_oauth"),
			clerktest.WithClaim("client_id", "client_1"), clerktest.WithClaim("scope", "read")}, opts...)...)
	}
	past := clerktest.WithExpiry(time.Now().Add(-time.Hour))
	out["m2m JWT"] = machineCred{valid: m2m(), expired: m2m(past), unknown: m2m(clerktest.WithSigningKey(foreign)),
		subject: mch.ID, tokenID: "jti_m2m", machineID: mch.ID, jwt: true}
	out["oauth JWT"] = machineCred{valid: oauth(), expired: oauth(past), unknown: oauth(clerktest.WithSigningKey(foreign)),
		subject: user, tokenID: "jti_oauth", jwt: true}
	return out
}

// machineCalls counts the fake's Backend API verify calls.
func machineCalls(inst *clerktest.Instance) int {
	return inst.Requests(clerktest.APIKeysVerifyPath) + inst.Requests(clerktest.M2MTokensVerifyPath) +
		inst.Requests(clerktest.OAuthTokensVerifyPath)
}

// Each kind × (valid, revoked, expired, unknown, wrong kind for the route,
// Clerk down, Clerk 429, scope missing) through the binary (sessiongate
// serve, a real process) against the fake Clerk: the status and reason,
// the identity headers the upstream receives (client-sent ones stripped),
// no Backend API call for a refused kind or a JWT, /readyz unaffected by
// the Backend API, and the verifications counted in /metrics.
func TestBinaryMachineCredentials(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := map[string]string{}
		for name, v := range r.Header {
			if strings.HasPrefix(name, "X-Sessiongate-") {
				seen[strings.TrimPrefix(name, "X-Sessiongate-")] = strings.Join(v, "|")
			}
		}
		_ = json.NewEncoder(w).Encode(seen)
	}))
	defer up.Close()
	var routes strings.Builder
	for _, kind := range []string{"api_key", "m2m_token", "oauth_token"} {
		fmt.Fprintf(&routes, "  - path: /%s/scoped\n    accepts: [%s]\n    require: {scopes: [write]}\n", kind, kind)
		fmt.Fprintf(&routes, "  - path: /%s\n    accepts: [%s]\n    require: {scopes: [read]}\n", kind, kind)
	}
	file := filepath.Join(t.TempDir(), "sessiongate.yaml")
	cfg := "clerk:\n  issuer: " + inst.Issuer() + "\n  api_url: " + inst.APIURL() + "\n" +
		"upstream: " + up.URL + "\n" +
		// Every request asks Clerk again (a cached answer is stale by the
		// next request), and one client address may ask as often as the
		// table needs.
		"cache:\n  machine_ttl: 1ns\n  machine_negative_ttl: 1ns\n" +
		"machine:\n  miss_rate: 10000\n  miss_burst: 10000\n" +
		"routes:\n" + routes.String() + "  - path: /\n"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stderr := &syncBuffer{} // read while the process writes it
	cmd := command(ctx, []string{"CLERK_SECRET_KEY=" + inst.SecretKey()}, "serve", "--config", file, "--listen", listen, "--admin-listen", admin)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sessiongate stderr:\n%s", stderr.String())
		}
	}()
	waitHTTP(t, "http://"+admin+"/readyz", 200)
	creds := newMachineCreds(t, inst)

	do := func(path, token string) (*http.Response, map[string]string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+listen+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		// Identity headers a client must never be able to set.
		req.Header.Set("X-Sessiongate-Machine-Id", "mch_forged")
		req.Header.Set("X-Sessiongate-Scopes", "admin")
		req.Header.Set("X-Sessiongate-Token-Type", "session_token")
		req.Header["X_Sessiongate_Client_Id"] = []string{"client_forged"}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		seen := map[string]string{}
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
		}
		return resp, seen
	}
	readyz := func() int {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	other := map[string]string{"api_key": "m2m_token", "m2m_token": "oauth_token", "oauth_token": "api_key"}
	for _, k := range machineKinds {
		c := creds[k.name]
		t.Run(k.name, func(t *testing.T) {
			// A refused credential: 401 for a bad one, 503 for Clerk failing.
			bad := func(reason string) (int, string) {
				if reason == "machine-token-verification-unavailable" {
					return 503, reason
				}
				return 401, reason
			}
			type row struct {
				name, path, token string
				behavior          clerktest.Behavior
				status            int
				reason            string
			}
			route := "/" + k.kind
			rows := []row{{"valid", route, c.valid, clerktest.Normal, 200, ""}}
			if !c.jwt {
				s, r := bad("machine-token-revoked")
				rows = append(rows, row{"revoked", route, c.revoked, clerktest.Normal, s, r})
				s, r = bad("machine-token-expired")
				rows = append(rows, row{"expired", route, c.expired, clerktest.Normal, s, r})
				s, r = bad("machine-token-invalid")
				rows = append(rows, row{"unknown", route, c.unknown, clerktest.Normal, s, r})
				s, r = bad("machine-token-verification-unavailable")
				rows = append(rows, row{"Clerk down", route, c.valid, clerktest.Down, s, r},
					row{"Clerk 429", route, c.valid, clerktest.RateLimited, s, r},
					row{"Clerk 5xx", route, c.valid, clerktest.ServerError, s, r})
			} else {
				// Networkless: Clerk's health does not matter.
				rows = append(rows, row{"expired", route, c.expired, clerktest.Normal, 401, "token-expired"},
					row{"unknown signing key", route, c.unknown, clerktest.Normal, 401, "jwk-kid-mismatch"},
					row{"Clerk down", route, c.valid, clerktest.Down, 200, ""},
					row{"Clerk 429", route, c.valid, clerktest.RateLimited, 200, ""},
					row{"Clerk 5xx", route, c.valid, clerktest.ServerError, 200, ""})
			}
			rows = append(rows,
				row{"wrong kind for the route", "/" + other[k.kind], c.valid, clerktest.Normal, 401, "token-type-not-accepted"},
				row{"scope missing", route + "/scoped", c.valid, clerktest.Normal, 403, "missing-scope"})
			for _, tc := range rows {
				before := machineCalls(inst)
				inst.SetAPIBehavior(tc.behavior)
				resp, seen := do(tc.path, tc.token)
				if tc.behavior != clerktest.Normal {
					if code := readyz(); code != 200 {
						t.Errorf("%s: /readyz %d while the Backend API fails", tc.name, code)
					}
				}
				if tc.behavior == clerktest.Down {
					if err := inst.Up(); err != nil {
						t.Fatal(err)
					}
				}
				inst.SetAPIBehavior(clerktest.Normal)
				reason := resp.Header.Get("X-Clerk-Auth-Reason")
				if resp.StatusCode != tc.status || reason != tc.reason {
					t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, reason, tc.status, tc.reason)
					continue
				}
				if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", tc.name)
				}
				if calls := machineCalls(inst) - before; (c.jwt || tc.reason == "token-type-not-accepted") && calls != 0 {
					t.Errorf("%s: %d Backend API calls, want none", tc.name, calls)
				}
				if tc.status != 200 {
					continue
				}
				want := map[string]string{"Token-Type": k.kind, "Subject": c.subject, "Token-Id": c.tokenID,
					"Scopes": "read", "Machine-Id": c.machineID, "User-Id": "", "Org-Id": "", "Session-Id": "", "Client-Id": ""}
				if strings.HasPrefix(c.subject, "user_") {
					want["User-Id"] = c.subject
				}
				if k.kind == "oauth_token" {
					want["Client-Id"] = "client_1"
				}
				for name, v := range want {
					if seen[name] != v {
						t.Errorf("%s: X-Sessiongate-%s = %q, want %q (upstream saw %v)", tc.name, name, seen[name], v, seen)
					}
				}
				for name, v := range seen {
					if strings.Contains(v, c.valid) {
						t.Errorf("%s: the secret reached the upstream in X-Sessiongate-%s", tc.name, name)
					}
				}
			}
		})
	}
	if strings.Contains(stderr.String(), creds["api key"].valid) {
		t.Error("the API key's secret is in the logs")
	}

	// The verifications above, counted by kind and outcome (opaque ones and
	// JWTs apart), and the cache lookups.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metric := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Errorf("no %s in /metrics", name)
			return 0
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	for _, kind := range []string{"api_key", "m2m_token", "oauth_token"} {
		for _, outcome := range []string{"valid", "invalid", "revoked", "expired", "unavailable"} {
			name := fmt.Sprintf(`sessiongate_machine_verifications_total{kind=%q,outcome=%q}`, kind, outcome)
			if v := metric(name); v < 1 {
				t.Errorf("%s = %v, want at least 1", name, v)
			}
		}
	}
	for _, kind := range []string{"m2m_token", "oauth_token"} {
		for _, outcome := range []string{"valid", "invalid", "expired"} {
			name := fmt.Sprintf(`sessiongate_machine_jwt_verifications_total{kind=%q,outcome=%q}`, kind, outcome)
			if v := metric(name); v < 1 {
				t.Errorf("%s = %v, want at least 1", name, v)
			}
		}
	}
	if v := metric("sessiongate_machine_cache_misses_total"); v < 15 {
		t.Errorf("sessiongate_machine_cache_misses_total = %v, want at least one per opaque verification", v)
	}
	metric("sessiongate_machine_cache_hits_total")
}

// sessiongate verify takes every kind of credential: a machine credential
// prints its kind and identity (exit 0) or the reason (exit 1), Clerk
// failing is machine-token-verification-unavailable, and the secret is
// never printed.
func TestBinaryVerifyEveryKind(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := []string{"SESSIONGATE_ISSUER=" + inst.Issuer(), "CLERK_SECRET_KEY=" + inst.SecretKey(), "CLERK_API_URL=" + inst.APIURL()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	creds := newMachineCreds(t, inst)
	verify := func(token string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := command(ctx, env, "verify", "--timeout", "10s", token)
		cmd.Stdout, cmd.Stderr = &out, &errb
		code := exitCode(t, cmd.Run())
		if strings.Contains(out.String()+errb.String(), token) {
			t.Errorf("verify printed the credential:\n%s\n%s", out.String(), errb.String())
		}
		return code, out.String(), errb.String()
	}
	for _, k := range machineKinds {
		c := creds[k.name]
		type row struct {
			name, token string
			behavior    clerktest.Behavior
			code        int
			stdout      []string
		}
		rows := []row{{"valid", c.valid, clerktest.Normal, 0,
			[]string{`"token_type": "` + k.kind + `"`, `"subject": "` + c.subject + `"`, `"id": "` + c.tokenID + `"`, `"read"`}}}
		if !c.jwt {
			rows = append(rows,
				row{"revoked", c.revoked, clerktest.Normal, 1, []string{"machine-token-revoked"}},
				row{"expired", c.expired, clerktest.Normal, 1, []string{"machine-token-expired"}},
				row{"unknown", c.unknown, clerktest.Normal, 1, []string{"machine-token-invalid"}},
				row{"Clerk 429", c.valid, clerktest.RateLimited, 1, []string{"machine-token-verification-unavailable"}},
				row{"Clerk 5xx", c.valid, clerktest.ServerError, 1, []string{"machine-token-verification-unavailable"}})
		} else {
			rows = append(rows,
				row{"expired", c.expired, clerktest.Normal, 1, []string{"token-expired"}},
				row{"unknown signing key", c.unknown, clerktest.Normal, 1, []string{"jwk-kid-mismatch"}})
		}
		for _, tc := range rows {
			inst.SetAPIBehavior(tc.behavior)
			code, out, errb := verify(tc.token)
			inst.SetAPIBehavior(clerktest.Normal)
			ok := code == tc.code
			for _, s := range tc.stdout {
				ok = ok && strings.Contains(out, s)
			}
			if !ok {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want %d and %q", k.name, tc.name, code, out, errb, tc.code, tc.stdout)
			}
		}
	}
	// A session token still prints its claims.
	if code, out, _ := verify(inst.MustMint(t, clerktest.WithUser("user_verify"))); code != 0 || !strings.Contains(out, `"sub": "user_verify"`) {
		t.Errorf("session token: exit %d, stdout %q", code, out)
	}
}
