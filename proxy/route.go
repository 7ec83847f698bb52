package proxy

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/sessiongate/sessiongate/middleware"
)

// Auth is a route's authentication policy.
type Auth int

// Route policies.
const (
	// Required rejects requests without a valid session token (the default).
	Required Auth = iota
	// Optional verifies a token when there is one; a missing or invalid token
	// passes as anonymous, without identity headers.
	Optional
	// Public never verifies; identity headers are still stripped.
	Public
)

// ParseAuth reads a policy by its name in the configuration file's auth
// key; "" is Required, the default. ok is false for any other name. It is
// the one translation from the configuration's spelling to the policy.
func ParseAuth(name string) (a Auth, ok bool) {
	switch name {
	case "", "required":
		return Required, true
	case "optional":
		return Optional, true
	case "public":
		return Public, true
	}
	return Required, false
}

// String is the policy's name in the configuration file's auth key:
// "required", "optional" or "public".
func (a Auth) String() string {
	switch a {
	case Optional:
		return "optional"
	case Public:
		return "public"
	default:
		return "required"
	}
}

// Route is one path prefix (and optional host) with its upstream and policy.
type Route struct {
	// Path is a prefix matched on whole segments: "/api" matches "/api" and
	// "/api/x", never "/apix". "/" matches everything.
	Path string
	// Host, when set, limits the route to requests for that host
	// (case-insensitive, without port).
	Host string
	// Upstream is where matching requests go: http, https, or h2c
	// (cleartext HTTP/2 with prior knowledge; NewTransport speaks it). Nil:
	// the route only decides forward-auth requests, and a request proxied
	// to it gets 404.
	Upstream *url.URL
	// Auth is the policy.
	Auth Auth
	// Policy is what the Gate checks beyond the token: pending sessions,
	// session status, and the authorization requirements (Policy.Require:
	// organization, roles, permissions, features, plans, reverification;
	// failures are 403s). Ignored on public routes.
	Policy middleware.Policy
	// ForwardToken false strips Authorization and the __session cookie from
	// the upstream request.
	ForwardToken bool
	// Name labels the route in metrics and logs. Empty means Path (with Host).
	Name string
	// UpstreamToken, when set, replaces the Authorization header sent
	// upstream for authenticated requests (a Clerk JWT-template token).
	UpstreamToken UpstreamToken
	// UpstreamTokenAllowOnError: when minting fails, forward the request
	// without an Authorization header instead of answering 503
	// session-status-unavailable.
	UpstreamTokenAllowOnError bool
	// Handshake, when set, decides requests without an Authorization Bearer
	// token by Clerk's browser rules (suffixed cookies, __client_uat) and
	// renews expired sessions of browser navigations through Clerk's
	// handshake (proxy/handshake.go). Ignored on public routes.
	Handshake Handshake
	// CaseInsensitive matches Path ignoring ASCII case ("/admin" also
	// matches "/ADMIN/x"). Set it on the protected routes of an upstream
	// that routes case-insensitively (Express by default, ASP.NET, IIS):
	// otherwise "/ADMIN" is decided by a less protected route (often "/")
	// while the upstream serves its /admin handler. Off by default.
	CaseInsensitive bool
	// ClaimHeaders are this route's claim headers, added to
	// Options.ClaimHeaders (this route's entry wins for a header both name,
	// in any spelling).
	ClaimHeaders map[string]string
}

// UpstreamToken supplies the bearer token an upstream receives in place of
// the session token.
type UpstreamToken interface {
	// UpstreamToken returns the token (without "Bearer ") for the
	// session of c. On an error the request is answered 503
	// session-status-unavailable, or forwarded without Authorization when
	// the route sets UpstreamTokenAllowOnError.
	UpstreamToken(ctx context.Context, c *middleware.Claims) (string, error)
}

type route struct {
	Route
	prefix string        // Path without a trailing slash ("" for "/")
	host   string        // lower-cased
	claims []claimHeader // Options.ClaimHeaders and Route.ClaimHeaders merged
}

func compileRoutes(rs []Route) ([]*route, error) {
	out := make([]*route, 0, len(rs))
	for i, r := range rs {
		if !strings.HasPrefix(r.Path, "/") {
			return nil, fmt.Errorf("proxy: routes[%d]: path %q must start with /", i, r.Path)
		}
		if !cleanPath(r.Path) {
			return nil, fmt.Errorf("proxy: routes[%d]: path %q is not clean (dot segments or //)", i, r.Path)
		}
		if r.Upstream != nil && (r.Upstream.Scheme != "http" && r.Upstream.Scheme != "https" && r.Upstream.Scheme != "h2c" || r.Upstream.Host == "") {
			return nil, fmt.Errorf("proxy: routes[%d]: upstream %q is not an absolute http(s) or h2c URL", i, r.Upstream)
		}
		cr := &route{Route: r, prefix: strings.TrimSuffix(r.Path, "/"), host: strings.ToLower(r.Host)}
		if cr.Name == "" {
			cr.Name = r.Host + r.Path
		}
		if err := r.Policy.Require.Validate(); err != nil {
			return nil, fmt.Errorf("proxy: routes[%d]: %w", i, err)
		}
		if strings.IndexByte(r.Path, ';') >= 0 {
			return nil, fmt.Errorf("proxy: routes[%d]: path %q must not contain ';'", i, r.Path)
		}
		// Two routes with one host and one prefix overlap; so do prefixes
		// that differ only by case when either route ignores case. Routes
		// are few: comparing every pair once at start-up is fine.
		for j, prev := range out {
			if prev.host != cr.host {
				continue
			}
			if prev.prefix == cr.prefix {
				return nil, fmt.Errorf("proxy: routes[%d] (%s) overlaps routes[%d]", i, r.Path, j)
			}
			if (prev.CaseInsensitive || r.CaseInsensitive) && strings.EqualFold(prev.prefix, cr.prefix) {
				return nil, fmt.Errorf("proxy: routes[%d] (%s) overlaps routes[%d] when case is ignored", i, r.Path, j)
			}
		}
		out = append(out, cr)
	}
	// Longest prefix first; at equal length, a route with a host first.
	sort.SliceStable(out, func(a, b int) bool {
		if len(out[a].prefix) != len(out[b].prefix) {
			return len(out[a].prefix) > len(out[b].prefix)
		}
		return out[a].host != "" && out[b].host == ""
	})
	return out, nil
}

// match returns the route for a clean path and a lower-cased host without port.
func match(routes []*route, p, host string) *route {
	for _, r := range routes {
		if r.host != "" && r.host != host {
			continue
		}
		if r.prefix == "" {
			return r
		}
		if len(p) < len(r.prefix) {
			continue
		}
		head := p[:len(r.prefix)]
		if head != r.prefix && !(r.CaseInsensitive && asciiEqualFold(head, r.prefix)) {
			continue
		}
		if len(p) == len(r.prefix) || p[len(r.prefix)] == '/' {
			return r
		}
	}
	return nil
}

// asciiEqualFold compares a and b ignoring ASCII case only. Unicode folding
// (strings.EqualFold) would let "/\u212a" (Kelvin sign) equal "/k", which
// no upstream router does.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Why a request path could not be routed.
type pathProblem int

const (
	pathOK pathProblem = iota
	// pathNotClean: dot segments, empty segments, a backslash or NUL.
	pathNotClean
	// pathAmbiguous: the path has ';' segment parameters, and it selects a
	// different route once they are removed.
	pathAmbiguous
)

// route picks the route for a decoded request path and a host (any case,
// with or without port). It refuses paths that an upstream could read as
// another path than the one sessiongate routed:
//
//   - unclean paths ("/public/../admin"): an upstream that normalises them
//     reaches a path the policy was not chosen for;
//   - paths with ';' parameters that select a different route without them.
//     Java servlet containers (Tomcat, Jetty, Spring) remove "…;param" from
//     every segment before routing, so "/admin;x/users" is their
//     "/admin/users"; most other stacks keep it literally. The path is
//     routed only when both readings select the same route, and the reading
//     without parameters must be clean too ("/public/..;/admin").
//
// nil with pathOK means no route matched.
func (p *Proxy) route(path, host string) (*route, pathProblem) {
	if !cleanPath(path) {
		return nil, pathNotClean
	}
	host = hostOnly(host)
	rt := match(p.routes, path, host)
	if strings.IndexByte(path, ';') < 0 {
		return rt, pathOK
	}
	bare := stripPathParams(path)
	if !cleanPath(bare) {
		return nil, pathNotClean
	}
	if match(p.routes, bare, host) != rt {
		return nil, pathAmbiguous
	}
	return rt, pathOK
}

// stripPathParams removes the ";…" parameters of every segment, as a
// servlet container does: "/a;x=1/b;y" becomes "/a/b".
func stripPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for len(p) > 0 {
		seg, rest, more := strings.Cut(p, "/")
		seg, _, _ = strings.Cut(seg, ";")
		b.WriteString(seg)
		if more {
			b.WriteByte('/')
		}
		p = rest
	}
	return b.String()
}

// cleanPath reports whether p has no dot segments, no empty segments and no
// backslashes. Requests with such paths are refused (400) rather than routed:
// the upstream might normalise "/public/../admin" to "/admin" after
// sessiongate routed it as "/public/…", an authentication bypass.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
