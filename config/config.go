package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of the sessiongate binary (docs/configuration.md).
// Load fills it from defaults, a YAML file, the environment and flags, then
// validates it; a Config returned by Load is ready to use.
type Config struct {
	// Listen is the proxy's address. Default ":8080".
	Listen string `yaml:"listen"`
	// AdminListen is the admin listener (/healthz, /readyz, /metrics, session
	// revoke). Default "127.0.0.1:9090". Empty string disables it.
	AdminListen string `yaml:"admin_listen"`
	// AdminToken is the bearer token the admin listener requires; required
	// when AdminListen is not a loopback address.
	AdminToken Secret `yaml:"admin_token"`
	// AdminPprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the admin listener. Off by default; requires
	// AdminToken, which every profile request must carry.
	AdminPprof bool `yaml:"admin_pprof"`
	// MetricsToken is a scrape credential: when set, GET /metrics on the
	// admin listener requires it (or AdminToken) as a bearer token. It MUST
	// NOT grant anything else: revocation and profiles take AdminToken
	// alone. SESSIONGATE_METRICS_TOKEN.
	MetricsToken Secret `yaml:"metrics_token"`
	// Upstream is the default upstream of routes that name none. With no
	// routes at all it makes one catch-all required route "/"
	// (SESSIONGATE_UPSTREAM, --upstream).
	Upstream string `yaml:"upstream"`

	Clerk      Clerk      `yaml:"clerk"`      // the instance: keys, issuer, browser flow
	JWKS       JWKS       `yaml:"jwks"`       // refresh of the remote key set
	Cache      Cache      `yaml:"cache"`      // token, session and machine caches
	Machine    Machine    `yaml:"machine"`    // bounds on machine-credential calls
	Headers    Headers    `yaml:"headers"`    // identity and claim headers
	Revocation Revocation `yaml:"revocation"` // the deny list and where it is shared
	Server     Server     `yaml:"server"`     // the proxy listener's timeouts
	Log        Log        `yaml:"log"`        // level, access lines, async writes

	// Connections bounds the WebSockets and streams the proxy passes
	// through (connections.go).
	Connections Connections `yaml:"connections"`

	// Tracing exports OpenTelemetry traces (tracing.go).
	Tracing Tracing `yaml:"tracing"`

	// TLS serves the proxy listener over TLS, HTTP/2 negotiated by ALPN
	// Certificates are re-read when their files change.
	TLS TLS `yaml:"tls"`
	// H2C serves cleartext HTTP/2 (prior knowledge, as gRPC clients and
	// curl --http2-prior-knowledge send it) on the proxy listener, next to
	// HTTP/1.1. Default false; refused with TLS.
	H2C bool `yaml:"h2c"`
	// WatchConfig reloads the configuration when the file's content
	// changes (checked every 2 s), as SIGHUP does. Default false.
	WatchConfig bool `yaml:"watch_config"`

	// SignInURL, when set, is where browser navigations that end signed-out
	// on a required route are redirected (with redirect_url).
	SignInURL string `yaml:"sign_in_url"`
	// PublicOrigin is the origin browsers use to reach sessiongate
	// (https://app.example.com); it builds redirect_url.
	PublicOrigin string `yaml:"public_origin"`
	// TrustedProxies are CIDRs (or single IPs) whose X-Forwarded-Host and
	// X-Forwarded-Proto are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Routes, matched by longest path prefix (then host). Empty with Upstream
	// set: one catch-all required route.
	Routes []Route `yaml:"routes"`
}

// Clerk is the Clerk instance.
type Clerk struct {
	// SecretKey is the Backend API secret key (sk_live_…/sk_test_…).
	// CLERK_SECRET_KEY.
	SecretKey Secret `yaml:"secret_key"`
	// APIURL is the Backend API base. Default "https://api.clerk.com".
	// CLERK_API_URL.
	APIURL string `yaml:"api_url"`
	// Issuer is the exact iss of session tokens: the Frontend API URL. When
	// empty it is derived from PublishableKey. SESSIONGATE_ISSUER.
	Issuer string `yaml:"issuer"`
	// PublishableKey (pk_live_…/pk_test_…) names the Frontend API host.
	// CLERK_PUBLISHABLE_KEY.
	PublishableKey string `yaml:"publishable_key"`
	// ProxyURL is the Frontend API behind the app's own origin, if used:
	// an absolute URL, or a path ("/__clerk") on the application's origin.
	// The handshake goes there; when it is a path, or on PublicOrigin,
	// sessiongate serves it by forwarding to FrontendAPIURL
	// (ServesFrontendAPI).
	ProxyURL string `yaml:"proxy_url"`
	// FrontendAPIURL is where the Frontend API proxy forwards. Default
	// https://frontend-api.clerk.dev (Clerk's own proxy's target).
	FrontendAPIURL string `yaml:"frontend_api_url"`
	// IsSatellite marks an application on a satellite domain (Clerk's
	// isSatellite): it shares the sessions of the primary domain.
	IsSatellite bool `yaml:"is_satellite"`
	// Domain is a satellite's domain ("satellite.example.com"); a
	// production satellite's Frontend API is clerk.<Domain>.
	Domain string `yaml:"domain"`
	// SignInURL is Clerk's signInUrl: the primary domain's sign-in page, an
	// absolute URL; a development satellite syncs through it.
	SignInURL string `yaml:"sign_in_url"`
	// SatelliteAutoSync syncs a satellite's first visit without Clerk
	// cookies (Clerk's satelliteAutoSync). Default false.
	SatelliteAutoSync bool `yaml:"satellite_auto_sync"`
	// CrossOriginSync runs Clerk's primary-domain-cross-origin-sync: a
	// signed-in navigation from another site takes one handshake. Default
	// true on a primary domain (nil).
	CrossOriginSync *bool `yaml:"cross_origin_sync"`
	// JWKSURL overrides where keys are fetched. Default: {APIURL}/v1/jwks
	// with the secret key, else {Issuer}/.well-known/jwks.json.
	JWKSURL string `yaml:"jwks_url"`
	// JWTKey is a PEM RSA public key: when set, no network call is ever made
	// for keys. CLERK_JWT_KEY.
	JWTKey string `yaml:"jwt_key"`
	// AuthorizedParties are the origins allowed in azp.
	// SESSIONGATE_AUTHORIZED_PARTIES (comma-separated).
	AuthorizedParties []string `yaml:"authorized_parties"`
	// ClockSkew is the leeway on exp/nbf/iat. Default 5s.
	ClockSkew Duration `yaml:"clock_skew"`
	// WebhookSecret is the Svix signing secret (whsec_…).
	// CLERK_WEBHOOK_SIGNING_SECRET.
	WebhookSecret Secret `yaml:"webhook_secret"`
	// MachineSecretKey is a machine's secret key (ak_…): M2M tokens are then
	// verified with it (only tokens granted to that machine pass) instead
	// of SecretKey. CLERK_MACHINE_SECRET_KEY.
	MachineSecretKey Secret `yaml:"machine_secret_key"`
	// HandshakeNonceRate is the most handshake nonce exchanges per second
	// over all clients (each is a Backend API call). 0: the default, 5.
	HandshakeNonceRate float64 `yaml:"handshake_nonce_rate"`
	// HandshakeNonceBurst is how many may run back to back; half of it is
	// kept for clients within their own budget. 0: the default, 20.
	HandshakeNonceBurst int `yaml:"handshake_nonce_burst"`
}

// JWKS tunes the remote key source.
type JWKS struct {
	RefreshInterval    Duration `yaml:"refresh_interval"`     // default 5m
	MinRefreshInterval Duration `yaml:"min_refresh_interval"` // default 10s
	MaxStale           Duration `yaml:"max_stale"`            // default 24h
}

// Cache sizes the in-memory caches.
type Cache struct {
	Tokens     int      `yaml:"tokens"`      // verified tokens; default 100000; 0 disables
	Sessions   int      `yaml:"sessions"`    // session statuses; default 100000
	SessionTTL Duration `yaml:"session_ttl"` // default 10s
	Shared     bool     `yaml:"shared"`      // session statuses in Redis
	// MachineTTL is how long an accepted opaque machine credential (API
	// key, M2M or OAuth token) is trusted without asking Clerk; never past
	// its expiration. Default 10s.
	MachineTTL Duration `yaml:"machine_ttl"`
	// MachineNegativeTTL is how long a rejected one is refused from memory.
	// Default 10s.
	MachineNegativeTTL Duration `yaml:"machine_negative_ttl"`
}

// Machine bounds the Backend API calls of machine-credential verification.
type Machine struct {
	// VerifyConcurrency is the most verification calls in flight. Default 16.
	VerifyConcurrency int `yaml:"verify_concurrency"`
	// MissRate is how many calls per second (cache misses) each client
	// address may cause. Default 10.
	MissRate float64 `yaml:"miss_rate"`
	// MissBurst is how many of them a client address may cause at once.
	// Default 20.
	MissBurst int `yaml:"miss_burst"`
}

// Headers configures the identity headers sent upstream.
type Headers struct {
	// Prefix of every identity header. Default "X-Sessiongate-".
	Prefix string `yaml:"prefix"`
	// Claims maps upstream header names to claim paths ("X-User-Email":
	// "email", "X-Plan": "public_metadata.plan"), on every route.
	Claims map[string]string `yaml:"claims"`
}

// Revocation configures the deny list.
type Revocation struct {
	Store    string   `yaml:"store"`     // memory (default) | redis
	RedisURL Secret   `yaml:"redis_url"` // redis:// or rediss://
	Required bool     `yaml:"required"`  // not ready without Redis
	TTL      Duration `yaml:"ttl"`       // default 1h
}

// Server holds the proxy listener's timeouts (not in the short example of docs/configuration.md;
// documented in docs/configuration.md).
type Server struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 120s
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`    // default 30s: drain bound
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`    // default 65536
	// UpstreamTimeout bounds the wait for an upstream's response headers.
	UpstreamTimeout Duration `yaml:"upstream_timeout"` // default 60s
	// DialTimeout bounds connecting to an upstream.
	DialTimeout Duration `yaml:"dial_timeout"` // default 5s
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Access *bool  `yaml:"access"` // one line per request; default true
	// Async buffers log writes (up to 256 KiB, flushed every second and at
	// shutdown). Default false: lines go out through a group-commit writer,
	// at once when no write is in progress and batched while one is; with
	// async on, a crash may lose the last second of lines.
	Async bool `yaml:"async"`
}

// Auth policies of a route, as the configuration file spells them (the
// values proxy.ParseAuth reads; Route.AuthPolicy is the typed policy).
const (
	AuthPublic   = "public"
	AuthOptional = "optional"
	AuthRequired = "required"
)

// Session check modes of a route, as the file spells them
// (sessioncheck.ParseMode; Route.SessionCheckMode is the typed mode).
const (
	SessionCheckOff    = "off"
	SessionCheckCached = "cached"
	SessionCheckStrict = "strict"
)

// What to do when a session check cannot reach the Backend API.
const (
	OnErrorDeny  = "deny"
	OnErrorAllow = "allow"
)

// Route is one path prefix (and optional host) with its upstream and policy.
type Route struct {
	// Path prefix, matched on whole segments: "/api" matches "/api" and
	// "/api/x", not "/apix". Required.
	Path string `yaml:"path"`
	// Host, when set, restricts the route to that Host header (no port).
	Host string `yaml:"host"`
	// Upstream URL (http or https). Default: the top-level Upstream.
	Upstream string `yaml:"upstream"`
	// Auth is public, optional or required (default).
	Auth string `yaml:"auth"`
	// SessionCheck is off (default), cached or strict.
	SessionCheck string `yaml:"session_check"`
	// OnSessionCheckError is deny (default: 503) or allow.
	OnSessionCheckError string `yaml:"on_session_check_error"`
	// Require lists organization requirements (403 when not met).
	Require Require `yaml:"require"`
	// AllowPending lets sts "pending" sessions through.
	AllowPending bool `yaml:"allow_pending"`
	// ForwardToken: false strips Authorization and __session toward the
	// upstream. Default true.
	ForwardToken *bool `yaml:"forward_token"`
	// TokenTemplate, when set, sends the upstream a Backend API template
	// token as Bearer instead of the session token.
	TokenTemplate string `yaml:"token_template"`
	// Handshake lets browser navigations renew expired sessions through
	// Clerk's handshake. Default: on for required/optional routes when a
	// publishable key is set.
	Handshake *bool `yaml:"handshake"`
	// Accepts lists the credential kinds the route takes: session_token
	// (the default), api_key, m2m_token, oauth_token, or any.
	Accepts []string `yaml:"accepts"`
	// Headers adds claim headers for this route.
	Headers RouteHeaders `yaml:"headers"`
	// CaseInsensitive matches Path ignoring ASCII case. Set it on protected
	// routes of upstreams that route case-insensitively (Express, ASP.NET).
	// Default false.
	CaseInsensitive bool `yaml:"case_insensitive"`
}

// Require is a route's organization requirements.
type Require struct {
	Org         bool     `yaml:"org"`         // an active organization; Roles and Permissions imply it
	Roles       []string `yaml:"roles"`       // any of; "admin" == "org:admin"
	Permissions []string `yaml:"permissions"` // all of
	// Features (all of) and Plans (any of) are Clerk Billing's fea and pla:
	// "name", "org:name" or "user:name".
	Features []string `yaml:"features"`
	Plans    []string `yaml:"plans"` // any of; spelled as Features
	// Reverification is one of Clerk's presets (strict_mfa, strict,
	// moderate, lax) or {level, after_minutes}.
	Reverification *Reverification `yaml:"reverification"`
	// Scopes a machine credential must all carry (403 missing-scope).
	Scopes []string `yaml:"scopes"`
}

// IsZero reports whether r requires nothing.
func (r Require) IsZero() bool {
	return !r.Org && len(r.Roles) == 0 && len(r.Permissions) == 0 && len(r.Features) == 0 &&
		len(r.Plans) == 0 && r.Reverification == nil && len(r.Scopes) == 0
}

// Reverification is require.reverification: a preset name in YAML
// ("strict"), or a mapping {level: second_factor, after_minutes: 10}.
type Reverification struct {
	Preset       string // set when written as a preset name
	Level        string // first_factor, second_factor or multi_factor
	AfterMinutes int    // most minutes since that verification; positive
}

// UnmarshalYAML reads a preset name or a {level, after_minutes} mapping,
// refusing any other key.
func (r *Reverification) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		r.Preset = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "level":
				if err := v.Decode(&r.Level); err != nil {
					return fmt.Errorf("reverification.level: %w", err)
				}
			case "after_minutes":
				if err := v.Decode(&r.AfterMinutes); err != nil {
					return fmt.Errorf("reverification.after_minutes: want an integer, got %q", v.Value)
				}
			default:
				return fmt.Errorf("reverification: unknown key %q (want level and after_minutes)", k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("reverification: want a preset (strict_mfa, strict, moderate, lax) or {level, after_minutes}")
}

// MarshalYAML writes r back in the form it was read in.
func (r Reverification) MarshalYAML() (any, error) {
	if r.Preset != "" {
		return r.Preset, nil
	}
	return struct {
		Level        string `yaml:"level"`
		AfterMinutes int    `yaml:"after_minutes"`
	}{r.Level, r.AfterMinutes}, nil
}

// RouteHeaders are a route's additions to the top-level headers.
type RouteHeaders struct {
	// Claims are added to the top-level headers.claims; the route's entry
	// wins for a header both name.
	Claims map[string]string `yaml:"claims"`
}

// ForwardsToken reports the effective forward_token.
func (r Route) ForwardsToken() bool { return r.ForwardToken == nil || *r.ForwardToken }

// Duration is a time.Duration written as a Go duration string ("5m", "10s")
// in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as a Go duration without trailing zero units ("5m",
// "24h", "1h30m", "250ms").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses a Go duration string ("5m", "250ms"). A bare number
// other than 0 is refused: "30" could mean seconds or milliseconds.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("duration %q has no unit (write e.g. %ss or %sms)", s, s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write e.g. 5s, 250ms, 1h30m)", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML reads a Go duration string (see ParseDuration).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a string such as 5s", n.Line)}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Secret is a string that is never printed: String, GoString, MarshalYAML
// and MarshalJSON give "REDACTED" (or "" when empty). Code MUST NOT put a
// Reveal()ed value in an error, a log line or a metric label.
type Secret string

// redacted is what a non-empty Secret prints as.
const redacted = "REDACTED"

// Reveal returns the secret's value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// String gives "REDACTED", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML gives "REDACTED", or "" for an empty secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON gives "REDACTED", or "" for an empty secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
