package app

import (
	"net/http/httptest"
	"testing"

	"github.com/sessiongate/sessiongate/config"
)

// The handshake's per-client key is the client address by the running
// configuration's trusted_proxies (a reload may change them), an IPv6
// client by its /64.
func TestHandshakeClientKeyFollowsTrustedProxies(t *testing.T) {
	t.Parallel()
	a := &App{}
	key := a.clientKey()
	run := func(trusted []string, peer, xff string) string {
		a.front.Store(&front{cfg: &config.Config{TrustedProxies: trusted}})
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return key(r)
	}
	for _, tc := range []struct {
		name    string
		trusted []string
		peer    string
		xff     string
		want    string
	}{
		{"no proxies", nil, "198.51.100.1:40000", "203.0.113.9", "198.51.100.1"},
		{"a spoofed header from an untrusted peer", []string{"10.0.0.0/8"}, "198.51.100.1:40000", "203.0.113.9", "198.51.100.1"},
		{"a trusted proxy", []string{"10.0.0.0/8"}, "10.0.0.1:8080", "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"a single trusted address", []string{"10.0.0.1"}, "10.0.0.1:8080", "198.51.100.1", "198.51.100.1"},
		{"after a reload without it", nil, "10.0.0.1:8080", "198.51.100.1", "10.0.0.1"},
		{"an IPv6 client by its /64", []string{"10.0.0.0/8"}, "10.0.0.1:8080", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"IPv4-mapped trusted address", []string{"::ffff:10.0.0.1"}, "10.0.0.1:8080", "198.51.100.1", "198.51.100.1"},
	} {
		if got := run(tc.trusted, tc.peer, tc.xff); got != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, got, tc.want)
		}
	}
}
