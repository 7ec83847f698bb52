package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// envMap is an injected environment.
func envMap(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sessiongate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var pemKeys sync.Map // bits → PEM

func rsaPEM(t testing.TB, bits int) string {
	t.Helper()
	if v, ok := pemKeys.Load(bits); ok {
		return v.(string)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	v, _ := pemKeys.LoadOrStore(bits, p)
	return v.(string)
}

// validConfig is a minimal valid, normalized configuration.
func validConfig() Config {
	c := Defaults()
	c.Upstream = "http://127.0.0.1:3000"
	c.Clerk.Issuer = "https://clerk.example.com"
	c.Normalize()
	return c
}

// problemKeys returns the key paths of a *ValidationError.
func problemKeys(t testing.TB, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	keys := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		keys[i] = p.Key
	}
	return keys
}

func hasKey(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

func encodeStd(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var osReadFile = os.ReadFile

func fmtAll(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
