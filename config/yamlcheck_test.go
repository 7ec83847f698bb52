package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func loadFile(t *testing.T, body string, env map[string]string) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(Sources{File: f, Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	return err
}

// TestYAMLProblemsNameTheKeyPath: every problem of a file is reported at
// once, each with its line, key path, what was wanted and what was found,
// and unknown keys get the key they were probably meant to be.
func TestYAMLProblemsNameTheKeyPath(t *testing.T) {
	t.Parallel()
	body := `listen: [":8080"]
cache:
  tokens: lots
  shared: maybe
log:
  acess: true
clerk:
  secrte_key: x
  authorized_parties: https://app.example.com
  clock_skew: 30
routes:
  - path: /
    forward_token: "sometimes"
    require: {roles: admin}
  - path: 7
tokens: 5
server:
  max_header_bytes: 1.5
`
	err := loadFile(t, body, nil)
	if err == nil {
		t.Fatal("a file with eleven problems loaded")
	}
	for _, want := range []string{
		`line 1: listen: want a string, got a list`,
		`line 3: cache.tokens: want an integer, got "lots"`,
		`line 4: cache.shared: want true or false, got "maybe"`,
		`line 6: log.acess: unknown key (did you mean log.access?)`,
		`line 8: clerk.secrte_key: unknown key (did you mean clerk.secret_key?)`,
		`line 9: clerk.authorized_parties: want a list, got "https://app.example.com"`,
		`line 10: clerk.clock_skew: duration "30" has no unit`,
		`line 13: routes[0].forward_token: want true or false, got "sometimes"`,
		`line 14: routes[0].require.roles: want a list, got "admin"`,
		`line 16: tokens: unknown key (did you mean cache.tokens?)`,
		`line 18: server.max_header_bytes: want an integer, got "1.5"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// routes[1].path: 7 is a string key given a number: YAML scalars fill
	// strings, so that is not a problem.
	if strings.Contains(err.Error(), "routes[1]") {
		t.Errorf("a number in a string key was refused:\n%v", err)
	}
}

// TestYAMLProblemsHideEnvironmentValues: a value that came from ${VAR}
// may be a secret referenced by mistake: the error names the key, not the
// value.
func TestYAMLProblemsHideEnvironmentValues(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_ThisMustNeverBePrinted0123"
	err := loadFile(t, "cache:\n  tokens: ${CLERK_SECRET_KEY}\njwks:\n  max_stale: ${CLERK_SECRET_KEY}\nadmin_token: [a]\n",
		map[string]string{"CLERK_SECRET_KEY": secret})
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		"cache.tokens: want an integer, got a value from the environment (not shown)",
		"jwks.max_stale: the value from the environment is not a duration",
		"admin_token: a secret must be a plain string (value not shown)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the secret is in the error:\n%v", err)
	}
}

func TestSuggestKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, parent, want string }{
		{"lisen", "", "listen"},
		{"admin-listen", "", "admin_listen"},
		{"Upstream", "", "upstream"},
		{"refresh_intervall", "jwks", "jwks.refresh_interval"},
		{"session_ttl", "", "cache.session_ttl"},
		{"zzzzzz", "", ""},
	} {
		fields := structFields(typeAt(t, tc.parent))
		if got := suggestKey(tc.key, tc.parent, fields); got != tc.want {
			t.Errorf("suggestKey(%q, %q) = %q, want %q", tc.key, tc.parent, got, tc.want)
		}
	}
}

// typeAt is the struct type at a top-level key path ("" or "jwks").
func typeAt(t *testing.T, key string) reflect.Type {
	t.Helper()
	typ := reflect.TypeOf(Config{})
	if key == "" {
		return typ
	}
	ft, ok := structFields(typ)[key]
	if !ok {
		t.Fatalf("no key %s", key)
	}
	return ft
}
