package jwks

// This is the only file of the module that imports lestrrat-go/jwx. Moving to
// jwx v3 (where Key.Raw becomes jwk.Export) changes this file alone.

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxKeySetBytes caps a JWKS document. Clerk's sets hold one or two keys
// (well under 2 KiB); 1 MiB leaves room for anything legitimate and bounds the
// memory a hostile or broken endpoint can make us spend.
const maxKeySetBytes = 1 << 20

// privateMembers are the JWK members that carry secret key material
// (RFC 7518 §6.3.2 for RSA, §6.4 for "k"). A public JWKS never has them.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseKeySet parses a JWKS document into verification keys.
//
// Each key is checked on its own; a key that is not usable for verifying
// Clerk session tokens is skipped and the reason returned in skipped. A key is
// usable when kty is "RSA", "use" is absent or "sig", "key_ops" is absent or
// contains "verify", "alg" is RS256, RS384 or RS512, "kid" is present, and the
// modulus has at least MinRSABits bits. A key without "alg" is skipped: Clerk
// always sets it, and the algorithm is pinned to the key, so such a key could
// verify nothing.
//
// A key that carries private material ("d" and friends) is skipped, not
// trusted and not used: its private half is public now, so anything it signed
// is forgeable. Skipping it (rather than rejecting the whole document) makes
// it leave the current set, which retires the previous copy of it; rejecting
// the document would instead keep the last good set, and with it that key.
//
// The whole document is rejected (err != nil) when it is larger than 1 MiB,
// is not a JSON object with a "keys" array, has two keys with the same "kid"
// (whatever their type: a verifier must never have to choose), or yields no
// usable key.
func parseKeySet(data []byte) (keys []*Key, skipped []error, err error) {
	if len(data) > maxKeySetBytes {
		return nil, nil, fmt.Errorf("jwks: key set larger than %d bytes", maxKeySetBytes)
	}
	// A map, not a struct: encoding/json matches struct fields without regard
	// to case, and "KEYS" is not "keys".
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("jwks: key set is not a JSON object: %w", err)
	}
	rawKeys, ok := doc["keys"]
	if !ok {
		return nil, nil, errors.New(`jwks: key set has no "keys" member`)
	}
	var members []json.RawMessage
	if err := json.Unmarshal(rawKeys, &members); err != nil || members == nil {
		return nil, nil, errors.New(`jwks: key set "keys" member is not an array`)
	}

	seen := make(map[string]bool, len(members))
	for i, raw := range members {
		k, kid, err := parseKey(raw)
		if kid != "" {
			if seen[kid] {
				return nil, nil, fmt.Errorf("jwks: key set has more than one key with kid %q", kid)
			}
			seen[kid] = true
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("jwks: key %d (kid %q) skipped: %w", i, kid, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if len(skipped) > 0 {
			return nil, skipped, fmt.Errorf("jwks: key set has no usable key (%d skipped; first: %w)", len(skipped), skipped[0])
		}
		return nil, nil, errors.New("jwks: key set is empty")
	}
	return keys, skipped, nil
}

// parseKey parses one JWK. kid is returned, when it is a JSON string, even if
// the key is unusable, so the caller can check uniqueness across the set.
func parseKey(raw json.RawMessage) (_ *Key, kid string, _ error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", errors.New("not a JSON object")
	}
	if v, ok := m["kid"]; ok {
		if err := json.Unmarshal(v, &kid); err != nil {
			return nil, "", errors.New(`"kid" is not a string`)
		}
	}
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return nil, kid, fmt.Errorf("carries private key material (%q); a published private key is compromised", name)
		}
	}
	var kty string
	if v, ok := m["kty"]; ok {
		_ = json.Unmarshal(v, &kty)
	}
	if kty != "RSA" {
		return nil, kid, fmt.Errorf("kty %q is not RSA", kty)
	}
	if kid == "" {
		return nil, kid, errors.New(`no "kid"`)
	}

	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, kid, fmt.Errorf("malformed: %w", err)
	}
	if jk.KeyType() != jwa.RSA {
		return nil, kid, fmt.Errorf("kty %q is not RSA", jk.KeyType())
	}
	if use := jk.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, kid, fmt.Errorf("use %q is not sig", use)
	}
	if ops := jk.KeyOps(); len(ops) > 0 {
		verify := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				verify = true
			}
		}
		if !verify {
			return nil, kid, errors.New(`"key_ops" does not allow verify`)
		}
	}
	alg := ""
	if a := jk.Algorithm(); a != nil {
		alg = a.String()
	}
	switch alg {
	case RS256, RS384, RS512:
	case "":
		return nil, kid, errors.New(`no "alg"; the algorithm is pinned to the key, so one is required`)
	default:
		return nil, kid, fmt.Errorf("alg %q is not RS256, RS384 or RS512", alg)
	}
	pub := &rsa.PublicKey{}
	if err := jk.Raw(pub); err != nil {
		return nil, kid, fmt.Errorf("not an RSA public key: %w", err)
	}
	k, err := NewKey(kid, alg, pub)
	if err != nil {
		// NewKey's message already names the key; the caller adds that.
		return nil, kid, errors.New(strings.TrimPrefix(err.Error(), fmt.Sprintf("jwks: key %q: ", kid)))
	}
	return k, kid, nil
}
