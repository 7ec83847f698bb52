package proxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client that sent r, believing
// X-Forwarded-For only as far as proxies in trusted wrote it. It is the one
// home of that rule: per-client limits MUST use it (or ClientKey of it),
// never a forwarding header of their own reading.
//
// The peer (r.RemoteAddr) is the client unless it is in trusted. A trusted
// peer appended to X-Forwarded-For the address it received the request
// from, and so did every trusted proxy before it; ClientAddr walks the
// header from the right and returns the first address that is not itself
// in trusted. Everything left of that was written by the client (or by a
// proxy nobody vouches for) and is never read. When every entry is trusted
// the left-most one is returned; when the header is absent or empty, the
// peer.
//
// Several X-Forwarded-For lines are one list, in order; empty elements and
// the spaces around an element are skipped. An element is an IP address,
// optionally in brackets or with a port ("198.51.100.1:4711",
// "[2001:db8::1]:443"). Anything else ("unknown", a name, an obfuscated
// identifier) ends the walk: the hop to its right wrote it, and that hop's
// address is returned, so that a client cannot steer the walk past a
// garbled entry.
//
// Addresses are compared and returned normalised: IPv4-mapped IPv6 as IPv4,
// and without an IPv6 zone (a zone names a local interface, not a client,
// and a zoned address is never inside a netip.Prefix). The zero Addr is
// returned when r.RemoteAddr is not an address and port (a Unix socket).
//
// The cost is one pass over the header, without allocating; the Forwarded
// header (RFC 7239) is not read.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := peerAddr(r)
	if !ok || !inPrefixes(peer, trusted) {
		return peer
	}
	client := peer // the nearest hop known so far; trusted while the walk goes on
	lines := r.Header.Values("X-Forwarded-For")
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			var elem string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, elem = rest[:j], rest[j+1:]
			} else {
				rest, elem = "", rest
			}
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			a, ok := parseForwardedAddr(elem)
			if !ok {
				return client
			}
			client = a
			if !inPrefixes(a, trusted) {
				return client
			}
		}
	}
	return client
}

// ClientKey is the key a per-client limit counts a ClientAddr under: the
// address for IPv4, the /64 for IPv6 (the block one subscriber is usually
// given, any address of which it may use: keyed by address, an IPv6 client
// would have 2^64 budgets), "" for the zero Addr.
func ClientKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// peerAddr is the normalised address of r's peer.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// inPrefixes reports whether a (normalised) is in one of prefixes.
func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwardedAddr reads one X-Forwarded-For element: an address, in
// brackets or not, with or without a port.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(s); err2 == nil {
			a, err = ap.Addr(), nil
		} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
		}
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
