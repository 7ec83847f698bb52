package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/webhook"
)

// secretSet collects every value that must never be printed, and every
// response and log line that must not print them.
type secretSet struct {
	mu      sync.Mutex
	secrets map[string]string // value → what it is
	outputs []string          // "<where>: <text>"
	reasons map[string]bool   // X-Clerk-Auth-Reason values seen
	codes   map[int]bool      // statuses seen
}

func newSecretSet() *secretSet {
	return &secretSet{secrets: map[string]string{}, reasons: map[string]bool{}, codes: map[int]bool{}}
}

func (s *secretSet) secret(what, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(v) > 8 {
		s.secrets[v] = what
	}
}

// token registers every segment of a token longer than 8 characters.
func (s *secretSet) token(what, tok string) string {
	for i, part := range strings.Split(tok, ".") {
		s.secret(fmt.Sprintf("%s segment %d", what, i), part)
	}
	return tok
}

func (s *secretSet) output(where, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outputs = append(s.outputs, where+": "+text)
}

func (s *secretSet) response(where string, resp *http.Response, err error) {
	if err != nil {
		s.output(where+" (client error)", err.Error())
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s.mu.Lock()
	s.reasons[resp.Header.Get("X-Clerk-Auth-Reason")] = true
	s.codes[resp.StatusCode] = true
	s.mu.Unlock()
	var hdr strings.Builder
	for k, vs := range resp.Header {
		fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	s.output(fmt.Sprintf("%s (status %d)", where, resp.StatusCode), hdr.String()+string(b))
}

func (s *secretSet) logs(where string, h *hzApp) {
	for _, e := range h.logs.All() {
		s.output(where+" log", fmt.Sprintf("%s %s %v", e.LoggerName, e.Message, e.ContextMap()))
	}
}

func (s *secretSet) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.outputs) < 50 {
		t.Fatalf("only %d outputs were captured", len(s.outputs))
	}
	// Every outcome was driven (session-token-stale needs the handshake
	// mode, a publishable key: not exercised here).
	for _, r := range []string{"", "session-token-missing", "token-invalid", "token-invalid-algorithm",
		"token-invalid-signature", "jwk-kid-mismatch", "token-expired", "token-not-active-yet",
		"token-iat-in-the-future", "token-invalid-issuer", "token-invalid-authorized-parties",
		"token-type-mismatch", "session-pending", "session-revoked", "missing-org", "missing-role",
		"missing-permission", "jwk-remote-failed-to-load", "session-status-unavailable"} {
		if !s.reasons[r] {
			t.Errorf("no response with reason %q was produced", r)
		}
	}
	for _, c := range []int{200, 307, 400, 401, 403, 404, 405, 502, 503} {
		if !s.codes[c] {
			t.Errorf("no response with status %d was produced", c)
		}
	}
	for _, out := range s.outputs {
		for v, what := range s.secrets {
			if strings.Contains(out, v) {
				t.Errorf("%s leaks the %s:\n%.600s", strings.SplitN(out, ": ", 2)[0], what, out)
			}
		}
	}
}

// TestNoSecretInLogsOrResponses drives every outcome sessiongate has (a
// success on every carrier, each rejection reason the proxy can give,
// authorization failures, Backend API errors and a wrong secret key, JWKS
// outage, webhook refusals, admin refusals, an upstream that panics, a
// template token minted and one that fails, configuration errors) with all
// logs captured at debug level, and asserts that no token (any segment over
// 8 characters), cookie value, secret key, webhook secret or admin token
// appears in any log line, response body or response header.
func TestNoSecretInLogsOrResponses(t *testing.T) {
	t.Parallel()
	ss := newSecretSet()
	const (
		adminToken  = "adm_SuperSecretAdminToken_0123456789"
		cookieValue = "ck_SecretOtherCookieValue_0123456789"
		whSecret    = "whsec_" + "c2VjcmV0cy10ZXN0LXdlYmhvb2sta2V5LTAxMjM0NTY3"
		wrongSecret = "sk_test_WrongSecretKeyValue0123456789abcdef"
	)
	ss.secret("admin token", adminToken)
	ss.secret("cookie value", cookieValue)
	ss.secret("webhook secret", whSecret)
	ss.secret("webhook secret body", strings.TrimPrefix(whSecret, "whsec_"))
	ss.secret("wrong secret key", wrongSecret)

	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	ss.secret("secret key", inst.SecretKey())
	inst.SetTemplate("hasura", map[string]any{"role": "user"})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("upstream handler failed")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		// The upstream gets the template token; it is a token too.
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			ss.token("token forwarded upstream", strings.TrimPrefix(a, "Bearer "))
		}
		fmt.Fprintf(w, `{"user":%q}`, r.Header.Get("X-Sessiongate-User-Id"))
	})
	h := hzStart(t, hzOptions{clerk: inst, upstream: up, httpClient: clerkClient(), config: func(c *config.Config, i *clerktest.Instance) {
		c.AdminToken = adminToken
		c.Clerk.WebhookSecret = whSecret
		c.Clerk.AuthorizedParties = []string{clerktest.DefaultAuthorizedParty}
		c.Log.Level = "debug"
		c.SignInURL = "https://accounts.example.test/sign-in"
		c.Routes = []config.Route{
			{Path: "/public", Auth: config.AuthPublic},
			{Path: "/optional", Auth: config.AuthOptional},
			{Path: "/org", Require: config.Require{Org: true}},
			{Path: "/role", Require: config.Require{Roles: []string{"admin"}}},
			{Path: "/perm", Require: config.Require{Permissions: []string{"org:docs:write"}}},
			{Path: "/strict", SessionCheck: config.SessionCheckStrict},
			{Path: "/template", TokenTemplate: "hasura"},
			{Path: "/panic", Auth: config.AuthPublic},
			{Path: "/abort", Auth: config.AuthPublic},
			{Path: "/"},
		}
	}})
	h.waitReady(t, 200)

	foreignKid, _ := clerktest.NewSigningKey("ins_unknown_to_gate", "RS256")
	sameKid, _ := clerktest.NewSigningKey(signingKey(t).ID, "RS256")
	now := time.Now()
	sid := inst.CreateSession("user_secrets")
	revokedSID := inst.CreateSession("user_revoked")
	mint := func(what string, opts ...clerktest.TokenOption) string {
		return ss.token(what, inst.MustMint(t, opts...))
	}
	member := clerktest.Org{ID: "org_s", Role: "member", Permissions: []string{"org:docs:read"}}
	tokens := map[string]string{
		"valid":                 mint("valid token", clerktest.WithSession(sid)),
		"expired":               mint("expired token", clerktest.WithExpiry(now.Add(-time.Hour))),
		"not yet valid":         mint("nbf token", clerktest.WithNotBefore(now.Add(time.Hour))),
		"issued in the future":  mint("iat token", clerktest.WithClaim("iat", now.Add(time.Hour).Unix())),
		"other issuer":          mint("iss token", clerktest.WithClaim("iss", "https://clerk.other.test")),
		"other party":           mint("azp token", clerktest.WithAuthorizedParty("https://evil.test")),
		"template":              mint("template token", clerktest.WithTemplate("hasura")),
		"machine":               mint("machine token", clerktest.WithMachine()),
		"pending":               mint("pending token", clerktest.WithPending()),
		"alg confusion":         mint("HS256 token", clerktest.WithAlgorithm("HS256")),
		"unknown kid":           mint("unknown-kid token", clerktest.WithSigningKey(foreignKid)),
		"bad signature":         mint("forged token", clerktest.WithSigningKey(sameKid)),
		"member":                mint("member token", clerktest.WithOrg(member)),
		"revoked":               mint("revoked-session token", clerktest.WithSession(revokedSID)),
		"garbage":               ss.token("garbage token", "garbageGarbage.garbageGarbage.garbageGarbage"),
		"huge":                  ss.token("huge token", strings.Repeat("A", 17<<10)),
		"kid with quotes":       mint("quoted-kid token", clerktest.WithHeader("kid", "ins_\"quoted\"\n")),
		"no sid (template-ish)": mint("sid-less token", clerktest.WithoutClaim("sid")),
	}
	if err := inst.SetSessionStatus(revokedSID, "revoked"); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/", "/public/x", "/optional/x", "/org", "/role", "/perm", "/strict", "/template", "/_sessiongate/auth"}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(where, method, path string, header http.Header, body io.Reader) {
		req, _ := http.NewRequest(method, h.proxyURL+path, body)
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := noRedirect.Do(req)
		ss.response(where, resp, err)
	}
	for name, tok := range tokens {
		for _, path := range paths {
			fa := http.Header{"X-Forwarded-Uri": {"/org"}}
			send(name+" header "+path, "GET", path, http.Header{"Authorization": {"Bearer " + tok}, "X-Forwarded-Uri": fa["X-Forwarded-Uri"]}, nil)
			send(name+" cookie "+path, "GET", path, http.Header{"Cookie": {"other=" + cookieValue + "; __session=" + tok}, "X-Forwarded-Uri": fa["X-Forwarded-Uri"]}, nil)
		}
	}
	valid := tokens["valid"]
	send("no token", "GET", "/", http.Header{"Cookie": {"other=" + cookieValue}}, nil)
	send("two Authorization headers", "GET", "/", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + tokens["expired"]}}, nil)
	send("navigation signed out", "GET", "/", http.Header{"Sec-Fetch-Dest": {"document"}, "Cookie": {"__session=" + tokens["expired"]}}, nil)
	send("upstream panic", "GET", "/panic", http.Header{"Authorization": {"Bearer " + valid}, "Cookie": {"other=" + cookieValue}}, nil)
	send("upstream abort", "GET", "/abort", http.Header{"Authorization": {"Bearer " + valid}}, nil)
	send("unclean path", "GET", "/public/../x", http.Header{"Authorization": {"Bearer " + valid}}, nil)
	send("reserved path", "GET", "/_sessiongate/nope", http.Header{"Authorization": {"Bearer " + valid}}, nil)

	// Backend API failures: session lookups and template minting.
	inst.SetAPIBehavior(clerktest.ServerError)
	sid2 := inst.CreateSession("user_secrets2")
	v2 := mint("second valid token", clerktest.WithSession(sid2))
	for _, p := range []string{"/strict", "/template"} {
		send("Backend API 500 "+p, "GET", p, http.Header{"Authorization": {"Bearer " + v2}}, nil)
	}
	inst.SetAPIBehavior(clerktest.Normal)

	// Webhooks: valid, wrong secret, signed garbage body, missing headers,
	// stale timestamp.
	hookURL := h.proxyURL + "/_sessiongate/webhooks/clerk"
	ctx := context.Background()
	resp, err := inst.SendWebhook(ctx, hookURL, whSecret, "session.revoked", sid)
	ss.response("webhook valid", resp, err)
	resp, err = inst.SendWebhook(ctx, hookURL, "whsec_"+base64.StdEncoding.EncodeToString([]byte("not-the-secret")), "session.revoked", sid2)
	ss.response("webhook wrong secret", resp, err)
	for _, tc := range []struct {
		name string
		body string
		ts   time.Time
	}{
		{"webhook bad body", `{"type":"session.revoked","data":` + valid, now},
		{"webhook bad session id", `{"type":"session.revoked","data":{"id":"` + valid + `"}}`, now},
		{"webhook stale", `{"type":"session.revoked","data":{"id":"sess_x"}}`, now.Add(-time.Hour)},
	} {
		id := "msg_" + strings.ReplaceAll(tc.name, " ", "_")
		sig, err := webhook.Sign(whSecret, id, tc.ts, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		send(tc.name, "POST", "/_sessiongate/webhooks/clerk", http.Header{
			"Svix-Id": {id}, "Svix-Timestamp": {fmt.Sprint(tc.ts.Unix())}, "Svix-Signature": {sig},
		}, strings.NewReader(tc.body))
	}
	send("webhook no headers", "POST", "/_sessiongate/webhooks/clerk", nil, strings.NewReader(`{}`))
	send("webhook GET", "GET", "/_sessiongate/webhooks/clerk", nil, nil)

	// Admin listener: refusals, metrics, revoke with Clerk failing.
	admin := func(where, method, path, auth string) {
		req, _ := http.NewRequest(method, h.adminURL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		ss.response(where, resp, err)
	}
	admin("admin metrics without token", "GET", "/metrics", "")
	admin("admin metrics wrong token", "GET", "/metrics", "Bearer "+adminToken+"x")
	admin("admin metrics", "GET", "/metrics", "Bearer "+adminToken)
	admin("admin revoke", "POST", "/sessions/"+sid2+"/revoke", "Bearer "+adminToken)
	inst.SetAPIBehavior(clerktest.ServerError)
	admin("admin revoke with Clerk failing", "POST", "/sessions/"+inst.CreateSession("")+"/revoke", "Bearer "+adminToken)
	admin("admin revoke bad id", "POST", "/sessions/"+valid[:40]+"/revoke", "Bearer "+adminToken)
	inst.SetAPIBehavior(clerktest.Normal)
	admin("readyz", "GET", "/readyz", "")
	ss.logs("main app", h)

	// A wrong secret key: the Backend API answers 401 to every lookup.
	wrong := hzStart(t, hzOptions{clerk: inst, httpClient: clerkClient(), config: func(c *config.Config, i *clerktest.Instance) {
		c.Clerk.SecretKey = config.Secret(wrongSecret)
		c.Clerk.JWKSURL = i.FrontendJWKSURL()
		c.Routes = []config.Route{{Path: "/", SessionCheck: config.SessionCheckStrict}}
	}})
	wrong.waitReady(t, 200)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", wrong.proxyURL+"/", nil)
		req.Header.Set("Authorization", "Bearer "+valid)
		resp, err := http.DefaultClient.Do(req)
		ss.response("Backend API 401 (wrong secret key)", resp, err)
	}
	ss.logs("wrong-secret app", wrong)

	// No keys: the JWKS (behind the secret key) fails at start-up.
	dark := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	ss.secret("second secret key", dark.SecretKey())
	down := hzStart(t, hzOptions{clerk: dark, httpClient: clerkClient(), beforeStart: func(i *clerktest.Instance) {
		i.SetJWKSBehavior(clerktest.ServerError)
	}})
	down.waitReady(t, 503)
	req, _ := http.NewRequest("GET", down.proxyURL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+ss.token("no-keys token", dark.MustMint(t)))
	resp, err = http.DefaultClient.Do(req)
	ss.response("no keys", resp, err)
	ss.logs("no-keys app", down)

	// Configuration errors with secrets in the file.
	dir := t.TempDir()
	redisURL := "redis://:RedisPassw0rdSecretValue@127.0.0.1:6379/0"
	ss.secret("redis password", "RedisPassw0rdSecretValue")
	// api_url on a closed loopback port: an app built from one of these
	// files must not send the secret key anywhere real.
	base := "clerk:\n  issuer: https://clerk.example.com\n  api_url: http://127.0.0.1:9\n  secret_key: " + inst.SecretKey() +
		"\n  webhook_secret: " + whSecret + "\nadmin_token: " + adminToken + "\nupstream: http://127.0.0.1:3000\n"
	for i, body := range []string{
		base + "listen: nope\n",
		base + "bogus: 1\n",
		base + "clerk_extra: {clock_skew: 10}\n",
		strings.Replace(base, "issuer: https://clerk.example.com", "issuer: https://clerk.example.com/", 1),
		strings.Replace(base, inst.SecretKey(), "pk_live_"+inst.SecretKey(), 1),
		strings.Replace(base, whSecret, whSecret+"!!", 1),
		base + "admin_listen: 0.0.0.0:9090\nserver: {max_header_bytes: 1}\n",
		base + "revocation: {store: redis, redis_url: '" + redisURL + "'}\n",
		base + "revocation: {store: nope, redis_url: '" + redisURL + "'}\n",
		"clerk: {secret_key: [" + inst.SecretKey() + "]}\n",
		"clerk: {secret_key: " + inst.SecretKey() + ", clock_skew: 10, webhook_secret: " + whSecret + "}\n",
		"clerk: {secret_key: !!int " + inst.SecretKey() + "}\n",
		"admin_token: {a: " + adminToken + "}\n",
	} {
		p := filepath.Join(dir, fmt.Sprintf("bad%d.yaml", i))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Sources{File: p, Env: func(string) (string, bool) { return "", false }})
		if err == nil {
			// Valid for config: the app refuses it (unsupported settings).
			// Valid for config (a Redis store, say): what the app logs and
			// what `config check` prints must hold no secret either.
			logs := &lockedBuffer{}
			a, err := app.New(cfg, app.Options{Logger: zap.New(zapcoreTo(logs))})
			if err == nil {
				a.Close()
			} else {
				ss.output(fmt.Sprintf("config %d app error", i), err.Error())
			}
			ss.output(fmt.Sprintf("config %d app logs", i), logs.String())
			red, _ := cfg.Redacted()
			ss.output(fmt.Sprintf("config %d redacted", i), string(red))
			continue
		}
		ss.output(fmt.Sprintf("config %d error", i), err.Error())
	}
	ss.check(t)
}

// zapcoreTo is a debug-level JSON core writing to w.
func zapcoreTo(w io.Writer) zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(w), zap.DebugLevel)
}

// lockedBuffer is a log sink that background goroutines may write to while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex // guards following
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
