package middleware_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// jws signs payload with key under a header of alg, kid and typ, edited.
func jws(t *testing.T, key *clerktest.SigningKey, alg string, edits map[string]any, payload string) string {
	t.Helper()
	h := map[string]any{"alg": alg, "kid": key.ID, "typ": "JWT"}
	for k, v := range edits {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return clerktest.Sign(hb, []byte(payload), key, alg)
}

func TestVerifyJWS(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clk.Now().Unix()
	const body = `{"handshake":["__session=x; Path=/"]}`
	num := func(n int64) string { b, _ := json.Marshal(n); return string(b) }

	// Accepted: no claims at all, typ absent, the session and ignore
	// categories, exp and nbf in range; the payload comes back verbatim.
	for name, tok := range map[string]string{
		"plain":            jws(t, mainKey, "RS256", nil, body),
		"no typ":           jws(t, mainKey, "RS256", map[string]any{"typ": nil}, body),
		"session category": jws(t, mainKey, "RS256", map[string]any{"cat": "cl_B7d4PD111AAA"}, body),
		"ignore category":  jws(t, mainKey, "RS256", map[string]any{"cat": "cl_I7d4PD111III"}, body),
		"exp and nbf ok":   jws(t, mainKey, "RS256", nil, `{"handshake":[],"exp":`+num(now+60)+`,"nbf":`+num(now-60)+`}`),
		"exp within skew":  jws(t, mainKey, "RS256", nil, `{"handshake":[],"exp":`+num(now-4)+`}`),
	} {
		p, err := e.gate.VerifyJWS(t.Context(), tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "plain" && string(p) != body {
			t.Errorf("payload %s", p)
		}
	}

	for _, tc := range []struct {
		name string
		tok  string
		want middleware.Reason
	}{
		{"foreign key", jws(t, foreignK, "RS256", nil, body), middleware.ReasonTokenInvalidSignature},
		{"unknown kid", jws(t, mainKey, "RS256", map[string]any{"kid": "ins_nope"}, body), middleware.ReasonKidMismatch},
		{"no kid", jws(t, mainKey, "RS256", map[string]any{"kid": nil}, body), middleware.ReasonTokenInvalid},
		{"HS256", jws(t, mainKey, "HS256", nil, body), middleware.ReasonTokenInvalidAlgorithm},
		{"none", jws(t, mainKey, "none", nil, body), middleware.ReasonTokenInvalidAlgorithm},
		{"RS384 not allowed", jws(t, rs384Key, "RS384", nil, body), middleware.ReasonTokenInvalidAlgorithm},
		{"typ at+jwt", jws(t, mainKey, "RS256", map[string]any{"typ": "at+jwt"}, body), middleware.ReasonTokenTypeMismatch},
		{"typ other", jws(t, mainKey, "RS256", map[string]any{"typ": "JOSE"}, body), middleware.ReasonTokenInvalid},
		{"template category", jws(t, mainKey, "RS256", map[string]any{"cat": "cl_B7d4PD222AAA"}, body), middleware.ReasonTokenTypeMismatch},
		{"embedded jwk", jws(t, mainKey, "RS256", map[string]any{"jwk": map[string]string{"kty": "RSA"}}, body), middleware.ReasonTokenInvalid},
		{"crit", jws(t, mainKey, "RS256", map[string]any{"crit": []string{"b64"}}, body), middleware.ReasonTokenInvalid},
		{"expired", jws(t, mainKey, "RS256", nil, `{"exp":`+num(now-6)+`}`), middleware.ReasonTokenExpired},
		{"not yet valid", jws(t, mainKey, "RS256", nil, `{"nbf":`+num(now+60)+`}`), middleware.ReasonTokenNotActiveYet},
		{"string exp", jws(t, mainKey, "RS256", nil, `{"exp":"9999999999"}`), middleware.ReasonTokenInvalid},
		{"duplicate member", jws(t, mainKey, "RS256", nil, `{"handshake":[],"handshake":["x=1"]}`), middleware.ReasonTokenInvalid},
		{"not JSON", jws(t, mainKey, "RS256", nil, `handshake`), middleware.ReasonTokenInvalid},
		{"malformed", "a.b", middleware.ReasonTokenInvalid},
	} {
		_, err := e.gate.VerifyJWS(t.Context(), tc.tok)
		var me *middleware.Error
		if !errors.As(err, &me) || me.Reason != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}

	// Keys unavailable.
	e.keys.err = jwks.ErrUnavailable
	if _, err := e.gate.VerifyJWS(t.Context(), jws(t, mainKey, "RS256", nil, body)); !errors.Is(err, middleware.ErrKeysUnavailable) {
		t.Errorf("keys unavailable: %v", err)
	}
}
