package netutil

import (
	"net/http"
	"testing"
)

// TestLoopback: only IP literals of the loopback interface are loopback
// IPs; "localhost" is a loopback host by name, and no other name is, since
// nothing is resolved.
func TestLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host     string
		ip, name bool
	}{
		{"127.0.0.1", true, true},
		{"127.1.2.3", true, true},
		{"127.255.255.255", true, true},
		{"::1", true, true},
		{"::1%lo", true, true},
		{"[::1]", true, true},
		{"[::1%lo]", true, true},
		{"::ffff:127.0.0.1", true, true},
		{"[::ffff:127.0.0.1]", true, true},
		{"0:0:0:0:0:0:0:1", true, true},
		{"localhost", false, true},
		{"LocalHost", false, true},
		{"", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"10.0.0.1", false, false},
		{"128.0.0.1", false, false},
		{"::2", false, false},
		{"fe80::1%lo", false, false},
		{"::ffff:10.0.0.1", false, false},
		{"127.1", false, false},
		{"[127.0.0.1]", false, false},
		{"[::1", false, false},
		{"::1]", false, false},
		{"[::1]:80", false, false},
		{"127.0.0.1:80", false, false},
		{"[::1]evil", false, false},
		{"::1%", false, false},
		{"localhost.", false, false},
		{"app.localhost", false, false},
		{"127.0.0.1.nip.io", false, false},
		{"localhost@evil.example", false, false},
	} {
		if got := IsLoopbackIP(tc.host); got != tc.ip {
			t.Errorf("IsLoopbackIP(%q) = %v, want %v", tc.host, got, tc.ip)
		}
		if got := IsLoopbackHost(tc.host); got != tc.name {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tc.host, got, tc.name)
		}
	}
}

func TestHeaderHasToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		values []string
		token  string
		want   bool
	}{
		{"one value", []string{"Upgrade"}, "upgrade", true},
		{"any case", []string{"UPGRADE"}, "upgrade", true},
		{"in a list", []string{"keep-alive, Upgrade"}, "upgrade", true},
		{"spaces around elements", []string{"keep-alive ,  upgrade  ,close"}, "upgrade", true},
		{"in a later line", []string{"keep-alive", "upgrade"}, "upgrade", true},
		{"absent", []string{"keep-alive, close"}, "upgrade", false},
		{"a prefix is not the token", []string{"upgrade-insecure"}, "upgrade", false},
		{"a substring is not the token", []string{"x-upgrade"}, "upgrade", false},
		{"no header", nil, "upgrade", false},
		{"empty elements", []string{",,"}, "upgrade", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Connection": tc.values}
			if got := HeaderHasToken(h, "Connection", tc.token); got != tc.want {
				t.Errorf("HeaderHasToken(%q, %q) = %v, want %v", tc.values, tc.token, got, tc.want)
			}
		})
	}
}

func TestIsToken(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"X-Request-Id":      true,
		"__session":         true,
		"a!#$%&'*+-.^_`|~z": true,
		"":                  false,
		"a b":               false,
		"a:b":               false,
		"a;b":               false,
		"a=b":               false,
		"é":                 false,
		"a\x00":             false,
	} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}
