package admin

import "testing"

// TestLoopbackHost: Host header values an admin listener without a token
// accepts are loopback literals and "localhost", with or without a port;
// names that only resolve to loopback are refused, since the Host is
// compared, never resolved.
func TestLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost":              true,
		"LocalHost:9090":         true,
		"127.0.0.1":              true,
		"127.0.0.1:9090":         true,
		"127.8.9.10:9090":        true,
		"[::1]":                  true,
		"[::1]:9090":             true,
		"::1":                    true,
		"[::1%lo]:9090":          true,
		"[::ffff:127.0.0.1]:80":  true,
		"":                       false,
		"localhost.":             false,
		"localhost.:9090":        false,
		"app.localhost:9090":     false,
		"127.0.0.1.nip.io:9090":  false,
		"127.1:9090":             false,
		"0.0.0.0:9090":           false,
		"[::]:9090":              false,
		"10.0.0.1:9090":          false,
		"evil.example":           false,
		"evil.example:9090":      false,
		"[::1]evil:9090":         false,
		"localhost@evil.example": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
