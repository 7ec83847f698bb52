package jwks

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	"strings"
	"testing"
)

func TestParseKeySet(t *testing.T) {
	t.Parallel()
	pubA := &rsaKey(t, 0).PublicKey
	pubB := &rsaKey(t, 1).PublicKey
	a := rsaJWK("ins_a", RS256, pubA)
	b := rsaJWK("ins_b", RS256, pubB)

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecJWK := map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig",
		"x": b64(ec.X.FillBytes(make([]byte, 32))), "y": b64(ec.Y.FillBytes(make([]byte, 32))),
	}
	priv := rsaKey(t, 1)
	privJWK := with(b, "kid", "ins_priv", "d", b64(priv.D.Bytes()),
		"p", b64(priv.Primes[0].Bytes()), "q", b64(priv.Primes[1].Bytes()))

	tests := []struct {
		name        string
		data        []byte
		wantKids    []string // in order
		wantAlgs    []string // parallel to wantKids; nil means all RS256
		wantSkipped int
		wantErr     string // substring; "" means success
	}{
		{name: "good set of two RS256 keys", data: jwksJSON(t, a, b), wantKids: []string{"ins_a", "ins_b"}},
		{name: "use may be absent", data: jwksJSON(t, with(a, "use", nil)), wantKids: []string{"ins_a"}},
		{name: "RS384 key keeps its alg", data: jwksJSON(t, rsaJWK("k384", RS384, pubA)),
			wantKids: []string{"k384"}, wantAlgs: []string{RS384}},
		{name: "RS512 key keeps its alg", data: jwksJSON(t, rsaJWK("k512", RS512, pubA)),
			wantKids: []string{"k512"}, wantAlgs: []string{RS512}},
		{name: "key without alg is skipped", data: jwksJSON(t, rsaJWK("noalg", "", pubB), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "key with another alg is skipped", data: jwksJSON(t, rsaJWK("ps", "PS256", pubB), rsaJWK("hs", "HS256", pubA), a),
			wantKids: []string{"ins_a"}, wantSkipped: 2},
		{name: "EC key is skipped", data: jwksJSON(t, ecJWK, a), wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "encryption key is skipped", data: jwksJSON(t, with(b, "use", "enc"), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "key_ops without verify is skipped", data: jwksJSON(t, with(b, "key_ops", []string{"encrypt"}), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "key_ops with verify is kept", data: jwksJSON(t, with(a, "key_ops", []string{"verify"})),
			wantKids: []string{"ins_a"}},
		{name: "key without kid is skipped", data: jwksJSON(t, rsaJWK("", RS256, pubB), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "key with private material is skipped", data: jwksJSON(t, privJWK, a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "symmetric key is skipped", data: jwksJSON(t, map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "1024-bit key is skipped", data: jwksJSON(t, rsaJWK("short", RS256, &shortKey().PublicKey), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "malformed modulus is skipped", data: jwksJSON(t, with(b, "n", "!!not base64!!"), a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},
		{name: "unknown kty is skipped", data: jwksJSON(t, map[string]any{"kty": "XYZ", "kid": "x"}, a),
			wantKids: []string{"ins_a"}, wantSkipped: 1},

		{name: "duplicate kid rejects the set", data: jwksJSON(t, a, with(b, "kid", "ins_a")), wantErr: "more than one key"},
		{name: "duplicate kid across key types rejects the set", data: jwksJSON(t, a, with(ecJWK, "kid", "ins_a")), wantErr: "more than one key"},
		{name: "only skipped keys is an error", data: jwksJSON(t, ecJWK, rsaJWK("noalg", "", pubA)), wantErr: "no usable key"},
		{name: "empty set is an error", data: jwksJSON(t), wantErr: "empty"},
		{name: "garbage is an error", data: []byte("<html>502 Bad Gateway</html>"), wantErr: "not a JSON object"},
		{name: "empty body is an error", data: nil, wantErr: "not a JSON object"},
		{name: "JSON array is an error", data: []byte(`[{"kty":"RSA"}]`), wantErr: "not a JSON object"},
		{name: "missing keys member is an error", data: []byte(`{"KEYS":[]}`), wantErr: `no "keys"`},
		{name: "keys not an array is an error", data: []byte(`{"keys":{}}`), wantErr: "not an array"},
		{name: "keys null is an error", data: []byte(`{"keys":null}`), wantErr: "not an array"},
		{name: "oversize document is an error",
			data:    append(jwksJSON(t, a), bytes.Repeat([]byte(" "), maxKeySetBytes)...),
			wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, skipped, err := parseKeySet(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if keys != nil {
					t.Errorf("keys = %v on error, want nil", keys)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(skipped) != tt.wantSkipped {
				t.Errorf("skipped = %v, want %d", skipped, tt.wantSkipped)
			}
			if len(keys) != len(tt.wantKids) {
				t.Fatalf("got %d keys, want %v", len(keys), tt.wantKids)
			}
			for i, k := range keys {
				wantAlg := RS256
				if tt.wantAlgs != nil {
					wantAlg = tt.wantAlgs[i]
				}
				if k.ID != tt.wantKids[i] || k.Algorithm != wantAlg {
					t.Errorf("key %d = %s/%s, want %s/%s", i, k.ID, k.Algorithm, tt.wantKids[i], wantAlg)
				}
				if k.Retired() {
					t.Errorf("key %d is retired", i)
				}
			}
		})
	}
}

func TestParseKeySetKeyMaterial(t *testing.T) {
	t.Parallel()
	pub := &rsaKey(t, 2).PublicKey
	keys, _, err := parseKeySet(jwksJSON(t, rsaJWK("ins_x", RS256, pub)))
	if err != nil {
		t.Fatal(err)
	}
	if got := keys[0].Public; got.N.Cmp(pub.N) != 0 || got.E != pub.E {
		t.Fatalf("parsed key does not match the published one")
	}
	if keys[0].Public.E != 65537 || keys[0].Public.N.Cmp(big.NewInt(0)) <= 0 {
		t.Fatalf("unexpected exponent or modulus")
	}
}

func FuzzParseKeySet(f *testing.F) {
	pub := &rsaKey(f, 0).PublicKey
	f.Add(jwksJSON(f, rsaJWK("ins_a", RS256, pub)))
	f.Add(jwksJSON(f, rsaJWK("ins_a", "", pub), map[string]any{"kty": "EC"}))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","alg":"RS256","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[1,"x",null,{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseKeySet(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if k.ID == "" || seen[k.ID] || k.Public.N.BitLen() < MinRSABits {
				t.Fatalf("bad key %q", k.ID)
			}
			seen[k.ID] = true
			switch k.Algorithm {
			case RS256, RS384, RS512:
			default:
				t.Fatalf("alg %q", k.Algorithm)
			}
		}
	})
}
