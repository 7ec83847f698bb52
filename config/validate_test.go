package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidConfigPasses(t *testing.T) {
	t.Parallel()
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	route := func(c *Config, i int) *Route {
		for len(c.Routes) <= i {
			c.Routes = append(c.Routes, Route{Path: "/r" + string(rune('a'+len(c.Routes))), Upstream: c.Upstream})
		}
		return &c.Routes[i]
	}
	yes := true
	tests := []struct {
		name   string
		mutate func(c *Config)
		key    string
		msg    string
	}{
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, "listen", "host:port"},
		{"listen bad port", func(c *Config) { c.Listen = ":http99" }, "listen", "port"},
		{"admin_listen not host:port", func(c *Config) { c.AdminListen = "9090" }, "admin_listen", "host:port"},
		{"admin on all interfaces without token", func(c *Config) { c.AdminListen = ":9090" }, "admin_token", "loopback"},
		{"pprof without admin token", func(c *Config) { c.AdminPprof = true }, "admin_pprof", "requires admin_token"},
		{"pprof without admin listener", func(c *Config) { c.AdminPprof = true; c.AdminToken = "t"; c.AdminListen = "" }, "admin_pprof", "admin listener"},
		{"admin on public IP without token", func(c *Config) { c.AdminListen = "10.0.0.1:9090" }, "admin_token", "loopback"},
		{"no issuer and no publishable key", func(c *Config) { c.Clerk.Issuer = "" }, "clerk.issuer", "required"},
		{"issuer trailing slash", func(c *Config) { c.Clerk.Issuer = "https://clerk.example.com/" }, "clerk.issuer", `"/"`},
		{"issuer with query", func(c *Config) { c.Clerk.Issuer = "https://clerk.example.com?x=1" }, "clerk.issuer", "query"},
		{"issuer with fragment", func(c *Config) { c.Clerk.Issuer = "https://clerk.example.com#x" }, "clerk.issuer", "fragment"},
		{"issuer not absolute", func(c *Config) { c.Clerk.Issuer = "clerk.example.com" }, "clerk.issuer", "absolute"},
		{"issuer plain http remote keys", func(c *Config) { c.Clerk.Issuer = "http://clerk.example.com" }, "clerk.issuer", "http://"},
		{"issuer not matching pk", func(c *Config) { c.Clerk.PublishableKey = pkLivePuma }, "clerk.issuer", "does not match"},
		{"api_url not URL", func(c *Config) { c.Clerk.APIURL = "api.clerk.com" }, "clerk.api_url", "absolute"},
		{"api_url cleartext", func(c *Config) { c.Clerk.APIURL = "http://api.clerk.com" }, "clerk.api_url", "loopback"},
		{"jwks_url cleartext non-loopback", func(c *Config) { c.Clerk.JWKSURL = "http://keys.example.com/jwks" }, "clerk.jwks_url", "loopback"},
		{"jwks_url ftp", func(c *Config) { c.Clerk.JWKSURL = "ftp://keys.example.com/jwks" }, "clerk.jwks_url", "http(s)"},
		{"proxy_url path without a secret key", func(c *Config) { c.Clerk.ProxyURL = "/__clerk" }, "clerk.proxy_url", "clerk.secret_key"},
		{"proxy_url not a URL or path", func(c *Config) { c.Clerk.ProxyURL = "app.example.com/__clerk" }, "clerk.proxy_url", "absolute"},
		{"sign_in_url relative", func(c *Config) { c.SignInURL = "/sign-in" }, "sign_in_url", "absolute"},
		{"public_origin with path", func(c *Config) { c.PublicOrigin = "https://app.example.com/app" }, "public_origin", "path"},
		{"public_origin trailing slash", func(c *Config) { c.PublicOrigin = "https://app.example.com/" }, "public_origin", "trailing"},
		{"jwt_key garbage", func(c *Config) { c.Clerk.JWTKey = "not a key" }, "clerk.jwt_key", "jwks: static key"},
		{"secret_key wrong prefix", func(c *Config) { c.Clerk.SecretKey = "pk_live_x" }, "clerk.secret_key", "sk_live_"},
		{"secret and publishable of different instances", func(c *Config) {
			c.Clerk.Issuer, c.Clerk.PublishableKey, c.Clerk.SecretKey = "", pkLivePuma, "sk_test_x"
		}, "clerk.secret_key", "same instance"},
		{"publishable_key invalid", func(c *Config) { c.Clerk.PublishableKey = "pk_live_bm9wZQ" }, "clerk.publishable_key", "$"},
		{"webhook_secret no prefix", func(c *Config) { c.Clerk.WebhookSecret = "c2VjcmV0" }, "clerk.webhook_secret", "whsec_"},
		{"webhook_secret not base64", func(c *Config) { c.Clerk.WebhookSecret = "whsec_!!!" }, "clerk.webhook_secret", "base64"},
		{"authorized party with path", func(c *Config) {
			c.Clerk.AuthorizedParties = []string{"https://ok.example.com", "https://app.example.com/x"}
		}, "clerk.authorized_parties[1]", "origin"},
		{"authorized party trailing slash", func(c *Config) { c.Clerk.AuthorizedParties = []string{"https://app.example.com/"} }, "clerk.authorized_parties[0]", "trailing"},
		{"clock_skew negative", func(c *Config) { c.Clerk.ClockSkew = Duration(-time.Second) }, "clerk.clock_skew", "negative"},
		{"clock_skew too large", func(c *Config) { c.Clerk.ClockSkew = Duration(6 * time.Minute) }, "clerk.clock_skew", "5m"},
		{"jwks min refresh above refresh", func(c *Config) { c.JWKS.MinRefreshInterval = Duration(10 * time.Minute) }, "jwks.min_refresh_interval", "refresh_interval"},
		{"jwks max_stale below refresh", func(c *Config) { c.JWKS.MaxStale = Duration(time.Minute) }, "jwks.max_stale", "refresh_interval"},
		{"jwks refresh zero", func(c *Config) { c.JWKS.RefreshInterval = 0 }, "jwks.refresh_interval", "more than 0"},
		{"negative token cache", func(c *Config) { c.Cache.Tokens = -1 }, "cache.tokens", "negative"},
		{"negative session cache", func(c *Config) { c.Cache.Sessions = -1 }, "cache.sessions", "negative"},
		{"session_ttl zero with cached route", func(c *Config) {
			c.Clerk.SecretKey = "sk_test_x"
			c.Cache.SessionTTL = 0
			route(c, 0).SessionCheck = SessionCheckCached
		}, "cache.session_ttl", "routes[0]"},
		{"negative session_ttl", func(c *Config) { c.Cache.SessionTTL = Duration(-time.Second) }, "cache.session_ttl", "negative"},
		{"header prefix empty", func(c *Config) { c.Headers.Prefix = "" }, "headers.prefix", "required"},
		{"header prefix not a token", func(c *Config) { c.Headers.Prefix = "X Auth-" }, "headers.prefix", "header-name"},
		{"header prefix without dash", func(c *Config) { c.Headers.Prefix = "X-Auth" }, "headers.prefix", `"-"`},
		{"revocation store unknown", func(c *Config) { c.Revocation.Store = "etcd" }, "revocation.store", "memory, redis"},
		{"redis store without url", func(c *Config) { c.Revocation.Store = "redis" }, "revocation.redis_url", "required"},
		{"redis url wrong scheme", func(c *Config) { c.Revocation.RedisURL = "http://cache:6379" }, "revocation.redis_url", "redis://"},
		{"redis url without host", func(c *Config) { c.Revocation.RedisURL = "redis://:pw@:6379" }, "revocation.redis_url", "host"},
		{"redis sentinel without master", func(c *Config) { c.Revocation.RedisURL = "redis+sentinel://s1:26379,s2:26379" }, "revocation.redis_url", "master_name"},
		{"redis url unknown option", func(c *Config) { c.Revocation.RedisURL = "redis://cache?colour=blue" }, "revocation.redis_url", "colour"},
		{"redis url bad database", func(c *Config) { c.Revocation.RedisURL = "rediss://cache/zero" }, "revocation.redis_url", "database"},
		{"redis several hosts without topology", func(c *Config) { c.Revocation.RedisURL = "redis://a:6379,b:6379" }, "revocation.redis_url", "redis+cluster://"},
		{"cache shared without redis", func(c *Config) { c.Cache.Shared = true }, "cache.shared", "redis_url"},
		{"redis required but unused", func(c *Config) { c.Revocation.RedisURL, c.Revocation.Required = "redis://cache", true }, "revocation.required", "revocation.store redis"},
		{"revocation ttl below token lifetime", func(c *Config) { c.Revocation.TTL = Duration(30 * time.Second) }, "revocation.ttl", "60"},
		{"trusted proxy garbage", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"} }, "trusted_proxies[1]", "CIDR"},
		{"log level unknown", func(c *Config) { c.Log.Level = "verbose" }, "log.level", "debug"},
		{"read header timeout zero", func(c *Config) { c.Server.ReadHeaderTimeout = 0 }, "server.read_header_timeout", "more than 0"},
		{"shutdown timeout negative", func(c *Config) { c.Server.ShutdownTimeout = Duration(-1) }, "server.shutdown_timeout", "negative"},
		{"upstream timeout zero", func(c *Config) { c.Server.UpstreamTimeout = 0 }, "server.upstream_timeout", "more than 0"},
		{"max header bytes tiny", func(c *Config) { c.Server.MaxHeaderBytes = 1024 }, "server.max_header_bytes", "4096"},
		{"no routes no upstream", func(c *Config) { c.Upstream, c.Routes = "", nil }, "upstream", "no upstream: set upstream, SESSIONGATE_UPSTREAM or routes"},
		{"top-level upstream bad", func(c *Config) { c.Upstream = "127.0.0.1:3000" }, "upstream", "http(s)"},
		{"route path relative", func(c *Config) { route(c, 1).Path = "api" }, "routes[1].path", "start with /"},
		{"route path dotdot", func(c *Config) { route(c, 1).Path = "/api/../admin" }, "routes[1].path", ".."},
		{"route path double slash", func(c *Config) { route(c, 1).Path = "/api//x" }, "routes[1].path", "//"},
		{"route path query", func(c *Config) { route(c, 1).Path = "/api?x" }, "routes[1].path", "?"},
		{"route path empty", func(c *Config) { route(c, 1).Path = "" }, "routes[1].path", "required"},
		{"route upstream missing where another has one", func(c *Config) { route(c, 1); c.Upstream = ""; route(c, 0).Upstream = "" }, "routes[0].upstream", "required"},
		{"route upstream with query", func(c *Config) { route(c, 2).Upstream = "http://a.internal/?x=1" }, "routes[2].upstream", "query"},
		{"route upstream with fragment", func(c *Config) { route(c, 2).Upstream = "http://a.internal/#x" }, "routes[2].upstream", "fragment"},
		{"route upstream with user info", func(c *Config) { route(c, 2).Upstream = "http://u:p@a.internal/" }, "routes[2].upstream", "user info"},
		{"route upstream not http", func(c *Config) { route(c, 2).Upstream = "unix:///tmp/s" }, "routes[2].upstream", "http://, https:// or h2c://"},
		{"route auth unknown", func(c *Config) { route(c, 1).Auth = "maybe" }, "routes[1].auth", "public, optional, required"},
		{"route session_check unknown", func(c *Config) { route(c, 1).SessionCheck = "always" }, "routes[1].session_check", "off, cached, strict"},
		{"route on_error unknown", func(c *Config) { route(c, 1).OnSessionCheckError = "retry" }, "routes[1].on_session_check_error", "deny, allow"},
		{"session_check without secret", func(c *Config) { route(c, 1).SessionCheck = SessionCheckStrict }, "routes[1].session_check", "clerk.secret_key"},
		{"token_template without secret", func(c *Config) { route(c, 1).TokenTemplate = "upstream" }, "routes[1].token_template", "clerk.secret_key"},
		{"require on public route", func(c *Config) {
			r := route(c, 1)
			r.Auth, r.Require.Org = AuthPublic, true
		}, "routes[1].require", "public"},
		{"empty role", func(c *Config) { route(c, 1).Require.Roles = []string{"admin", " "} }, "routes[1].require.roles[1]", "empty"},
		{"duplicate route", func(c *Config) {
			route(c, 1).Path = "/api"
			route(c, 2).Path = "/api/"
		}, "routes[2].path", "overlaps routes[1]"},
		{"route overlapping a case-insensitive one", func(c *Config) {
			route(c, 1).Path = "/Admin"
			route(c, 2).Path = "/admin"
			route(c, 2).CaseInsensitive = true
		}, "routes[2].path", "overlaps routes[1] when case is ignored"},
		{"negative nonce rate", func(c *Config) { c.Clerk.HandshakeNonceRate = -1 }, "clerk.handshake_nonce_rate", "0"},
		{"negative nonce burst", func(c *Config) { c.Clerk.HandshakeNonceBurst = -1 }, "clerk.handshake_nonce_burst", "negative"},
		{"semicolon in a route path", func(c *Config) { route(c, 1).Path = "/admin;x" }, "routes[1].path", `";"`},
		{"backslash in a route path", func(c *Config) { route(c, 1).Path = `/admin\x` }, "routes[1].path", "backslash"},
		{"host with port", func(c *Config) { route(c, 1).Host = "app.example.com:443" }, "routes[1].host", "port"},
		{"host with scheme", func(c *Config) { route(c, 1).Host = "https://app.example.com" }, "routes[1].host", "scheme"},
		{"handshake without publishable key", func(c *Config) { route(c, 0).Handshake = &yes }, "routes[0].handshake", "publishable_key"},
		{"handshake on public route", func(c *Config) {
			r := route(c, 1)
			r.Auth, r.Handshake = AuthPublic, &yes
		}, "routes[1].handshake", "public"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			c.Normalize()
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			if keys := problemKeys(t, err); !hasKey(keys, tt.key) {
				t.Fatalf("problems %v do not name %s:\n%v", keys, tt.key, err)
			}
			for _, line := range strings.Split(err.Error(), "\n")[1:] {
				if strings.HasPrefix(line, tt.key+": ") {
					mustContain(t, line, tt.msg)
					return
				}
			}
			t.Errorf("no line starts with %q:\n%v", tt.key+": ", err)
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Listen = "nope"
	c.Log.Level = "loud"
	c.Routes[0].Auth = "maybe"
	err := c.Validate()
	keys := problemKeys(t, err)
	for _, k := range []string{"listen", "log.level", "routes[0].auth"} {
		if !hasKey(keys, k) {
			t.Errorf("%v lacks %s", keys, k)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != len(keys) {
		t.Errorf("%d lines for %d problems:\n%v", n, len(keys), err)
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"admin on loopback v6", func(c *Config) { c.AdminListen = "[::1]:9090" }},
		{"admin on localhost", func(c *Config) { c.AdminListen = "localhost:9090" }},
		{"admin public with token", func(c *Config) { c.AdminListen = ":9090"; c.AdminToken = "t0ken" }},
		{"admin disabled", func(c *Config) { c.AdminListen = "" }},
		{"jwks over http on loopback", func(c *Config) { c.Clerk.JWKSURL = "http://127.0.0.1:8000/jwks" }},
		{"http issuer on loopback", func(c *Config) { c.Clerk.Issuer = "http://127.0.0.1:4000" }},
		{"static key", func(c *Config) { c.Clerk.JWTKey = rsaPEM(t, 2048) }},
		{"pk_test with handshake off", func(c *Config) {
			c.Clerk.Issuer, c.Clerk.PublishableKey = "", pkTestPuma
			c.Routes[0].Handshake = &no
		}},
		{"pk_test with default handshake", func(c *Config) { c.Clerk.Issuer, c.Clerk.PublishableKey = "", pkTestPuma }},
		{"pk_test with handshake on", func(c *Config) {
			c.Clerk.Issuer, c.Clerk.PublishableKey = "", pkTestPuma
			c.Routes[0].Handshake = &yes
		}},
		{"redis revocation", func(c *Config) { c.Revocation.Store, c.Revocation.RedisURL = "redis", "rediss://:pw@cache:6380/0" }},
		{"redis sentinel", func(c *Config) {
			c.Revocation.Store, c.Revocation.RedisURL = "redis", "redis+sentinel://s1:26379,s2:26379/1?master_name=mymaster&password=pw"
		}},
		{"redis cluster over TLS", func(c *Config) {
			c.Revocation.Store, c.Revocation.RedisURL, c.Cache.Shared = "redis", "rediss+cluster://u:pw@n1:7000,n2:7000", true
		}},
		{"webhook secret", func(c *Config) { c.Clerk.WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }},
		{"same path different hosts", func(c *Config) {
			c.Routes = append(c.Routes, Route{Path: "/", Host: "Admin.Example.com"}, Route{Path: "/", Host: "api.example.com"})
		}},
		{"cached session check", func(c *Config) {
			c.Clerk.SecretKey = "sk_test_abc"
			c.Routes[0].SessionCheck = SessionCheckCached
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			c.Normalize()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateRejectsShortStaticKey(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Clerk.JWTKey = rsaPEM(t, 1024)
	keys := problemKeys(t, c.Validate())
	if !hasKey(keys, "clerk.jwt_key") {
		t.Errorf("1024-bit key accepted: %v", keys)
	}
}

func TestDuplicateRoutePolicyDiff(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Routes = []Route{{Path: "/api"}, {Path: "/API/x"}, {Path: "/api/", Auth: AuthPublic}, {Path: "/api", Host: "x.example.com"}, {Path: "/api"}}
	c.Normalize()
	err := c.Validate()
	mustContain(t, err.Error(),
		"routes[2].path: overlaps routes[0] (same path and host), with a different policy",
		"routes[4].path: overlaps routes[0] (same path and host), with the same policy")
	if keys := problemKeys(t, err); len(keys) != 2 {
		t.Errorf("problems %v, want 2", keys)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const mark = "ZQXJ7SECRETMARK"
	c := validConfig()
	c.AdminListen = "0.0.0.0:9090"
	c.AdminToken = "tok-" + mark
	c.Clerk.SecretKey = Secret("bad_" + mark) // invalid: must not be echoed
	c.Clerk.WebhookSecret = Secret("whsec_" + mark + "!!")
	c.Revocation.RedisURL = Secret("http://user:" + mark + "@cache:6379")
	c.Revocation.Store = "redis"
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), mark) {
		t.Errorf("Validate error leaks a secret:\n%v", err)
	}
	for _, k := range []string{"clerk.secret_key", "clerk.webhook_secret", "revocation.redis_url"} {
		if !hasKey(problemKeys(t, err), k) {
			t.Errorf("no problem for %s", k)
		}
	}

	// A valid config, loaded from a file and the environment.
	p := writeFile(t, minimalFile+"admin_token: tok-"+mark+"\nrevocation: {redis_url: \"redis://:"+mark+"@cache:6379\"}\n")
	ok, err := Load(Sources{File: p, Env: envMap("CLERK_SECRET_KEY", "sk_test_"+mark, "CLERK_WEBHOOK_SIGNING_SECRET", "whsec_"+encodeStd(mark))})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Clerk.SecretKey.Reveal() != "sk_test_"+mark {
		t.Fatal("secret key not loaded")
	}
	out, err := ok.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(out), fmtAll(ok), fmtAll(*ok)} {
		if strings.Contains(s, mark) || strings.Contains(s, encodeStd(mark)) {
			t.Errorf("secret leaked:\n%s", s)
		}
	}
	mustContain(t, string(out), "secret_key: REDACTED", "webhook_secret: REDACTED", "admin_token: REDACTED", "redis_url: REDACTED",
		"upstream: http://127.0.0.1:3000", "forward_token: true", "handshake: false", "clock_skew: 5s")
}

func TestKeySource(t *testing.T) {
	t.Parallel()
	pemKey := rsaPEM(t, 2048)
	tests := []struct {
		name       string
		mutate     func(c *Config)
		kind, url  string
		sendSecret bool
	}{
		{"static key wins", func(c *Config) {
			c.Clerk.JWTKey, c.Clerk.JWKSURL, c.Clerk.SecretKey = pemKey, "https://keys.example.com/jwks", "sk_live_x"
		}, "static", "", false},
		{"explicit jwks_url", func(c *Config) {
			c.Clerk.JWKSURL, c.Clerk.SecretKey = "https://keys.example.com/jwks", "sk_live_x"
		}, "remote", "https://keys.example.com/jwks", false},
		{"backend api with secret", func(c *Config) { c.Clerk.SecretKey = "sk_live_x" }, "remote", "https://api.clerk.com/v1/jwks", true},
		{"backend api trailing slash", func(c *Config) {
			c.Clerk.SecretKey, c.Clerk.APIURL = "sk_live_x", "https://api.clerk.com/"
		}, "remote", "https://api.clerk.com/v1/jwks", true},
		{"explicit jwks_url naming the backend api", func(c *Config) {
			c.Clerk.SecretKey, c.Clerk.JWKSURL = "sk_live_x", "https://api.clerk.com/v1/jwks"
		}, "remote", "https://api.clerk.com/v1/jwks", true},
		{"issuer well-known", func(c *Config) {}, "remote", "https://clerk.example.com/.well-known/jwks.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(&c)
			c.Normalize()
			kind, u := c.KeySource()
			if kind != tt.kind || u != tt.url || c.UsesSecretForJWKS() != tt.sendSecret {
				t.Errorf("KeySource = %q %q, UsesSecretForJWKS = %v; want %q %q %v", kind, u, c.UsesSecretForJWKS(), tt.kind, tt.url, tt.sendSecret)
			}
		})
	}
}

func TestHandshakeEnabled(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	live := &Config{Clerk: Clerk{PublishableKey: pkLivePuma}}
	test := &Config{Clerk: Clerk{PublishableKey: pkTestPuma}}
	none := &Config{}
	tests := []struct {
		name string
		r    Route
		c    *Config
		want bool
	}{
		{"required + pk_live defaults on", Route{Auth: AuthRequired}, live, true},
		{"optional + pk_live defaults on", Route{Auth: AuthOptional}, live, true},
		{"public never", Route{Auth: AuthPublic, Handshake: &yes}, live, false},
		{"explicit off", Route{Auth: AuthRequired, Handshake: &no}, live, false},
		{"pk_test defaults on (development instances run the dev-browser flow)", Route{Auth: AuthRequired}, test, true},
		{"no publishable key defaults off", Route{Auth: AuthRequired}, none, false},
		{"explicit on", Route{Auth: AuthRequired, Handshake: &yes}, none, true},
	}
	for _, tt := range tests {
		if got := tt.r.HandshakeEnabled(tt.c); got != tt.want {
			t.Errorf("%s: got %v", tt.name, got)
		}
	}
}

func TestIssuerDerivedFromPublishableKey(t *testing.T) {
	t.Parallel()
	c, err := Load(Sources{Env: envMap(
		"SESSIONGATE_UPSTREAM", "http://127.0.0.1:3000",
		"CLERK_PUBLISHABLE_KEY", pkLivePuma,
		"SESSIONGATE_PUBLIC_ORIGIN", "https://app.example.com",
	), Flags: Overrides{}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Clerk.Issuer != "https://clerk.inspired.puma-74.lcl.dev" {
		t.Errorf("issuer = %q", c.Clerk.Issuer)
	}
	if !c.Routes[0].HandshakeEnabled(c) {
		t.Error("pk_live required route: handshake should default on")
	}
	// proxy_url changes where handshakes go, not the issuer.
	p := writeFile(t, "upstream: http://127.0.0.1:3000\nclerk:\n  publishable_key: "+pkLivePuma+"\n  proxy_url: https://app.example.com/__clerk\n")
	c, err = Load(Sources{File: p, Env: envMap()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Clerk.Issuer != "https://clerk.inspired.puma-74.lcl.dev" {
		t.Errorf("with proxy_url, issuer = %q", c.Clerk.Issuer)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults()
	if d.Listen != ":8080" || d.AdminListen != "127.0.0.1:9090" || d.Clerk.APIURL != "https://api.clerk.com" ||
		d.Clerk.ClockSkew.D() != 5*time.Second || d.Cache.Tokens != 100000 || d.Headers.Prefix != "X-Sessiongate-" ||
		d.Revocation.Store != "memory" || d.Revocation.TTL.D() != time.Hour || d.Server.MaxHeaderBytes != 65536 ||
		d.Log.Level != "info" || d.Log.Access == nil || !*d.Log.Access {
		t.Errorf("Defaults() = %+v", d)
	}
	// Fresh values each call: no shared mutable state.
	*d.Log.Access = false
	if !*Defaults().Log.Access {
		t.Error("Defaults shares Log.Access")
	}
}
