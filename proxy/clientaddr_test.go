package proxy_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/proxy"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
		netip.MustParsePrefix("fe80::/10"),
	}
	for _, tc := range []struct {
		name string
		peer string
		xff  []string // X-Forwarded-For lines, in order; nil: none
		want string   // "" for the zero Addr
	}{
		{"direct client", "198.51.100.1:40000", nil, "198.51.100.1"},
		{"spoofed header from an untrusted peer is ignored", "198.51.100.1:40000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"spoofed chain from an untrusted peer is ignored", "198.51.100.1:40000", []string{"203.0.113.9, 10.0.0.7"}, "198.51.100.1"},
		{"trusted proxy without the header", "10.0.0.1:8080", nil, "10.0.0.1"},
		{"trusted proxy with an empty header", "10.0.0.1:8080", []string{""}, "10.0.0.1"},
		{"trusted proxy", "10.0.0.1:8080", []string{"198.51.100.1"}, "198.51.100.1"},
		{"the client's own entries are left of the proxy's", "10.0.0.1:8080", []string{"203.0.113.9, 6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", "10.0.0.1:8080", []string{"203.0.113.9, 198.51.100.1, 10.0.0.9, 10.3.0.1"}, "198.51.100.1"},
		{"a client that claims to be a trusted proxy", "10.0.0.1:8080", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"every hop trusted: the left-most", "10.0.0.1:8080", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"several header lines are one list", "10.0.0.1:8080", []string{"203.0.113.9", "198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"a later line is nearer", "10.0.0.1:8080", []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
		{"spaces, tabs and empty elements", "10.0.0.1:8080", []string{" 203.0.113.9 ,, \t198.51.100.1\t , 10.0.0.9 ,"}, "198.51.100.1"},
		{"ports and brackets", "10.0.0.1:8080", []string{"203.0.113.9, 198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 with a port", "10.0.0.1:8080", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv6 in brackets", "10.0.0.1:8080", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv6 chain", "[2001:db8:ffff::1]:8080", []string{"2001:db8::7, 2001:db8:ffff:1::2"}, "2001:db8::7"},
		{"IPv4-mapped peer and entry", "[::ffff:10.0.0.1]:8080", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"zoned trusted peer", "[fe80::1%eth0]:8080", []string{"198.51.100.1"}, "198.51.100.1"},
		{"zoned entries: trusted through the zone, returned without it", "10.0.0.1:8080", []string{"2001:db8::7%x, fe80::2%eth1"}, "2001:db8::7"},
		{"zoned untrusted peer, returned without the zone", "[2001:db8::7%eth0]:8080", []string{"198.51.100.1"}, "2001:db8::7"},
		{"malformed right-most: the proxy that wrote it", "10.0.0.1:8080", []string{"198.51.100.1, unknown"}, "10.0.0.1"},
		{"malformed behind a trusted hop: that hop", "10.0.0.1:8080", []string{"198.51.100.1, _hidden, 10.0.0.9"}, "10.0.0.9"},
		{"malformed left of the client: not reached", "10.0.0.1:8080", []string{"garbage, 198.51.100.1"}, "198.51.100.1"},
		{"an IPv4 address with a zone is malformed", "10.0.0.1:8080", []string{"198.51.100.1, 10.0.0.9%x"}, "10.0.0.1"},
		{"a prefix is malformed", "10.0.0.1:8080", []string{"198.51.100.0/24"}, "10.0.0.1"},
		{"a name is malformed", "10.0.0.1:8080", []string{"client.example"}, "10.0.0.1"},
		{"a port alone is malformed", "10.0.0.1:8080", []string{":443"}, "10.0.0.1"},
		{"unbalanced brackets are malformed", "10.0.0.1:8080", []string{"[2001:db8::7"}, "10.0.0.1"},
		{"peer without a port", "198.51.100.1", nil, ""},
		{"Unix socket peer", "@", []string{"198.51.100.1"}, ""},
		{"no peer", "", []string{"198.51.100.1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := proxy.ClientAddr(r, trusted)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientAddr = %v, want the zero Addr", got)
				}
				return
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("ClientAddr = %v, want %s", got, tc.want)
			}
		})
	}
}

// Without trusted proxies the header is never read.
func TestClientAddrWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:8080"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := proxy.ClientAddr(r, nil); got != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("ClientAddr = %v, want the peer", got)
	}
}

// A header of a million trusted hops costs one pass and no allocation per
// entry. (Not parallel: AllocsPerRun.)
func TestClientAddrLongChainIsLinear(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:8080"
	r.Header.Set("X-Forwarded-For", "198.51.100.1,"+strings.Repeat("10.0.0.9,", 1<<20))
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if allocs := testing.AllocsPerRun(3, func() {
		if got := proxy.ClientAddr(r, trusted); got != netip.MustParseAddr("198.51.100.1") {
			t.Fatalf("ClientAddr = %v", got)
		}
	}); allocs > 2 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.1":         "198.51.100.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"::ffff:198.51.100.1":  "198.51.100.1",
		"fe80::1%eth0":         "fe80::/64",
		"":                     "",
	} {
		var a netip.Addr
		if in != "" {
			a = netip.MustParseAddr(in)
		}
		if got := proxy.ClientKey(a); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
