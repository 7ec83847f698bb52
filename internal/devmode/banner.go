package devmode

import (
	"fmt"
	"io"
	"strings"
	"time"
)

type bannerData struct {
	Gate, Clerk, Admin, Token, SignIn string
	APIKey                            string // the demo user's, for /api
	Lifetime                          time.Duration
	ClerkFlag                         bool // the fake is not on the default address
	Serve                             []envSetting
	SecretKey                         string // the fake's
	Development                       bool   // --instance development
}

// envSetting is one environment variable of the printed serve command.
type envSetting struct{ Name, Value string }

// serveSettings are the environment of a `sessiongate serve` that verifies
// the fake's tokens in front of the same demo upstream: the fake's issuer
// (keys from its public JWKS, {issuer}/.well-known/jwks.json, so no secret
// key is involved), the dev gate's origin as the authorized party (the azp
// of every dev token), and listeners beside dev's own.
func serveSettings(issuer, gateOrigin, demoURL string) []envSetting {
	return []envSetting{
		{"SESSIONGATE_ISSUER", issuer},
		{"SESSIONGATE_AUTHORIZED_PARTIES", gateOrigin},
		{"SESSIONGATE_UPSTREAM", demoURL},
		{"SESSIONGATE_LISTEN", "127.0.0.1:8090"},
		{"SESSIONGATE_ADMIN_LISTEN", "127.0.0.1:9091"},
	}
}

func printBanner(w io.Writer, d bannerData) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nsessiongate dev: a fake Clerk instance, a demo upstream, and the gate in front, on loopback.\n\n")
	fmt.Fprintf(&b, "  gate        %s   (\"/public\" is public, everything else requires a session)\n", d.Gate)
	kind := "a production instance"
	if d.Development {
		kind = "a development instance: Clerk's dev-browser handshake"
	}
	fmt.Fprintf(&b, "  fake Clerk  %s   (%s; secret key %s: public, it protects nothing but this loopback fake)\n", d.Clerk, kind, d.SecretKey)
	if d.Admin != "" {
		fmt.Fprintf(&b, "  admin       %s   (/healthz, /readyz, /metrics)\n", d.Admin)
	}
	fmt.Fprintf(&b, "\nA request with a session token (valid for %v; real Clerk session tokens live 60s):\n\n", d.Lifetime)
	fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/hello\n\n", d.Token, d.Gate)
	fmt.Fprintf(&b, "The same without a token (401, X-Clerk-Auth-Reason: session-token-missing):\n\n")
	fmt.Fprintf(&b, "  curl -i %s/hello\n\n", d.Gate)
	if d.APIKey != "" {
		fmt.Fprintf(&b, "A Clerk API key of the same user (\"/api\" takes session tokens and API keys; docs/machine-auth.md):\n\n")
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/hello\n\n", d.APIKey, d.Gate)
	}
	fmt.Fprintf(&b, "In a browser, sign in on the fake (it sets the __session cookie on this host):\n\n")
	fmt.Fprintf(&b, "  %s\n\n", d.SignIn)
	fmt.Fprintf(&b, "Once a token expires, the next page load renews it through Clerk's handshake (307 to the fake's\n"+
		"/v1/client/handshake and back); try it with a short --token-lifetime, e.g. 10s.\n\n")
	clerkFlag := ""
	if d.ClerkFlag {
		clerkFlag = " --clerk " + d.Clerk
	}
	if d.SecretKey != "" && d.SecretKey != DevSecretKey {
		clerkFlag += " --secret-key " + d.SecretKey
	}
	fmt.Fprintf(&b, "More tokens:\n\n  sessiongate dev token%s --user user_123 --org org_456 --role admin\n\n", clerkFlag)
	if len(d.Serve) > 0 {
		fmt.Fprintf(&b, "The same demo behind `sessiongate serve`, verifying this fake's tokens (while dev runs):\n\n")
		for _, e := range d.Serve {
			fmt.Fprintf(&b, "  %s=%s \\\n", e.Name, e.Value)
		}
		fmt.Fprintf(&b, "  sessiongate serve\n\n")
	}
	fmt.Fprintf(&b, "Ctrl-C stops everything.\n\n")
	_, _ = io.WriteString(w, b.String())
}
