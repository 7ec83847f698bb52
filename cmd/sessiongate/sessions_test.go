package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// cliEnv is an environment for sessionsMain.
type cliEnv map[string]string

func (e cliEnv) get(k string) string { return e[k] }

func fakeEnv(inst *clerktest.Instance) cliEnv {
	return cliEnv{"CLERK_SECRET_KEY": inst.SecretKey(), "CLERK_API_URL": inst.APIURL()}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env cliEnv, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := sessionsMain(args, env.get, &out, &errb)
	r := cliResult{code, out.String(), errb.String()}
	if sk := env["CLERK_SECRET_KEY"]; sk != "" && (strings.Contains(r.stdout, sk) || strings.Contains(r.stderr, sk)) {
		t.Fatalf("%v: the secret key was printed:\n%s\n%s", args, r.stdout, r.stderr)
	}
	return r
}

func (r cliResult) want(t *testing.T, code int) cliResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func TestSessionsList(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	a := inst.CreateSession("user_list")
	b := inst.CreateSession("user_list")
	inst.CreateSession("user_other")
	if err := inst.SetSessionStatus(b, "revoked"); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, env, "list", "--user-id", "user_list").want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST ACTIVE") || lines[3] != "total: 2" {
		t.Fatalf("table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, a) || !strings.Contains(r.stdout, b) || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("table misses a session:\n%s", r.stdout)
	}
	// RFC3339 timestamps.
	if f := strings.Fields(lines[1]); len(f) != 6 || !strings.HasSuffix(f[4], "Z") || !strings.Contains(f[4], "T") {
		t.Fatalf("row: %q", lines[1])
	}

	// --json, flags after a (non-existent) position and a status filter.
	r = runCLI(t, env, "list", "--json", "--user-id", "user_list", "--status", "active").want(t, 0)
	var got struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
		Total int `json:"total_count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(got.Data) != 1 || got.Data[0].ID != a || got.Data[0].Status != "active" || got.Total != 1 {
		t.Fatalf("json: %+v", got)
	}

	// --all pages through.
	r = runCLI(t, env, "list", "--user-id", "user_list", "--all", "--limit", "1").want(t, 0)
	if !strings.Contains(r.stdout, a) || !strings.Contains(r.stdout, b) || !strings.HasSuffix(r.stdout, "total: 2\n") {
		t.Fatalf("--all:\n%s", r.stdout)
	}
}

func TestSessionsUsageErrors(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	inst.ResetCounters()
	for _, args := range [][]string{
		{},
		{"nope"},
		{"list"}, // no user or client
		{"list", "--user-id", "user_x", "--limit", "0"},
		{"list", "--user-id", "user_x", "--limit", "501"},
		{"list", "--user-id", "user_x", "--limit", "ten"},
		{"list", "--user-id", "user_x", "extra"},
		{"list", "--bogus"},
		{"get"},
		{"get", "not-a-session"},
		{"get", "sess_a", "sess_b"},
		{"get", "sess_a", "--", "--json"}, // "--" ends the flags: two arguments
		{"verify", "sess_a"},
		{"token", "sess_a", "--expires-in", "5"},
		{"revoke"},
		{"revoke", "sess_a", "--admin", "ftp://x"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("%q: exit %d, want 2 with usage\n%s", args, r.code, r.stderr)
		}
	}
	if n := inst.Requests("/v1/sessions"); n != 0 {
		t.Fatalf("usage errors made %d requests", n)
	}
	runCLI(t, env, "help").want(t, 0)
}

func TestSessionsMissingSecretKey(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"list", "--user-id", "user_x"},
		{"get", "sess_abc"},
		{"get", "--", "sess_abc"},
		{"token", "sess_abc"},
		{"verify", "sess_abc", "tok"},
		{"revoke", "--no-local", "sess_abc"},
	} {
		r := runCLI(t, cliEnv{}, args...).want(t, 2)
		if !strings.Contains(r.stderr, "CLERK_SECRET_KEY is not set") {
			t.Fatalf("%q: %s", args, r.stderr)
		}
	}
}

func TestSessionsGet(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	sid := inst.CreateSession("user_get")

	r := runCLI(t, env, "get", sid).want(t, 0)
	for _, want := range []string{"id:", sid, "user_id:", "user_get", "status:", "active", "expire_at:"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("missing %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, env, "get", "--json", sid).want(t, 0)
	var s struct{ ID, Status string }
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.ID != sid || s.Status != "active" {
		t.Fatalf("%v %+v\n%s", err, s, r.stdout)
	}

	r = runCLI(t, env, "get", "sess_doesnotexist").want(t, 1)
	if !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "Resource not found") || !strings.Contains(r.stderr, "resource_not_found") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Fatalf("stdout on error: %q", r.stdout)
	}

	// A wrong key: Clerk's 401, exit 1, the key not printed.
	bad := cliEnv{"CLERK_SECRET_KEY": "sk_test_wrongwrongwrongwrong", "CLERK_API_URL": inst.APIURL()}
	r = runCLI(t, bad, "get", sid).want(t, 1)
	if !strings.Contains(r.stderr, "401") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestSessionsToken(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	sid := inst.CreateSession("user_tok")
	inst.SetTemplate("hasura", map[string]any{"role": "viewer"})

	r := runCLI(t, env, "token", sid).want(t, 0)
	jwt := strings.TrimSuffix(r.stdout, "\n")
	if strings.Count(jwt, ".") != 2 || strings.ContainsAny(jwt, " \n") {
		t.Fatalf("stdout is not a JWT alone: %q", r.stdout)
	}
	if claims := payload(t, jwt); claims["sid"] != sid {
		t.Fatalf("session token claims: %v", claims)
	}

	r = runCLI(t, env, "token", sid, "--template", "hasura", "--expires-in", "120", "--json").want(t, 0)
	var tok struct{ Object, JWT string }
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Object != "token" {
		t.Fatalf("%v %q", err, r.stdout)
	}
	claims := payload(t, tok.JWT)
	if claims["role"] != "viewer" {
		t.Fatalf("template claims: %v", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 120 {
		t.Fatalf("lifetime %v", exp-iat)
	}

	runCLI(t, env, "token", sid, "--template", "missing").want(t, 1)
}

func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSessionsVerifyDeprecated(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	sid := inst.CreateSession("user_v")
	tok := inst.MustMint(t, clerktest.WithSession(sid))

	r := runCLI(t, env, "verify", sid, tok).want(t, 1)
	if !strings.Contains(r.stderr, "deprecated") || !strings.Contains(r.stderr, "410") || !strings.Contains(r.stderr, "deprecated_endpoint") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, tok) {
		t.Fatal("the token was printed")
	}
	// An API version that still serves it.
	r = runCLI(t, env, "verify", "--api-version", "2024-10-01", sid, tok, "--json").want(t, 0)
	if !strings.Contains(r.stderr, "deprecated") || !strings.Contains(r.stdout, sid) {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// fakeAdmin mimics internal/app's revoke endpoint.
type fakeAdmin struct {
	mu     sync.Mutex
	calls  []string
	auth   []string
	status int // 0: 200
	clerk  string
}

func (f *fakeAdmin) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		status, clerk := f.status, f.clerk
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch status {
		case 0:
			if clerk == "" {
				clerk = "revoked"
			}
			w.WriteHeader(200)
			_ = json.NewEncoder(w).Encode(map[string]any{"session_id": r.PathValue("sid"), "denied_locally": true,
				"denied_until": "2030-01-01T00:00:00Z", "clerk": clerk, "status": "revoked"})
		case 401:
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":"unauthenticated","message":"the admin token is missing or wrong"}`)
		default:
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"session_id": "x", "denied_locally": true, "denied_until": "2030-01-01T00:00:00Z",
				"error": "bad_gateway", "message": "denied locally; Clerk did not confirm the revocation: boom"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestSessionsRevokeThroughAdmin(t *testing.T) {
	t.Parallel()
	f := &fakeAdmin{}
	url := f.start(t)
	// No CLERK_SECRET_KEY: the admin does the Clerk side.
	env := cliEnv{"SESSIONGATE_ADMIN_URL": url, "SESSIONGATE_ADMIN_TOKEN": "envtoken"}

	r := runCLI(t, env, "revoke", "sess_abc").want(t, 0)
	if !strings.Contains(r.stdout, "revoked at Clerk") || !strings.Contains(r.stdout, "denied locally") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	r = runCLI(t, env, "revoke", "sess_abc", "--admin-token", "flagtoken", "--admin", url+"/", "--json").want(t, 0)
	var res revokeResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.RevokedAtClerk || !res.DeniedLocally || res.Status != "revoked" {
		t.Fatalf("%v %+v", err, res)
	}
	f.mu.Lock()
	if len(f.calls) != 2 || f.calls[0] != "POST /sessions/sess_abc/revoke" || f.calls[1] != f.calls[0] ||
		f.auth[0] != "Bearer envtoken" || f.auth[1] != "Bearer flagtoken" {
		t.Fatalf("calls %q auth %q", f.calls, f.auth)
	}
	f.status = 401
	f.mu.Unlock()

	r = runCLI(t, env, "revoke", "sess_abc").want(t, 1)
	if !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "admin token is missing or wrong") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	f.mu.Lock()
	f.status = 502
	f.mu.Unlock()
	r = runCLI(t, env, "revoke", "sess_abc").want(t, 1)
	if !strings.Contains(r.stderr, "502") || !strings.Contains(r.stderr, "Clerk did not confirm") || !strings.Contains(r.stderr, "denied locally until") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestSessionsRevokeAdminWithoutClerkKey(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	f := &fakeAdmin{clerk: "skipped: no clerk.secret_key configured"}
	url := f.start(t)
	sid := inst.CreateSession("user_skip")

	// The gate could not tell Clerk, nor can the CLI: exit 1.
	r := runCLI(t, cliEnv{"SESSIONGATE_ADMIN_URL": url}, "revoke", sid).want(t, 1)
	if !strings.Contains(r.stderr, "NOT revoked at Clerk") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	// With a key, the CLI completes the revocation at Clerk.
	env := fakeEnv(inst)
	env["SESSIONGATE_ADMIN_URL"] = url
	r = runCLI(t, env, "revoke", sid).want(t, 0)
	if !strings.Contains(r.stdout, "denied locally") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	if s, _ := inst.Session(sid); s.Status != "revoked" {
		t.Fatalf("status at Clerk %q", s.Status)
	}
}

func TestSessionsRevokeFallsBackToClerk(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := fakeEnv(inst)
	env["SESSIONGATE_ADMIN_URL"] = "http://" + freeAddr(t) // nothing listens
	sid := inst.CreateSession("user_fb")

	r := runCLI(t, env, "revoke", sid).want(t, 0)
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "no local sessiongate was told") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if s, _ := inst.Session(sid); s.Status != "revoked" {
		t.Fatalf("status %q", s.Status)
	}

	// --no-local: no admin call, no warning.
	sid2 := inst.CreateSession("user_fb")
	r = runCLI(t, env, "revoke", "--no-local", sid2, "--json").want(t, 0)
	if r.stderr != "" || !strings.Contains(r.stdout, `"revoked_at_clerk": true`) {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}

	// Unreachable admin and no key: nothing revoked, exit 1.
	r = runCLI(t, cliEnv{"SESSIONGATE_ADMIN_URL": env["SESSIONGATE_ADMIN_URL"]}, "revoke", "sess_abc").want(t, 1)
	if !strings.Contains(r.stderr, "CLERK_SECRET_KEY is not set") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}

	// Clerk's error after the fallback: exit 1 with its message.
	r = runCLI(t, env, "revoke", "sess_unknown").want(t, 1)
	if !strings.Contains(r.stderr, "Resource not found") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

// TestSessionsRevokeEndToEnd runs the real app: `sessions revoke` through its
// admin listener denies the session on the very next proxied request and
// revokes it at Clerk.
func TestSessionsRevokeEndToEnd(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)

	cfg := config.Defaults()
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Clerk.SecretKey = config.Secret(inst.SecretKey())
	cfg.Clerk.APIURL = inst.APIURL()
	cfg.AdminToken = config.Secret("admintoken")
	cfg.Routes = []config.Route{{Path: "/", Upstream: up.URL, Auth: config.AuthRequired}}
	cfg.Normalize()
	a, err := app.New(&cfg, app.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pl, al) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	proxyURL, adminURL := "http://"+pl.Addr().String(), "http://"+al.Addr().String()

	sid := inst.CreateSession("user_e2e")
	tok := inst.MustMint(t, clerktest.WithSession(sid))
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", proxyURL+"/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Clerk-Auth-Reason")
	}
	testwait.Eventually(t, "the proxy to let the token through", func() bool { code, _ := get(); return code == 200 })

	env := fakeEnv(inst)
	runCLI(t, env, "revoke", sid, "--admin", adminURL).want(t, 1) // no admin token: 401
	r := runCLI(t, env, "revoke", sid, "--admin", adminURL, "--admin-token", "admintoken").want(t, 0)
	if !strings.Contains(r.stdout, "denied locally by "+adminURL) || r.stderr != "" {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if code, reason := get(); code != 401 || reason != "session-revoked" {
		t.Fatalf("next request: %d %q", code, reason)
	}
	if s, _ := inst.Session(sid); s.Status != "revoked" {
		t.Fatalf("status at Clerk %q", s.Status)
	}
}
