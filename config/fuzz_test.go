package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/config"
)

// Secrets the fuzzed environment holds: none may appear in an error or in
// the redacted configuration unless the file itself spells it out.
const (
	fuzzSecretKey     = "sk_test_FuzzSecretKeyValue0123456789abcdef"
	fuzzWebhookSecret = "whsec_RnV6eldlYmhvb2tTZWNyZXRWYWx1ZQ=="
	fuzzAdminToken    = "fuzz-admin-token-value-0123456789"
)

func fuzzEnv(name string) (string, bool) {
	switch name {
	case "CLERK_SECRET_KEY":
		return fuzzSecretKey, true
	case "CLERK_WEBHOOK_SIGNING_SECRET":
		return fuzzWebhookSecret, true
	case "SESSIONGATE_ADMIN_TOKEN":
		return fuzzAdminToken, true
	case "TOKENS":
		return "100", true
	case "EMPTY":
		return "", true
	}
	return "", false
}

// FuzzLoad runs config.Load on arbitrary YAML. It must never panic or hang;
// every error must name what is wrong (a "config:" prefix and, for a
// *ValidationError, a key path on every problem) and never a secret's value;
// a configuration that loads must validate again, and its redacted form must
// carry no secret.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"# only a comment\n",
		"null\n",
		"upstream: http://127.0.0.1:3000\nclerk: {issuer: https://clerk.example.com}\n",
		"clerk:\n  issuer: https://clerk.example.com\n  secret_key: ${CLERK_SECRET_KEY}\n  webhook_secret: ${CLERK_WEBHOOK_SIGNING_SECRET}\nadmin_token: ${SESSIONGATE_ADMIN_TOKEN}\nadmin_listen: 0.0.0.0:9090\nupstream: http://127.0.0.1:3000\n",
		"clerk: {issuer: https://clerk.example.com, clock_skew: 10}\nupstream: http://127.0.0.1:3000\n",
		"clerk: {issuer: https://clerk.example.com/}\nupstream: http://127.0.0.1:3000\n",
		"clerk: {publishable_key: pk_test_Y2xlcmsuZXhhbXBsZS5jb20k}\nupstream: http://127.0.0.1:3000\n",
		"clerk: {issuer: https://clerk.example.com}\ncache: {tokens: \"${TOKENS}\"}\nupstream: http://127.0.0.1:3000\n",
		"clerk: {issuer: https://clerk.example.com}\nupstream: ${EMPTY}\n",
		"clerk: {issuer: https://clerk.example.com}\nupstream: ${UNSET:-http://127.0.0.1:1}\n",
		"clerk: {issuer: https://clerk.example.com}\nupstream: ${bad name}\n",
		"clerk: {issuer: https://clerk.example.com}\nupstream: ${UNTERMINATED\n",
		"clerk: {issuer: https://clerk.example.com}\nupstream: $$literal\n",
		"a: &a [*a]\n",
		"x: &x {a: 1}\nclerk: {<<: *x}\n",
		"---\nlisten: :1\n---\nlisten: :2\n",
		"routes:\n  - path: /\n    upstream: http://127.0.0.1:3000\n    auth: public\n  - path: /api\n    session_check: strict\n    on_session_check_error: allow\n    require: {org: true, roles: [admin], permissions: [org:x:y]}\nclerk: {issuer: https://clerk.example.com, secret_key: sk_live_abcdefgh}\n",
		"routes: [{path: /a/../b, upstream: 'ftp://x'}]\nclerk: {issuer: https://clerk.example.com}\n",
		"jwks: {refresh_interval: 1ns, min_refresh_interval: -5s, max_stale: 10}\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
		"server: {max_header_bytes: -1, shutdown_timeout: 1h}\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
		"headers: {prefix: 'X Bad:'}\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
		"trusted_proxies: [10.0.0.0/8, ::1, nonsense]\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
		"clerk: {issuer: https://clerk.example.com, jwt_key: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"}\nupstream: http://127.0.0.1:3000\n",
		"listen: [1, 2]\nclerk: 7\n",
		"\t\x00\xff: \"\\uD800\"\n",
		"bogus: 1\nclerk: {issuer: https://clerk.example.com, nope: 2}\n",
		"log: {level: trace, access: maybe}\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
		"revocation: {store: redis, redis_url: 'redis://user:pass@127.0.0.1:6379/0', ttl: 1s}\nclerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp("", "sessiongate-fuzz-config")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Sources{File: path, Env: fuzzEnv})
		// A file that references variables or holds a secret-looking value
		// can legitimately echo it (an operator put it in the wrong key);
		// otherwise no secret of the environment may be printed.
		checkSecrets := !bytes.ContainsRune(data, '$') && !bytes.Contains(data, []byte("sk_")) &&
			!bytes.Contains(data, []byte("whsec_")) && !bytes.Contains(data, []byte("fuzz-admin"))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "config:") || len(msg) <= len("config: ") {
				t.Fatalf("error does not say it is about the configuration: %q", msg)
			}
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				if len(ve.Problems) == 0 {
					t.Fatalf("a ValidationError without problems: %q", msg)
				}
				for _, p := range ve.Problems {
					if p.Key == "" || p.Msg == "" {
						t.Fatalf("a problem without a key or a message: %+v", p)
					}
				}
			}
			if checkSecrets {
				for _, s := range []string{fuzzSecretKey, fuzzWebhookSecret, fuzzAdminToken} {
					if strings.Contains(msg, s) {
						t.Fatalf("error leaks a secret: %q", msg)
					}
				}
			}
			if cfg != nil {
				t.Fatal("Load returned a configuration with an error")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a loaded configuration does not validate again: %v", err)
		}
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		if checkSecrets {
			for _, s := range []string{fuzzSecretKey, fuzzWebhookSecret, fuzzAdminToken} {
				if strings.Contains(string(out), s) {
					t.Fatalf("the redacted configuration shows a secret:\n%s", out)
				}
			}
		}
		if cfg.Clerk.SecretKey.Reveal() != "" && !strings.Contains(string(out), "REDACTED") {
			t.Fatalf("a secret key is set but nothing reads REDACTED:\n%s", out)
		}
	})
}
