// Package netutil holds the address, header and connection rules that
// sessiongate's packages apply, so that each rule has one definition: which
// hosts count as loopback, whether a comma-separated header such as
// Connection or Upgrade holds a token, and how long a request's body may
// take to arrive on a listener without a read timeout (BoundBodies).
package netutil

import (
	"net/http"
	"net/netip"
	"strings"
)

// IsLoopbackIP reports whether host is an IP literal of the loopback
// interface: 127.0.0.0/8, ::1, or either of those with a zone ("::1%lo";
// the zone does not change the address) or IPv4-mapped
// ("::ffff:127.0.0.1"). An IPv6 literal may stand in one pair of square
// brackets, as in a URL's host ("[::1]"). Nothing is resolved: "localhost", and every other
// name, is not a loopback IP (see IsLoopbackHost), and neither is a
// shortened IPv4 form such as "127.1".
func IsLoopbackIP(host string) bool {
	bracketed := len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']'
	if bracketed {
		host = host[1 : len(host)-1]
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback() && (!bracketed || ip.Is6())
}

// IsLoopbackHost is IsLoopbackIP, or the name "localhost" in any case,
// which RFC 6761 reserves for the loopback interface. Other names that
// merely resolve to loopback ("localhost.", "app.localhost",
// "127.0.0.1.nip.io") are not loopback hosts: the name is compared, never
// resolved.
func IsLoopbackHost(host string) bool {
	return strings.EqualFold(host, "localhost") || IsLoopbackIP(host)
}

// HeaderHasToken reports whether the comma-separated header name of h
// (Connection, Upgrade, …), in any of its lines, lists token, compared
// ASCII case-insensitively and without the spaces around list elements.
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// IsToken reports whether s is an RFC 9110 token: one or more of the
// characters allowed in a header field name or a cookie name.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
