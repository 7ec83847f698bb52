package clerktest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sharedKeys are generated once: RSA key generation dominates the package's
// test time otherwise. Index 0 is the default instance key; 1 is foreign.
var sharedKeys = sync.OnceValues(func() ([2]*SigningKey, error) {
	var ks [2]*SigningKey
	for n := range ks {
		k, err := NewSigningKey("", "")
		if err != nil {
			return ks, err
		}
		ks[n] = k
	}
	return ks, nil
})

func sharedKey(tb testing.TB, n int) *SigningKey {
	tb.Helper()
	ks, err := sharedKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return ks[n]
}

// start starts an instance using the shared key unless opts has one.
func start(tb testing.TB, opts Options) *Instance {
	tb.Helper()
	if opts.SigningKey == nil {
		opts.SigningKey = sharedKey(tb, 0)
	}
	return Start(tb, opts)
}

// get sends a GET with an optional Authorization header and returns the
// response and its body.
func get(tb testing.TB, client *http.Client, url, authorization string) (*http.Response, []byte, error) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// mustGet is get that fails on transport errors.
func mustGet(tb testing.TB, url, authorization string) (*http.Response, []byte) {
	tb.Helper()
	resp, body, err := get(tb, nil, url, authorization)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

// parsedToken is a compact JWS split into its decoded parts.
type parsedToken struct {
	rawHeader, rawPayload []byte
	header, claims        map[string]json.RawMessage
	signingInput          string
	sig                   []byte
}

func parseToken(tb testing.TB, tok string) parsedToken {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("token has %d segments, want 3", len(parts))
	}
	var p parsedToken
	var err error
	dec := base64.RawURLEncoding
	if p.rawHeader, err = dec.DecodeString(parts[0]); err != nil {
		tb.Fatalf("header: %v", err)
	}
	if p.rawPayload, err = dec.DecodeString(parts[1]); err != nil {
		tb.Fatalf("payload: %v", err)
	}
	if p.sig, err = dec.DecodeString(parts[2]); err != nil {
		tb.Fatalf("signature: %v", err)
	}
	if err := json.Unmarshal(p.rawHeader, &p.header); err != nil {
		tb.Fatalf("header JSON %s: %v", p.rawHeader, err)
	}
	if err := json.Unmarshal(p.rawPayload, &p.claims); err != nil {
		tb.Fatalf("payload JSON %s: %v", p.rawPayload, err)
	}
	p.signingInput = parts[0] + "." + parts[1]
	return p
}

// str decodes a JSON string member, failing if it is absent or not a string.
func (p parsedToken) str(tb testing.TB, m map[string]json.RawMessage, name string) string {
	tb.Helper()
	raw, ok := m[name]
	if !ok {
		tb.Fatalf("%q absent", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatalf("%q = %s: %v", name, raw, err)
	}
	return s
}

// num decodes a JSON integer claim.
func (p parsedToken) num(tb testing.TB, name string) int64 {
	tb.Helper()
	var n int64
	if err := json.Unmarshal(p.claims[name], &n); err != nil {
		tb.Fatalf("%q = %s: %v", name, p.claims[name], err)
	}
	return n
}

// verifyRS256 checks an RS256 signature with pub.
func (p parsedToken) verifyRS256(pub *rsa.PublicKey) error {
	d := sha256.Sum256([]byte(p.signingInput))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], p.sig)
}

// keysOf returns the member names of m, sorted.
func keysOf(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }
