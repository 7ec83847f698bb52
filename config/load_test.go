package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const minimalFile = `
upstream: http://127.0.0.1:3000
clerk:
  issuer: https://clerk.file.example
`

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	const fileAll = `
listen: ":1111"
upstream: http://file.internal:1
clerk:
  issuer: https://clerk.file.example
`
	type want struct{ listen, upstream, issuer string }
	tests := []struct {
		name  string
		file  string // "" for no file
		env   []string
		flags Overrides
		want  want
	}{
		{
			name: "defaults fill what nothing sets",
			env:  []string{"SESSIONGATE_UPSTREAM", "http://env.internal:2", "SESSIONGATE_ISSUER", "https://clerk.env.example"},
			want: want{":8080", "http://env.internal:2", "https://clerk.env.example"},
		},
		{
			name: "file beats defaults",
			file: fileAll,
			want: want{":1111", "http://file.internal:1", "https://clerk.file.example"},
		},
		{
			name: "env beats file",
			file: fileAll,
			env:  []string{"SESSIONGATE_LISTEN", ":2222", "SESSIONGATE_UPSTREAM", "http://env.internal:2", "SESSIONGATE_ISSUER", "https://clerk.env.example"},
			want: want{":2222", "http://env.internal:2", "https://clerk.env.example"},
		},
		{
			name:  "flags beat env",
			file:  fileAll,
			env:   []string{"SESSIONGATE_LISTEN", ":2222", "SESSIONGATE_UPSTREAM", "http://env.internal:2"},
			flags: Overrides{Listen: ":3333", Upstream: "http://flag.internal:3"},
			want:  want{":3333", "http://flag.internal:3", "https://clerk.file.example"},
		},
		{
			name: "set but empty env does not override",
			file: fileAll,
			env:  []string{"SESSIONGATE_LISTEN", "", "SESSIONGATE_UPSTREAM", "", "SESSIONGATE_ISSUER", ""},
			want: want{":1111", "http://file.internal:1", "https://clerk.file.example"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := Sources{Env: envMap(tt.env...), Flags: tt.flags}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			c, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			got := want{c.Listen, c.Upstream, c.Clerk.Issuer}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if len(c.Routes) != 1 || c.Routes[0].Upstream != tt.want.upstream {
				t.Errorf("routes = %+v, want one route to %s", c.Routes, tt.want.upstream)
			}
		})
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	t.Parallel()
	p := writeFile(t, minimalFile)
	c, err := Load(Sources{Env: envMap("SESSIONGATE_CONFIG", p)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Clerk.Issuer != "https://clerk.file.example" {
		t.Errorf("issuer = %q: SESSIONGATE_CONFIG not read", c.Clerk.Issuer)
	}
	if _, err := Load(Sources{File: p + ".missing", Env: envMap("SESSIONGATE_CONFIG", p)}); err == nil {
		t.Error("Sources.File should win over SESSIONGATE_CONFIG")
	}
}

func TestLoadEnvOnlyIsComplete(t *testing.T) {
	t.Parallel()
	c, err := Load(Sources{Env: envMap(
		"SESSIONGATE_UPSTREAM", "http://127.0.0.1:3000",
		"SESSIONGATE_ISSUER", "https://clerk.example.com",
	)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 {
		t.Fatalf("routes = %+v, want one", c.Routes)
	}
	r := c.Routes[0]
	if r.Path != "/" || r.Auth != AuthRequired || r.SessionCheck != SessionCheckOff ||
		r.OnSessionCheckError != OnErrorDeny || !r.ForwardsToken() || r.Upstream != "http://127.0.0.1:3000" || r.HandshakeEnabled(c) {
		t.Errorf("route = %+v", r)
	}
	if kind, u := c.KeySource(); kind != "remote" || u != "https://clerk.example.com/.well-known/jwks.json" {
		t.Errorf("KeySource = %s %s", kind, u)
	}
}

func TestLoadEnvLists(t *testing.T) {
	t.Parallel()
	c, err := Load(Sources{Env: envMap(
		"SESSIONGATE_UPSTREAM", "http://127.0.0.1:3000",
		"SESSIONGATE_ISSUER", "https://clerk.example.com",
		"SESSIONGATE_AUTHORIZED_PARTIES", " https://a.example.com, ,https://b.example.com ,",
		"SESSIONGATE_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1",
		"SESSIONGATE_LOG_LEVEL", "debug",
	)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Clerk.AuthorizedParties, "|"); got != "https://a.example.com|https://b.example.com" {
		t.Errorf("authorized_parties = %q", got)
	}
	if got := strings.Join(c.TrustedProxies, "|"); got != "10.0.0.0/8|192.168.1.1" {
		t.Errorf("trusted_proxies = %q", got)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q", c.Log.Level)
	}
}

func TestEnvVarsListsEveryVariable(t *testing.T) {
	t.Parallel()
	got := strings.Join(EnvVars(), " ")
	for _, v := range []string{"CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWT_KEY", "CLERK_API_URL",
		"CLERK_WEBHOOK_SIGNING_SECRET", "SESSIONGATE_LISTEN", "SESSIONGATE_ADMIN_LISTEN", "SESSIONGATE_ADMIN_TOKEN",
		"SESSIONGATE_UPSTREAM", "SESSIONGATE_ISSUER", "SESSIONGATE_AUTHORIZED_PARTIES", "SESSIONGATE_SIGN_IN_URL",
		"SESSIONGATE_PUBLIC_ORIGIN", "SESSIONGATE_TRUSTED_PROXIES", "SESSIONGATE_CONFIG", "SESSIONGATE_JWKS_URL",
		"SESSIONGATE_LOG_LEVEL"} {
		if !strings.Contains(" "+got+" ", " "+v+" ") {
			t.Errorf("EnvVars() lacks %s", v)
		}
	}
}

func TestExpandEnv(t *testing.T) {
	t.Parallel()
	env := envMap("HOST", "clerk.example.com", "EMPTY", "")
	tests := []struct{ in, want, err string }{
		{in: "https://${HOST}", want: "https://clerk.example.com"},
		{in: "${UNSET}", want: ""},
		{in: "${UNSET:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${HOST:-fallback}", want: "clerk.example.com"},
		{in: "pa$$word", want: "pa$word"},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost $5 and $", want: "cost $5 and $"},
		{in: "${HOST", err: "unterminated"},
		{in: "${1BAD}", err: "invalid variable reference"},
		{in: "${A:=b}", err: "invalid variable reference"},
	}
	for _, tt := range tests {
		got, err := ExpandEnv(tt.in, env)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ExpandEnv(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ExpandEnv(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestLoadExpandsFile(t *testing.T) {
	t.Parallel()
	pemKey := rsaPEM(t, 2048)
	p := writeFile(t, `
listen: ${LISTEN:-:7070}
admin_listen: ${UNSET_ADMIN}
upstream: ${UP}
headers: {prefix: "X-${PFX}-"}
cache: {tokens: "${TOKENS}"}  # in flow style a reference must be quoted
server:
  max_header_bytes: ${MHB}
log: {level: "${UNSET_LEVEL:-warn}"}
clerk:
  issuer: https://${HOST}
  jwt_key: ${CLERK_JWT_KEY}
  webhook_secret: "whsec_$${NOT_EXPANDED}"  # refused below: not base64
`)
	env := envMap("UP", "http://127.0.0.1:3000", "HOST", "clerk.example.com", "PFX", "Auth",
		"TOKENS", "42", "MHB", "8192", "CLERK_JWT_KEY", pemKey)
	_, err := Load(Sources{File: p, Env: env})
	if keys := problemKeys(t, err); len(keys) != 1 || keys[0] != "clerk.webhook_secret" {
		t.Fatalf("problems = %v, want only clerk.webhook_secret (the $$ escape)", err)
	}
	p2 := strings.Replace(readFile(t, p), `"whsec_$${NOT_EXPANDED}"`, `""`, 1)
	c, err := Load(Sources{File: writeFile(t, p2), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7070" || c.AdminListen != "127.0.0.1:9090" || c.Headers.Prefix != "X-Auth-" ||
		c.Cache.Tokens != 42 || c.Server.MaxHeaderBytes != 8192 || c.Log.Level != "warn" || c.Clerk.Issuer != "https://clerk.example.com" || c.Clerk.JWTKey != pemKey {
		t.Errorf("got listen %q admin %q prefix %q tokens %d issuer %q jwt_key multi-line kept: %v",
			c.Listen, c.AdminListen, c.Headers.Prefix, c.Cache.Tokens, c.Clerk.Issuer, c.Clerk.JWTKey == pemKey)
	}
	if kind, _ := c.KeySource(); kind != "static" {
		t.Errorf("KeySource kind = %s, want static", kind)
	}
}

func TestLoadEnvValueCannotInjectKeys(t *testing.T) {
	t.Parallel()
	p := writeFile(t, minimalFile+"admin_token: ${TOKEN}\n")
	c, err := Load(Sources{File: p, Env: envMap("TOKEN", "x\nadmin_listen: 0.0.0.0:9090")})
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminListen != "127.0.0.1:9090" {
		t.Errorf("admin_listen = %q: an environment value changed the document", c.AdminListen)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown nested key", "clerk:\n  issuer: https://clerk.example.com\n  secrte_key: x\n", []string{"line 3", "clerk.secrte_key: unknown key"}},
		{"unknown top-level key", "upstreams: http://x\n", []string{"line 1", "upstreams: unknown key"}},
		{"unknown route key", "routes:\n  - path: /\n    authh: public\n", []string{"line 3", "routes[0].authh: unknown key"}},
		{"second document", minimalFile + "---\nlisten: ':1'\n", []string{"second YAML document"}},
		{"bare integer duration", "jwks:\n  max_stale: 30\n", []string{"line 2", "jwks.max_stale", `"30" has no unit`}},
		{"bad duration", "clerk: {clock_skew: soon}\n", []string{"clerk.clock_skew", `"soon"`}},
		{"wrong type", "cache: {tokens: many}\n", []string{"line 1"}},
		{"syntax", "listen: [\n", []string{"yaml"}},
		{"bad reference", "listen: ${oops\n", []string{"line 1", "unterminated"}},
		{"duplicate key", "listen: ':1'\nlisten: ':2'\n", []string{"already defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, tt.file)
			_, err := Load(Sources{File: p, Env: envMap()})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			mustContain(t, err.Error(), append(tt.want, p)...)
		})
	}
}

func TestLoadEmptyFile(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "# only a comment\n", "---\n"} {
		p := writeFile(t, body)
		c, err := Load(Sources{File: p, Env: envMap("SESSIONGATE_UPSTREAM", "http://127.0.0.1:1", "SESSIONGATE_ISSUER", "https://clerk.example.com")})
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if c.Listen != ":8080" {
			t.Errorf("%q: listen = %q", body, c.Listen)
		}
	}
}

func TestLoadKeepsUnsetNestedDefaults(t *testing.T) {
	t.Parallel()
	p := writeFile(t, minimalFile+"jwks: {refresh_interval: 1m}\nserver: {dial_timeout: 1s}\n")
	c, err := Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKS.RefreshInterval.D() != time.Minute || c.JWKS.MaxStale.D() != 24*time.Hour || c.JWKS.MinRefreshInterval.D() != 10*time.Second {
		t.Errorf("jwks = %+v", c.JWKS)
	}
	if c.Server.DialTimeout.D() != time.Second || c.Server.IdleTimeout.D() != 120*time.Second {
		t.Errorf("server = %+v", c.Server)
	}
}

func TestLoadRoutes(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
upstream: http://127.0.0.1:3000
clerk:
  publishable_key: `+pkLivePuma+`
  secret_key: sk_live_abc
routes:
  - path: /healthz
    auth: public
  - path: /admin
    upstream: https://admin.internal
    session_check: cached
    require: {roles: [admin, "org:billing"]}
    forward_token: false
  - path: /
    session_check: off
    handshake: false
`)
	c, err := Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Clerk.Issuer != "https://clerk.inspired.puma-74.lcl.dev" {
		t.Errorf("issuer = %q, want derived from pk_live", c.Clerk.Issuer)
	}
	r0, r1, r2 := c.Routes[0], c.Routes[1], c.Routes[2]
	if r0.Upstream != "http://127.0.0.1:3000" || r0.Auth != AuthPublic || r0.HandshakeEnabled(c) {
		t.Errorf("routes[0] = %+v", r0)
	}
	if r1.Upstream != "https://admin.internal" || r1.ForwardsToken() || !r1.HandshakeEnabled(c) ||
		strings.Join(r1.Require.Roles, ",") != "org:admin,org:billing" {
		t.Errorf("routes[1] = %+v", r1)
	}
	if r2.HandshakeEnabled(c) || r2.Auth != AuthRequired {
		t.Errorf("routes[2] = %+v", r2)
	}
	if kind, u := c.KeySource(); kind != "remote" || u != "https://api.clerk.com/v1/jwks" || !c.UsesSecretForJWKS() {
		t.Errorf("KeySource = %s %s uses secret %v", kind, u, c.UsesSecretForJWKS())
	}
}

func TestDurationYAML(t *testing.T) {
	t.Parallel()
	var v struct {
		D Duration `yaml:"d"`
	}
	for in, want := range map[string]time.Duration{"5m": 5 * time.Minute, "250ms": 250 * time.Millisecond, "0": 0, "1h30m": 90 * time.Minute} {
		if err := yaml.Unmarshal([]byte("d: "+in), &v); err != nil || v.D.D() != want {
			t.Errorf("%s: got %v, %v", in, v.D, err)
		}
	}
	for _, in := range []string{"30", "1.5", "soon", "[1]"} {
		err := yaml.Unmarshal([]byte("d: "+in), &v)
		if err == nil {
			t.Errorf("%s: accepted", in)
		} else if in == "30" {
			mustContain(t, err.Error(), `"30"`, "no unit")
		}
	}
	for d, want := range map[time.Duration]string{90 * time.Second: "1m30s", 24 * time.Hour: "24h", 5 * time.Minute: "5m",
		90 * time.Minute: "1h30m", 250 * time.Millisecond: "250ms", 0: "0s"} {
		out, err := yaml.Marshal(struct{ D Duration }{Duration(d)})
		if err != nil || strings.TrimSpace(string(out)) != "d: "+want {
			t.Errorf("Marshal(%v) = %q, %v", d, out, err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const v = "sk_live_TOPSECRETvalue123"
	type holder struct{ S Secret }
	h := holder{S: v}
	if h.S.Reveal() != v {
		t.Error("Reveal lost the value")
	}
	y, _ := yaml.Marshal(h)
	j, _ := json.Marshal(h)
	for _, s := range []string{h.S.String(), string(y), string(j), fmtAll(h), fmtAll(&h)} {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("secret printed: %s", s)
		}
	}
	mustContain(t, string(y), "REDACTED")
	mustContain(t, string(j), `"REDACTED"`)
	var empty Secret
	if empty.String() != "" {
		t.Errorf("empty secret prints %q", empty.String())
	}
	if j, _ := json.Marshal(empty); string(j) != `""` {
		t.Errorf("empty secret JSON %s", j)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := osReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// require.reverification is a preset name or {level, after_minutes};
// headers.claims is a map at the top level and per route.
func TestLoadClaimsAndRequirements(t *testing.T) {
	t.Parallel()
	p := writeFile(t, minimalFile+`
headers:
  claims: {X-User-Email: email}
routes:
  - path: /billing
    headers: {claims: {X-Plan: public_metadata.plan}}
    require:
      features: [org:invoices, export]
      plans: [org:pro, org:enterprise]
      reverification: strict
  - path: /admin
    require:
      reverification: {level: multi_factor, after_minutes: 30}
  - path: /
`)
	c, err := Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Headers.Claims["X-User-Email"] != "email" || c.Routes[0].Headers.Claims["X-Plan"] != "public_metadata.plan" {
		t.Errorf("claims %v / %v", c.Headers.Claims, c.Routes[0].Headers.Claims)
	}
	r0 := c.Routes[0].Require.Requirements()
	if len(r0.Features) != 2 || len(r0.Plans) != 2 || r0.Reverification == nil || r0.Reverification.Preset != "strict" || r0.Reverification.AfterMinutes != 10 {
		t.Errorf("route 0 requirements %+v %+v", r0, r0.Reverification)
	}
	r1 := c.Routes[1].Require.Requirements()
	if r1.Reverification == nil || r1.Reverification.Level != "multi_factor" || r1.Reverification.AfterMinutes != 30 || r1.Reverification.Preset != "" {
		t.Errorf("route 1 reverification %+v", r1.Reverification)
	}
	// The effective configuration prints it back in the form it was read.
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reverification: strict", "after_minutes: 30", "X-User-Email: email"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}

	for _, tc := range []struct{ body, want string }{
		{"routes: [{path: /, require: {reverification: {level: first_factor, minutes: 5}}}]\n", `unknown key "minutes"`},
		{"routes: [{path: /, require: {reverification: [strict]}}]\n", "want a preset"},
		{"routes: [{path: /, require: {reverification: {level: first_factor, after_minutes: soon}}}]\n", "want an integer"},
		// headers.claims names: `config check` names the key and the problem.
		{"headers: {claims: {'X Email': email}}\n", "headers.claims.X Email: \"X Email\" is not a valid header name"},
		{"headers: {claims: {Transfer-Encoding: email}}\n", "headers.claims.Transfer-Encoding: Transfer-Encoding is a hop-by-hop header"},
		{"headers: {claims: {keep_alive: email}}\n", "headers.claims.keep_alive: keep_alive is a hop-by-hop header"},
		{"headers: {claims: {Cookie: email}}\n", "headers.claims.Cookie: Cookie carries credentials"},
		{"headers: {claims: {X-Sessiongate-User-Id: email}}\n", "headers.claims.X-Sessiongate-User-Id: X-Sessiongate-User-Id is an identity header"},
		{"headers: {prefix: X-Auth-, claims: {x_auth_org_role: email}}\n", "headers.claims.x_auth_org_role: x_auth_org_role is an identity header"},
		{"headers: {claims: {X-Email: 'a..b'}}\n", "headers.claims.X-Email: X-Email: claim path \"a..b\" has an empty segment"},
		{"routes: [{path: /, headers: {claims: {Connection: email}}}]\n", "routes[0].headers.claims.Connection: Connection is a hop-by-hop header"},
		{"routes: [{path: /, headers: {claims: {X-Email: email, x_email: name}}}]\n", "routes[0].headers.claims.x_email: \"X-Email\" and \"x_email\" name one header"},
	} {
		_, err := Load(Sources{File: writeFile(t, minimalFile+tc.body), Env: envMap()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.want)
		}
	}
}
