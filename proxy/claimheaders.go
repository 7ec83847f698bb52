package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/middleware"
)

// Claim headers: custom claims of the session token sent to the upstream
// (and in forward-auth answers) under names the operator chooses, e.g.
// X-User-Email from the claim "email".

// MaxClaimHeaderValue is the longest claim header value sent; a longer one
// is not sent (and counted).
const MaxClaimHeaderValue = 4 << 10

// Why a mapped claim was not sent although the token has it.
const (
	ClaimDroppedControl = "control-character"
	ClaimDroppedTooLong = "too-long"
)

// ClaimHeaderObserver is an optional interface of Options.Observer: it is
// told of each mapped claim that the token has but that was not sent,
// because its value holds a control character or is over
// MaxClaimHeaderValue bytes.
type ClaimHeaderObserver interface {
	// ClaimHeaderDropped is called for each header not sent, with its
	// canonical name and ClaimDroppedControl or ClaimDroppedTooLong.
	ClaimHeaderDropped(header, reason string)
}

// claimHeader is one compiled mapping.
type claimHeader struct {
	name string // canonical header name
	path string // claim path ("email", "public_metadata.plan")
}

// compileClaimHeaders merges the top-level mappings with a route's (the
// route's entry wins for a header both name, in any spelling: "x_email"
// replaces "X-Email", since many upstream stacks read both as one
// variable) into a list sorted by header name, so that headers are set in
// a stable order.
func compileClaimHeaders(top, route map[string]string) []claimHeader {
	merged := map[string]claimHeader{}
	for _, m := range []map[string]string{top, route} {
		for name, path := range m {
			merged[normalizeHeader(name)] = claimHeader{name: http.CanonicalHeaderKey(name), path: path}
		}
	}
	out := make([]claimHeader, 0, len(merged))
	for _, ch := range merged {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// claimHeaderNames validates every mapping (top level and routes) and
// returns the normalized names to strip from inbound requests.
func claimHeaderNames(prefix string, top map[string]string, routes []*route) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	check := func(where string, m map[string]string) error {
		spelled := map[string]string{}
		for name, path := range m {
			if err := ValidateClaimHeader(prefix, name, path); err != nil {
				return fmt.Errorf("proxy: %s: %w", where, err)
			}
			norm := normalizeHeader(name)
			if other, dup := spelled[norm]; dup {
				return fmt.Errorf("proxy: %s: %q and %q name one header", where, other, name)
			}
			spelled[norm] = name
			if !seen[norm] {
				seen[norm] = true
				names = append(names, norm)
			}
		}
		return nil
	}
	if err := check("claim headers", top); err != nil {
		return nil, err
	}
	for _, rt := range routes {
		if err := check("route "+rt.Name+": claim headers", rt.ClaimHeaders); err != nil {
			return nil, err
		}
	}
	sort.Strings(names)
	return names, nil
}

// hopByHop and reserved are header names a claim may not be sent under:
// hop-by-hop headers never reach the upstream, and the others carry
// credentials, framing or what sessiongate itself sets.
var (
	hopByHop = []string{"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
		"te", "trailer", "transfer-encoding", "upgrade"}
	reservedHeaders = []string{"host", "content-length", "content-type", "content-encoding", "authorization", "cookie",
		"set-cookie", "forwarded", "x-request-id", "x-clerk-auth-reason", "x-clerk-auth-status"}
)

// ValidateClaimHeader reports why name cannot carry a claim under the
// identity header prefix: an invalid header name, a hop-by-hop header, one
// that carries credentials or framing, an X-Forwarded- header, or the name
// of an identity header (compared case-insensitively, "_" as "-"). It also
// checks that path is a dotted claim path without empty segments.
func ValidateClaimHeader(prefix, name, path string) error {
	if !netutil.IsToken(name) {
		return fmt.Errorf("%q is not a valid header name", name)
	}
	norm := normalizeHeader(name)
	for _, h := range hopByHop {
		if norm == h {
			return fmt.Errorf("%s is a hop-by-hop header", name)
		}
	}
	for _, h := range reservedHeaders {
		if norm == h {
			return fmt.Errorf("%s carries credentials or framing, or is set by sessiongate", name)
		}
	}
	if strings.HasPrefix(norm, "x-forwarded-") || strings.HasPrefix(norm, "x-original-") {
		return fmt.Errorf("%s is a forwarding header", name)
	}
	if prefix == "" {
		prefix = DefaultHeaderPrefix
	}
	for _, id := range IdentityHeaders(prefix) {
		if normalizeHeader(id) == norm {
			return fmt.Errorf("%s is an identity header", name)
		}
	}
	if path == "" {
		return fmt.Errorf("%s: empty claim path", name)
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return fmt.Errorf("%s: claim path %q has an empty segment", name, path)
		}
	}
	return nil
}

// isMappedName reports whether name is one of the mapped claim header
// names in any spelling (case, "_" for "-"). It runs on every inbound
// header and allocates nothing.
func (p *Proxy) isMappedName(name string) bool {
	for _, m := range p.mapped {
		if len(name) == len(m) && hasIdentityPrefix(name, m) {
			return true
		}
	}
	return false
}

// setClaimHeaders sets the route's claim headers from c.
func (p *Proxy) setClaimHeaders(h http.Header, rt *route, c *middleware.Claims) {
	for _, ch := range rt.claims {
		raw, ok := c.Claim(ch.path)
		if !ok {
			continue
		}
		v, drop := claimHeaderValue(raw)
		if drop != "" {
			if o, ok := p.obs.(ClaimHeaderObserver); ok {
				o.ClaimHeaderDropped(ch.name, drop)
			}
			continue
		}
		h[ch.name] = []string{v}
	}
}

// claimHeaderValue encodes a claim for a header: a string as it is, a
// number or boolean as its JSON text, an array of strings comma-joined,
// anything else (an object, a mixed array) as compact JSON. drop is set when
// the value must not be sent: a control character (CR, LF, NUL, tab…) or
// more than MaxClaimHeaderValue bytes.
func claimHeaderValue(raw json.RawMessage) (v, drop string) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", ""
		}
		v = s
	case raw[0] == '[':
		var list []string
		if json.Unmarshal(raw, &list) == nil {
			v = strings.Join(list, ",")
			break
		}
		v = compactJSON(raw)
	case raw[0] == '{':
		v = compactJSON(raw)
	default:
		v = string(raw)
	}
	if len(v) > MaxClaimHeaderValue {
		return "", ClaimDroppedTooLong
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return "", ClaimDroppedControl
		}
	}
	return v, ""
}

func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
