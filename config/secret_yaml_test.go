package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/config"
)

// TestSecretsOfTheWrongYAMLTypeAreNotEchoed: yaml.v3 quotes a scalar in its
// type errors; a secret field given a non-string value (an explicit tag, a
// list, a map) is refused by key path without its value.
func TestSecretsOfTheWrongYAMLTypeAreNotEchoed(t *testing.T) {
	t.Parallel()
	const sk = "sk_test_DoNotEchoThisSecretValue0123456789"
	for _, tc := range []struct{ body, key string }{
		{"clerk: {secret_key: !!int " + sk + "}\n", "clerk.secret_key"},
		{"clerk: {secret_key: !!binary " + sk + "}\n", "clerk.secret_key"},
		{"clerk: {webhook_secret: !!float " + sk + "}\n", "clerk.webhook_secret"},
		{"admin_token: !!bool " + sk + "\n", "admin_token"},
		{"admin_token: [" + sk + "]\n", "admin_token"},
		{"revocation: {redis_url: {u: " + sk + "}}\n", "revocation.redis_url"},
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(config.Sources{File: p, Env: func(string) (string, bool) { return "", false }})
		if err == nil || strings.Contains(err.Error(), sk) || !strings.Contains(err.Error(), tc.key+": a secret must be a plain string") {
			t.Errorf("%q: err = %v", tc.body, err)
		}
	}
	// Plain, quoted, numeric-looking and aliased secrets still load.
	for _, body := range []string{
		"clerk: {secret_key: " + sk + "}\n",
		"clerk: {secret_key: '" + sk + "'}\n",
		"clerk: {secret_key: !!str " + sk + "}\n",
		"clerk: {secret_key: &k " + sk + "}\nadmin_token: *k\n",
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body+"upstream: http://127.0.0.1:3000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(config.Sources{File: p, Env: func(string) (string, bool) { return "", false }})
		if err != nil && strings.Contains(err.Error(), "a secret must be") {
			t.Errorf("%q refused: %v", body, err)
		}
		if err != nil && strings.Contains(err.Error(), sk) {
			t.Errorf("%q: error leaks the secret: %v", body, err)
		}
	}
}
