package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/internal/redisurl"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Key string // key path: "clerk.issuer", "routes[2].upstream"
	Msg string // what is wrong, never a secret's value
}

// ValidationError lists every problem Validate found. Its text has one
// "<key path>: <problem>" line per problem, and never a secret's value.
type ValidationError struct {
	Problems []Problem // every problem found, at least one
}

// Error lists the problems, one "<key path>: <problem>" per line after a
// "config: N problem(s):" line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n" + p.Key + ": " + p.Msg)
	}
	return b.String()
}

type problems []Problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Normalize fills derived values; Load calls it before Validate:
//   - no routes and an upstream: one catch-all required route "/";
//   - a route without upstream takes the top-level upstream;
//   - empty route enums take their defaults (required, off, deny) and a nil
//     forward_token becomes true;
//   - roles are written "org:<role>" ("admin" and "org:admin" are one role);
//   - route hosts are lower-cased; a trailing "/" is trimmed from api_url;
//   - an empty clerk.issuer is derived from a valid publishable key as
//     "https://<Frontend API host>" (a production satellite's is
//     clerk.<domain>: FrontendAPIHost). proxy_url does not change it:
//     tokens are still issued by the real Frontend API.
func (c *Config) Normalize() {
	c.Clerk.APIURL = strings.TrimRight(c.Clerk.APIURL, "/")
	if c.Clerk.Issuer == "" && c.Clerk.PublishableKey != "" {
		if pk, msg := parsePK(c.Clerk.PublishableKey); msg == "" {
			c.Clerk.Issuer = "https://" + c.frontendAPIHost(pk)
		}
	}
	if len(c.Routes) == 0 && c.Upstream != "" {
		c.Routes = []Route{{Path: "/"}}
	}
	def := DefaultRoute()
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Upstream == "" {
			r.Upstream = c.Upstream
		}
		if r.Auth == "" {
			r.Auth = def.Auth
		}
		if r.SessionCheck == "" {
			r.SessionCheck = def.SessionCheck
		}
		if r.OnSessionCheckError == "" {
			r.OnSessionCheckError = def.OnSessionCheckError
		}
		if r.ForwardToken == nil {
			t := true
			r.ForwardToken = &t
		}
		r.Host = strings.ToLower(strings.TrimSpace(r.Host))
		for j, role := range r.Require.Roles {
			r.Require.Roles[j] = NormalizeRole(role)
		}
	}
}

// NormalizeRole writes a role as Clerk's claims do: "admin" → "org:admin".
func NormalizeRole(role string) string {
	return clerkwire.OrgName(strings.TrimSpace(role))
}

// HandshakeEnabled reports whether browser navigations on r renew expired
// sessions through Clerk's handshake. Never on a public route; otherwise the
// explicit handshake setting, else on when a valid publishable key is set
// (pk_live_, or pk_test_: a development instance runs Clerk's dev-browser
// flow).
func (r Route) HandshakeEnabled(c *Config) bool {
	if r.AuthPolicy() == proxy.Public {
		return false
	}
	if r.Handshake != nil {
		return *r.Handshake
	}
	if c == nil || c.Clerk.PublishableKey == "" {
		return false
	}
	_, msg := parsePK(c.Clerk.PublishableKey)
	return msg == ""
}

// KeySource says where verification keys come from: ("static", "") with
// clerk.jwt_key; else ("remote", URL): clerk.jwks_url, or with a secret key
// {api_url}/v1/jwks, or {issuer}/.well-known/jwks.json.
func (c *Config) KeySource() (kind, url string) {
	switch {
	case c.Clerk.JWTKey != "":
		return "static", ""
	case c.Clerk.JWKSURL != "":
		return "remote", c.Clerk.JWKSURL
	case c.Clerk.SecretKey != "":
		return "remote", c.backendJWKSURL()
	default:
		return "remote", strings.TrimRight(c.Clerk.Issuer, "/") + "/.well-known/jwks.json"
	}
}

func (c *Config) backendJWKSURL() string {
	return strings.TrimRight(c.Clerk.APIURL, "/") + "/v1/jwks"
}

// UsesSecretForJWKS reports whether the key fetch MUST carry the secret key:
// true only when the key URL is the Backend API's and a secret key is set.
// The secret key MUST NOT be sent to any other host.
func (c *Config) UsesSecretForJWKS() bool {
	kind, u := c.KeySource()
	return kind == "remote" && c.Clerk.SecretKey != "" && u == c.backendJWKSURL()
}

// Validate checks the configuration and returns a *ValidationError listing
// every problem, or nil. It expects a normalized Config (Load normalizes);
// empty route enums are read as their defaults. No error text holds a
// secret's value.
func (c *Config) Validate() error {
	var ps problems
	c.validateTop(&ps)
	c.validateClerk(&ps)
	c.validateTuning(&ps)
	c.validateRoutes(&ps)
	c.validateListener(&ps)
	c.validateConnections(&ps) // connections.go
	c.validateTracing(&ps)     // tracing.go
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

func (c *Config) validateTop(ps *problems) {
	if c.Listen == "" {
		ps.add("listen", "required (host:port, e.g. :8080)")
	} else if _, msg := hostPort(c.Listen); msg != "" {
		ps.add("listen", "%s", msg)
	}
	if c.AdminListen != "" {
		host, msg := hostPort(c.AdminListen)
		if msg != "" {
			ps.add("admin_listen", "%s", msg)
		} else if !netutil.IsLoopbackHost(host) && c.AdminToken == "" {
			ps.add("admin_token", "required when admin_listen (%s) is not a loopback address", c.AdminListen)
		}
	}
	if c.MetricsToken != "" && c.MetricsToken == c.AdminToken {
		// Compared here, at start-up only; the value is never printed.
		ps.add("metrics_token", "must differ from admin_token: the scrape credential must not be able to revoke sessions")
	}
	if c.AdminPprof {
		if c.AdminListen == "" {
			ps.add("admin_pprof", "needs the admin listener (admin_listen is disabled)")
		} else if c.AdminToken == "" {
			ps.add("admin_pprof", "requires admin_token: profiles expose process internals and are never served without it")
		}
	}
	if c.SignInURL != "" {
		if msg := checkURL(c.SignInURL, urlOpts{query: true, path: true}); msg != "" {
			ps.add("sign_in_url", "%s", msg)
		}
	}
	if c.PublicOrigin != "" {
		if msg := checkOrigin(c.PublicOrigin); msg != "" {
			ps.add("public_origin", "%s", msg)
		}
	}
	for i, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		ps.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is neither an IP address nor a CIDR", p)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
}

func (c *Config) validateClerk(ps *problems) {
	k := &c.Clerk
	var pk PublishableKey
	pkOK := false
	if k.PublishableKey != "" {
		var msg string
		if pk, msg = parsePK(k.PublishableKey); msg != "" {
			ps.add("clerk.publishable_key", "%s", msg)
		} else {
			pkOK = true
		}
	}
	switch {
	case k.Issuer == "" && k.PublishableKey == "":
		ps.add("clerk.issuer", "required: set clerk.issuer (SESSIONGATE_ISSUER) or clerk.publishable_key (CLERK_PUBLISHABLE_KEY)")
	case k.Issuer == "":
		if pkOK { // derivable; Load derives it in Normalize
			break
		}
		ps.add("clerk.issuer", "required (the publishable key is invalid, so it cannot be derived)")
	default:
		if msg := checkURL(k.Issuer, urlOpts{path: true}); msg != "" {
			ps.add("clerk.issuer", "%s", msg)
		} else if strings.HasSuffix(k.Issuer, "/") {
			ps.add("clerk.issuer", "must not end with \"/\" (it is compared exactly with the tokens' iss)")
		} else if pkOK {
			u, _ := url.Parse(k.Issuer)
			if want := c.frontendAPIHost(pk); !strings.EqualFold(u.Host, pk.FrontendAPI) && !strings.EqualFold(u.Host, want) {
				ps.add("clerk.issuer", "host %q does not match the publishable key's Frontend API %q", u.Host, want)
			}
		}
	}
	if k.APIURL == "" {
		ps.add("clerk.api_url", "required")
	} else if msg := checkURL(k.APIURL, urlOpts{path: true, secure: true}); msg != "" {
		ps.add("clerk.api_url", "%s", msg)
	}
	c.validateMultiDomain(ps, pk, pkOK) // multidomain.go: proxy_url, satellites
	if k.JWKSURL != "" {
		if msg := checkURL(k.JWKSURL, urlOpts{path: true, query: true, secure: true}); msg != "" {
			ps.add("clerk.jwks_url", "%s", msg)
		}
	} else if k.JWTKey == "" && k.SecretKey == "" && k.Issuer != "" {
		// Keys from {issuer}/.well-known/jwks.json: cleartext only on loopback.
		if u, err := url.Parse(k.Issuer); err == nil && u.Scheme == "http" && !netutil.IsLoopbackHost(u.Hostname()) {
			ps.add("clerk.issuer", "keys would be fetched over http:// from a non-loopback host (use https, clerk.jwt_key or clerk.jwks_url)")
		}
	}
	if k.JWTKey != "" {
		if _, err := jwks.NewStatic(k.JWTKey); err != nil {
			ps.add("clerk.jwt_key", "%v", err)
		}
	}
	if s := k.SecretKey.Reveal(); s != "" {
		live := strings.HasPrefix(s, "sk_live_")
		switch {
		case !live && !strings.HasPrefix(s, "sk_test_"), len(s) <= len("sk_test_"):
			ps.add("clerk.secret_key", "must start with sk_live_ or sk_test_ (value not shown)")
		case pkOK && live != pk.Live:
			ps.add("clerk.secret_key", "a %s secret key with a %s publishable key: they must be of the same instance", instKind(live), instKind(pk.Live))
		}
	}
	if s := k.WebhookSecret.Reveal(); s != "" {
		body, ok := strings.CutPrefix(s, "whsec_")
		if !ok || body == "" {
			ps.add("clerk.webhook_secret", "must be whsec_ followed by base64 (value not shown)")
		} else if _, err := base64.StdEncoding.DecodeString(body); err != nil {
			ps.add("clerk.webhook_secret", "the part after whsec_ is not base64 (value not shown)")
		}
	}
	for i, p := range k.AuthorizedParties {
		if msg := checkOrigin(p); msg != "" {
			ps.add(fmt.Sprintf("clerk.authorized_parties[%d]", i), "%s", msg)
		}
	}
	if k.ClockSkew > Duration(5*time.Minute) {
		ps.add("clerk.clock_skew", "%s is more than 5m", k.ClockSkew)
	}
	if r := k.HandshakeNonceRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		ps.add("clerk.handshake_nonce_rate", "must be a number, 0 (the default, 5) or more")
	}
	if k.HandshakeNonceBurst < 0 {
		ps.add("clerk.handshake_nonce_burst", "must not be negative")
	}
	if m := string(k.MachineSecretKey); m != "" && (!strings.HasPrefix(m, "ak_") || len(m) == len("ak_")) {
		ps.add("clerk.machine_secret_key", "want a machine secret key \"ak_…\" (CLERK_MACHINE_SECRET_KEY)")
	}
}

func instKind(live bool) string {
	if live {
		return "production (live)"
	}
	return "development (test)"
}

func (c *Config) validateTuning(ps *problems) {
	durations := []struct {
		key      string
		d        Duration
		positive bool
	}{
		{"clerk.clock_skew", c.Clerk.ClockSkew, false},
		{"jwks.refresh_interval", c.JWKS.RefreshInterval, true},
		{"jwks.min_refresh_interval", c.JWKS.MinRefreshInterval, true},
		{"jwks.max_stale", c.JWKS.MaxStale, true},
		{"cache.session_ttl", c.Cache.SessionTTL, false},
		{"cache.machine_ttl", c.Cache.MachineTTL, true},
		{"cache.machine_negative_ttl", c.Cache.MachineNegativeTTL, true},
		{"revocation.ttl", c.Revocation.TTL, false},
		{"server.read_header_timeout", c.Server.ReadHeaderTimeout, true},
		{"server.idle_timeout", c.Server.IdleTimeout, true},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout, true},
		{"server.upstream_timeout", c.Server.UpstreamTimeout, true},
		{"server.dial_timeout", c.Server.DialTimeout, true},
	}
	bad := map[string]bool{}
	for _, d := range durations {
		switch {
		case d.d < 0:
			ps.add(d.key, "%s is negative", d.d)
			bad[d.key] = true
		case d.d == 0 && d.positive:
			ps.add(d.key, "must be more than 0")
			bad[d.key] = true
		}
	}
	j := c.JWKS
	if !bad["jwks.min_refresh_interval"] && !bad["jwks.refresh_interval"] && j.MinRefreshInterval > j.RefreshInterval {
		ps.add("jwks.min_refresh_interval", "%s is more than jwks.refresh_interval (%s)", j.MinRefreshInterval, j.RefreshInterval)
	}
	if !bad["jwks.max_stale"] && !bad["jwks.refresh_interval"] && j.MaxStale < j.RefreshInterval {
		ps.add("jwks.max_stale", "%s is less than jwks.refresh_interval (%s)", j.MaxStale, j.RefreshInterval)
	}
	if c.Cache.Tokens < 0 {
		ps.add("cache.tokens", "%d is negative", c.Cache.Tokens)
	}
	if c.Cache.Sessions < 0 {
		ps.add("cache.sessions", "%d is negative", c.Cache.Sessions)
	}
	if c.Cache.MachineTTL > Duration(time.Hour) {
		ps.add("cache.machine_ttl", "%s is more than 1h: a revoked credential would pass that long", c.Cache.MachineTTL)
	}
	if c.Machine.VerifyConcurrency <= 0 {
		ps.add("machine.verify_concurrency", "must be more than 0")
	}
	if r := c.Machine.MissRate; r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		ps.add("machine.miss_rate", "must be a number more than 0 (calls per second per client)")
	}
	if c.Machine.MissBurst <= 0 {
		ps.add("machine.miss_burst", "must be more than 0")
	}
	if !bad["cache.session_ttl"] && c.Cache.SessionTTL == 0 {
		for i, r := range c.Routes {
			if r.SessionCheckMode() == sessioncheck.Cached {
				ps.add("cache.session_ttl", "must be more than 0: routes[%d] has session_check cached", i)
				break
			}
		}
	}
	checkClaimHeaders(ps, c.Headers.Prefix, "headers.claims", c.Headers.Claims)
	if msg := checkHeaderPrefix(c.Headers.Prefix); msg != "" {
		ps.add("headers.prefix", "%s", msg)
	}
	rv := c.Revocation
	switch rv.Store {
	case "memory", "redis":
	default:
		ps.add("revocation.store", "%q is not one of memory, redis", rv.Store)
	}
	if u := rv.RedisURL.Reveal(); u != "" {
		// Never echo the URL: it usually holds a password (redisurl's
		// errors leave it out).
		if _, err := redisurl.Parse(u); err != nil {
			ps.add("revocation.redis_url", "%v (value not shown; a %s URL with a host)", err, redisurl.Schemes)
		}
	} else if rv.Store == "redis" {
		ps.add("revocation.redis_url", "required with revocation.store redis")
	}
	if rv.RedisURL == "" && c.Cache.Shared {
		ps.add("cache.shared", "needs revocation.redis_url")
	}
	if rv.Required && rv.RedisURL == "" {
		ps.add("revocation.required", "needs revocation.redis_url")
	} else if rv.Required && rv.Store != "redis" && !c.Cache.Shared {
		ps.add("revocation.required", "needs revocation.store redis or cache.shared: nothing else uses Redis")
	}
	if !bad["revocation.ttl"] && rv.TTL < Duration(60*time.Second) {
		ps.add("revocation.ttl", "%s is less than 60s: a revocation must outlive the 60 s session token", rv.TTL)
	}
	if c.Server.MaxHeaderBytes < 4096 {
		ps.add("server.max_header_bytes", "%d is less than 4096", c.Server.MaxHeaderBytes)
	}
}

func (c *Config) validateRoutes(ps *problems) {
	if c.Upstream != "" {
		if msg := checkUpstream(c.Upstream); msg != "" {
			ps.add("upstream", "%s", msg)
		}
	}
	if len(c.Routes) == 0 {
		ps.add("upstream", "no upstream: set upstream, SESSIONGATE_UPSTREAM or routes")
		return
	}
	hasSecret := c.Clerk.SecretKey != ""
	type seenRoute struct {
		i int
		r Route
	}
	seen := map[string]seenRoute{}
	for i, r := range c.Routes {
		key := func(k string) string { return fmt.Sprintf("routes[%d].%s", i, k) }
		auth, authOK := proxy.ParseAuth(r.Auth)
		check, checkOK := sessioncheck.ParseMode(r.SessionCheck)
		_, onErrOK := sessioncheck.ParseOnError(r.OnSessionCheckError)
		switch {
		case r.Path == "":
			ps.add(key("path"), "required")
		case !strings.HasPrefix(r.Path, "/"):
			ps.add(key("path"), "%q must start with /", r.Path)
		case strings.Contains(r.Path, ".."), strings.Contains(r.Path, "//"), strings.ContainsAny(r.Path, "?#;\\"):
			ps.add(key("path"), "%q must not contain \"..\", \"//\", \"?\", \"#\", \";\" or a backslash", r.Path)
		}
		if r.Host != "" && (strings.ContainsAny(r.Host, ":/@?# ") || strings.Contains(r.Host, "..")) {
			ps.add(key("host"), "%q must be a bare host name (no scheme, port or path)", r.Host)
		}
		switch {
		case r.Upstream == "" && c.Upstream == "" && !c.ForwardAuthOnly():
			ps.add(key("upstream"), "required: other routes have an upstream and there is no top-level upstream "+
				"(a configuration where no route has one only decides forward-auth requests)")
		case r.Upstream != "" && r.Upstream != c.Upstream:
			if msg := checkUpstream(r.Upstream); msg != "" {
				ps.add(key("upstream"), "%s", msg)
			}
		}
		if !authOK {
			ps.add(key("auth"), "%q is not one of public, optional, required", r.Auth)
		}
		if !checkOK {
			ps.add(key("session_check"), "%q is not one of off, cached, strict", r.SessionCheck)
		} else if check != sessioncheck.Off && !hasSecret {
			ps.add(key("session_check"), "%s needs clerk.secret_key (CLERK_SECRET_KEY)", check)
		} else if check != sessioncheck.Off && authOK && auth == proxy.Public {
			ps.add(key("session_check"), "a public route has no session to check")
		}
		if !onErrOK {
			ps.add(key("on_session_check_error"), "%q is not one of deny, allow", r.OnSessionCheckError)
		}
		if r.TokenTemplate != "" && !hasSecret {
			ps.add(key("token_template"), "needs clerk.secret_key (CLERK_SECRET_KEY)")
		}
		req := r.Require
		if auth == proxy.Public && !req.IsZero() {
			ps.add(key("require"), "a public route has nothing to check")
		}
		for j, a := range r.Accepts {
			if err := middleware.ValidateAccepts([]middleware.TokenType{middleware.TokenType(a)}); err != nil {
				ps.add(fmt.Sprintf("routes[%d].accepts[%d]", i, j), "%q is not one of session_token, api_key, m2m_token, oauth_token, any", a)
			}
		}
		if auth == proxy.Public && len(r.Accepts) > 0 {
			ps.add(key("accepts"), "a public route checks no credential")
		}
		if !hasSecret && (slices.Contains(r.Accepts, string(middleware.APIKey)) || slices.Contains(r.Accepts, "any")) {
			ps.add(key("accepts"), "api_key needs clerk.secret_key (CLERK_SECRET_KEY): API keys are verified by the Backend API")
		}
		for j, sc := range req.Scopes {
			if sc == "" || strings.ContainsAny(sc, " ,") {
				ps.add(fmt.Sprintf("routes[%d].require.scopes[%d]", i, j), "%q is empty or holds a space or comma", sc)
			}
		}
		checkBilling(ps, key("require.features"), req.Features)
		checkBilling(ps, key("require.plans"), req.Plans)
		if rv := req.Reverification; rv != nil {
			if _, err := rv.Middleware(); err != nil {
				ps.add(key("require.reverification"), "%v", err)
			}
		}
		checkClaimHeaders(ps, c.Headers.Prefix, key("headers.claims"), r.Headers.Claims)
		for j, role := range req.Roles {
			if NormalizeRole(role) == "" || strings.HasSuffix(role, ":") {
				ps.add(fmt.Sprintf("routes[%d].require.roles[%d]", i, j), "empty role")
			}
		}
		for j, p := range req.Permissions {
			if strings.TrimSpace(p) == "" {
				ps.add(fmt.Sprintf("routes[%d].require.permissions[%d]", i, j), "empty permission")
			}
		}
		if r.Handshake != nil && *r.Handshake {
			switch {
			case auth == proxy.Public:
				ps.add(key("handshake"), "a public route never handshakes (remove handshake or set it to false)")
			case c.Clerk.PublishableKey == "":
				ps.add(key("handshake"), "needs clerk.publishable_key (CLERK_PUBLISHABLE_KEY)")
			}
		}
		if r.Path != "" {
			p := r.Path
			if p != "/" {
				p = strings.TrimRight(p, "/")
			}
			id := strings.ToLower(r.Host) + "\x00" + p
			if prev, ok := seen[id]; ok {
				a, b := prev.r, r
				a.Path, b.Path = "", ""
				a.Host, b.Host = "", ""
				diff := "with the same policy"
				if !reflect.DeepEqual(a, b) {
					diff = "with a different policy"
				}
				ps.add(key("path"), "overlaps routes[%d] (same path and host), %s", prev.i, diff)
			} else {
				seen[id] = seenRoute{i, r}
			}
			for id2, prev := range seen {
				if id2 != id && (prev.r.CaseInsensitive || r.CaseInsensitive) && strings.EqualFold(id2, id) {
					ps.add(key("path"), "overlaps routes[%d] when case is ignored (case_insensitive)", prev.i)
				}
			}
		}
	}
}

// hostPort checks a listen address and returns its host.
func hostPort(addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Sprintf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Sprintf("%q has an invalid port", addr)
	}
	return host, ""
}

type urlOpts struct {
	path, query bool
	// secure refuses http:// to a non-loopback host (keys or the secret key
	// would travel in cleartext).
	secure bool
}

func checkURL(raw string, o urlOpts) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not an absolute http(s) URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q must be an absolute http(s) URL", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host", raw)
	case u.User != nil:
		return "must not contain user info"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Sprintf("%q must not have a fragment", raw)
	case !o.query && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Sprintf("%q must not have a query", raw)
	case !o.path && u.Path != "":
		return fmt.Sprintf("%q must not have a path", raw)
	case o.secure && u.Scheme == "http" && !netutil.IsLoopbackHost(u.Hostname()):
		return fmt.Sprintf("%q: http:// is allowed only on a loopback host", raw)
	}
	return ""
}

func checkOrigin(raw string) string {
	if msg := checkURL(raw, urlOpts{}); msg != "" {
		if strings.HasSuffix(raw, "/") && checkURL(strings.TrimSuffix(raw, "/"), urlOpts{}) == "" {
			return fmt.Sprintf("%q must be an origin without a trailing /", raw)
		}
		return msg + " (want an origin: scheme://host[:port])"
	}
	return ""
}

// checkUpstream checks an upstream URL: http://, https://, or h2c://
// (cleartext HTTP/2 with prior knowledge, for gRPC servers without TLS),
// which is checked as the http:// URL it stands for.
func checkUpstream(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.Scheme == "h2c":
		raw = "http" + raw[len("h2c"):]
	case err == nil && u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q must be an absolute http://, https:// or h2c:// URL", raw)
	}
	return checkURL(raw, urlOpts{path: true})
}

func checkHeaderPrefix(p string) string {
	if p == "" {
		return "required"
	}
	for i := 0; i < len(p); i++ {
		if !isTokenChar(p[i]) {
			return fmt.Sprintf("%q is not a valid header-name prefix", p)
		}
	}
	if !strings.HasSuffix(p, "-") {
		return fmt.Sprintf("%q must end with \"-\"", p)
	}
	return ""
}

// isTokenChar reports whether b is an RFC 9110 tchar.
func isTokenChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// checkBilling validates require.features or require.plans entries with the
// rules the Gate applies (middleware.Requirements).
func checkBilling(ps *problems, key string, names []string) {
	for j, name := range names {
		var r middleware.Requirements
		if strings.HasSuffix(key, "features") {
			r.Features = []string{name}
		} else {
			r.Plans = []string{name}
		}
		if err := r.Validate(); err != nil {
			ps.add(fmt.Sprintf("%s[%d]", key, j), "%s", strings.TrimPrefix(err.Error(), "middleware: requirements: "))
		}
	}
}

// checkClaimHeaders validates a headers.claims map with the rules the proxy
// applies (proxy.ValidateClaimHeader), and refuses two spellings of one name.
func checkClaimHeaders(ps *problems, prefix, key string, m map[string]string) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, name := range names {
		if err := proxy.ValidateClaimHeader(prefix, name, m[name]); err != nil {
			ps.add(key+"."+name, "%v", err)
			continue
		}
		norm := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if other, dup := seen[norm]; dup {
			ps.add(key+"."+name, "%q and %q name one header", other, name)
		}
		seen[norm] = name
	}
}

// Middleware converts require.reverification to the Gate's form, checking
// the preset name or the level and minutes.
func (r *Reverification) Middleware() (*middleware.Reverification, error) {
	if r.Preset != "" {
		p, ok := middleware.ReverificationPreset(r.Preset)
		if !ok {
			return nil, fmt.Errorf("%q is not one of Clerk's presets strict_mfa, strict, moderate, lax", r.Preset)
		}
		return &p, nil
	}
	m := &middleware.Reverification{Level: middleware.ReverificationLevel(r.Level), AfterMinutes: r.AfterMinutes}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Requirements converts the route's require block to the Gate's.
func (r Require) Requirements() middleware.Requirements {
	out := middleware.Requirements{Org: r.Org, Roles: r.Roles, Permissions: r.Permissions, Features: r.Features, Plans: r.Plans, Scopes: r.Scopes}
	if r.Reverification != nil {
		out.Reverification, _ = r.Reverification.Middleware() // validated by Validate
	}
	return out
}

// TokenTypes converts routes[].accepts to the Gate's kinds (nil: session
// tokens only).
func (r Route) TokenTypes() []middleware.TokenType {
	var out []middleware.TokenType
	for _, a := range r.Accepts {
		out = append(out, middleware.TokenType(a))
	}
	return out
}
