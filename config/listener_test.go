package config

import (
	"strings"
	"testing"
)

func TestForwardAuthOnlyRoutesNeedNoUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		yaml     string
		problem  string // "" valid
		fwdOnly  bool
		upstream []string // each route's effective upstream
	}{
		{name: "no upstream anywhere", yaml: "routes:\n  - {path: /assets, auth: public}\n  - {path: /}\n",
			fwdOnly: true, upstream: []string{"", ""}},
		{name: "every route its own", yaml: "routes:\n  - {path: /a, upstream: http://127.0.0.1:1}\n  - {path: /, upstream: h2c://127.0.0.1:2}\n",
			upstream: []string{"http://127.0.0.1:1", "h2c://127.0.0.1:2"}},
		{name: "top-level upstream", yaml: "upstream: https://app.internal\nroutes:\n  - {path: /}\n",
			upstream: []string{"https://app.internal"}},
		{name: "one route forgot its upstream", yaml: "routes:\n  - {path: /a, upstream: http://127.0.0.1:1}\n  - {path: /}\n",
			problem: "routes[1].upstream: required: other routes have an upstream and there is no top-level upstream"},
		{name: "no routes and no upstream", yaml: "clerk: {clock_skew: 1s}\n", problem: "upstream: no upstream"},
		{name: "unknown scheme", yaml: "routes:\n  - {path: /, upstream: ftp://127.0.0.1:1}\n",
			problem: `routes[0].upstream: "ftp://127.0.0.1:1" must be an absolute http://, https:// or h2c:// URL`},
		{name: "h2c without host", yaml: "upstream: h2c:///x\n", problem: `upstream: "http:///x" has no host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(Sources{File: writeFile(t, tc.yaml), Env: envMap("SESSIONGATE_ISSUER", "https://clerk.example.com")})
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("got %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ForwardAuthOnly() != tc.fwdOnly {
				t.Fatalf("ForwardAuthOnly = %v", c.ForwardAuthOnly())
			}
			for i, want := range tc.upstream {
				if c.Routes[i].Upstream != want {
					t.Fatalf("routes[%d].upstream = %q, want %q", i, c.Routes[i].Upstream, want)
				}
			}
		})
	}
}

func TestTLSFromTheEnvironment(t *testing.T) {
	t.Parallel()
	_, err := Load(Sources{Env: envMap(
		"SESSIONGATE_ISSUER", "https://clerk.example.com",
		"SESSIONGATE_UPSTREAM", "http://127.0.0.1:1",
		"SESSIONGATE_TLS_CERT_FILE", "/nonexistent/tls.crt",
		"SESSIONGATE_TLS_KEY_FILE", "/nonexistent/tls.key",
		"SESSIONGATE_TLS_CLIENT_CA_FILE", "/nonexistent/ca.crt",
	)})
	keys := problemKeys(t, err)
	if strings.Join(keys, ",") != "tls.cert_file,tls.client_ca_file" {
		t.Fatalf("problems %v (%v)", keys, err)
	}
	mustContain(t, err.Error(), "tls.cert_file: open /nonexistent/tls.crt: no such file or directory")
}
