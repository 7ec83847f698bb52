package jwks

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"sync/atomic"
)

// Errors a key source returns. Callers branch on them with errors.Is.
var (
	// ErrKeyNotFound means the key id is not in the current key set, even after
	// any refetch the source was allowed to make. The middleware maps it to the
	// jwk-kid-mismatch reason.
	ErrKeyNotFound = errors.New("jwks: key id not found")
	// ErrUnavailable means the source has no usable key set: it was never
	// loaded, or the last good set is older than the source's max staleness.
	// The middleware maps it to 503 jwk-remote-failed-to-load.
	ErrUnavailable = errors.New("jwks: no usable key set")
)

// Algorithms a Key may be pinned to. Clerk signs session tokens with RS256;
// RS384 and RS512 are the other RSASSA-PKCS1-v1_5 algorithms Clerk's SDKs accept.
const (
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
)

// MinRSABits is the smallest RSA modulus a key source accepts. Smaller keys
// are skipped when a key set is loaded.
const MinRSABits = 2048

// Key is a verification key: an RSA public key pinned to one algorithm.
//
// A Key is immutable once built, except for its retired flag: a source retires
// a key when it leaves the key set, so that anything holding the *Key (such as
// a verified-token cache) can tell, with one atomic load, that tokens signed
// by it MUST NOT be accepted any more.
type Key struct {
	// ID is the JWK "kid"; for Clerk it is the instance id (ins_…).
	ID string
	// Algorithm is the JWS "alg" the key is pinned to: a token whose header
	// names another algorithm MUST be rejected.
	Algorithm string
	// Public is the RSA public key.
	Public *rsa.PublicKey

	retired atomic.Bool
}

// NewKey validates and builds a Key. The algorithm must be RS256, RS384 or
// RS512 and the modulus at least MinRSABits long.
func NewKey(id, alg string, pub *rsa.PublicKey) (*Key, error) {
	switch alg {
	case RS256, RS384, RS512:
	default:
		return nil, fmt.Errorf("jwks: key %q: unsupported algorithm %q", id, alg)
	}
	if pub == nil || pub.N == nil {
		return nil, fmt.Errorf("jwks: key %q: no RSA public key", id)
	}
	if pub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("jwks: key %q: RSA key of %d bits is shorter than %d", id, pub.N.BitLen(), MinRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return nil, fmt.Errorf("jwks: key %q: bad RSA public exponent", id)
	}
	return &Key{ID: id, Algorithm: alg, Public: pub}, nil
}

// Retire marks the key as no longer part of its key set. It is idempotent.
func (k *Key) Retire() { k.retired.Store(true) }

// Retired reports whether the key has left its key set.
func (k *Key) Retired() bool { return k.retired.Load() }
