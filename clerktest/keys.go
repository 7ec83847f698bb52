package clerktest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"

	"github.com/sessiongate/sessiongate/jwks"
)

// rsaBits is the modulus size of generated keys, the size Clerk uses.
const rsaBits = 2048

// SigningKey is an RSA private key with the kid and algorithm it signs
// under. Build one with NewSigningKey; an Instance holds several (see
// RotateKey). A SigningKey MUST NOT be modified after it is handed to an
// Instance.
type SigningKey struct {
	// ID is the JWK "kid" and the header "kid" of tokens it signs. Clerk uses
	// the instance id (ins_…).
	ID string
	// Algorithm is RS256, RS384 or RS512.
	Algorithm string
	// Private is the RSA private key.
	Private *rsa.PrivateKey
}

// NewSigningKey generates an RSA-2048 key. An empty kid becomes "ins_"
// followed by 27 random base62 characters; an empty alg becomes RS256. Keys
// made this way and not published anywhere are "foreign" keys: tokens they sign
// carry a valid-looking signature that no JWKS vouches for.
//
// RSA key generation is slow (tens of milliseconds): tests that need many
// instances can share one key through Options.SigningKey.
func NewSigningKey(kid, alg string) (*SigningKey, error) {
	if kid == "" {
		kid = newID("ins")
	}
	if alg == "" {
		alg = jwks.RS256
	}
	if !isRSAAlg(alg) {
		return nil, fmt.Errorf("clerktest: signing key %q: unsupported algorithm %q (want RS256, RS384 or RS512)", kid, alg)
	}
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("clerktest: generating RSA key: %w", err)
	}
	return &SigningKey{ID: kid, Algorithm: alg, Private: priv}, nil
}

// Public returns the verification half of k as a jwks.Key. Each call returns
// a new *jwks.Key, so retiring one does not affect another.
func (k *SigningKey) Public() *jwks.Key {
	return &jwks.Key{ID: k.ID, Algorithm: k.Algorithm, Public: &k.Private.PublicKey}
}

// PublicPEM returns the public key as a PKIX "PUBLIC KEY" PEM block, the form
// Clerk's dashboard shows as the "JWT public key" (CLERK_JWT_KEY).
func (k *SigningKey) PublicPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.publicDER()}))
}

// publicDER returns the PKIX DER encoding of the public key.
func (k *SigningKey) publicDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		// Only unsupported key types fail; an *rsa.PublicKey never does.
		panic(fmt.Sprintf("clerktest: marshalling RSA public key: %v", err))
	}
	return der
}

func isRSAAlg(alg string) bool {
	return alg == jwks.RS256 || alg == jwks.RS384 || alg == jwks.RS512
}

// jwk is an RSA public JWK, in the member order Clerk serves.
type jwk struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func (k *SigningKey) jwk() jwk {
	pub := &k.Private.PublicKey
	return jwk{
		Use: "sig",
		Kty: "RSA",
		Kid: k.ID,
		Alg: k.Algorithm,
		N:   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// keyRing holds the published keys and the current signing key.
type keyRing struct {
	mu        sync.Mutex    // guards following
	published []*SigningKey // in publication order; kids are unique
	current   *SigningKey   // signs Mint's tokens; normally published
}

func (r *keyRing) signing() *SigningKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// publishLocked adds k, replacing a published key with the same kid.
func (r *keyRing) publishLocked(k *SigningKey) {
	for n, p := range r.published {
		if p.ID == k.ID {
			r.published[n] = k
			return
		}
	}
	r.published = append(r.published, k)
}

func (r *keyRing) publish(k *SigningKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(k)
}

func (r *keyRing) rotate(k *SigningKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(k)
	r.current = k
}

func (r *keyRing) remove(kid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = slices.DeleteFunc(r.published, func(k *SigningKey) bool { return k.ID == kid })
}

func (r *keyRing) snapshot() []*SigningKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.published)
}

// jwksJSON renders keys as a JWKS document: {"keys":[…]}.
func jwksJSON(keys []*SigningKey) []byte {
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, k.jwk())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("clerktest: marshalling JWKS: %v", err)) // strings only: cannot fail
	}
	return b
}

// SigningKey returns the key Mint currently signs with.
func (i *Instance) SigningKey() *SigningKey { return i.keys.signing() }

// RotateKey generates a new RSA-2048 RS256 key, publishes it and makes it the
// signing key. Earlier keys stay published (as Clerk keeps them during a
// rotation) until RemoveKey.
func (i *Instance) RotateKey() (*SigningKey, error) {
	k, err := NewSigningKey("", jwks.RS256) // outside the lock: slow
	if err != nil {
		return nil, err
	}
	i.keys.rotate(k)
	return k, nil
}

// RemoveKey unpublishes the key with this kid, if any. Removing the current
// signing key unpublishes it but Mint keeps signing with it, which is how a
// test produces tokens whose kid the JWKS no longer knows.
func (i *Instance) RemoveKey(kid string) { i.keys.remove(kid) }

// PublishKey adds k to the JWKS (replacing a published key with the same
// kid) without making it the signing key; sign with it through
// WithSigningKey.
func (i *Instance) PublishKey(k *SigningKey) { i.keys.publish(k) }

// PublicKeys returns the published keys, in publication order.
func (i *Instance) PublicKeys() []*jwks.Key {
	keys := i.keys.snapshot()
	out := make([]*jwks.Key, len(keys))
	for n, k := range keys {
		out[n] = k.Public()
	}
	return out
}
