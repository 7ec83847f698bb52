package jwks

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StaticKeyID is the ID of the key a Static source serves. A PEM public key
// has no kid, so the ID only names the key in logs and metrics.
const StaticKeyID = "static"

// Static is a key source holding one RSA public key configured by the
// operator (Clerk's "JWT public key", CLERK_JWT_KEY). It never makes a network
// call.
//
// A PEM key has no kid, so Key returns the key for any kid, as Clerk's
// JavaScript SDK does with its jwtKey option: the kid in the token header is
// not checked against anything. The algorithm is still pinned: the key is
// RS256, and a token whose header names another algorithm MUST be rejected by
// the verifier.
type Static struct {
	key    *Key
	loaded time.Time
}

// NewStatic parses an RSA public key in one of the forms Clerk hands out:
//
//   - PEM "PUBLIC KEY" (PKIX), as shown in the Clerk dashboard;
//   - the base64 body of that PEM without its armor, newlines optional (the
//     form often pasted into environment variables; Clerk's Go SDK adds the
//     armor the same way);
//   - PEM "RSA PUBLIC KEY" (PKCS #1), or its bare base64 body.
//
// Literal two-character "\n" sequences (a PEM squeezed onto one line of an
// environment file) are read as newlines. Private keys, non-RSA keys, keys
// shorter than MinRSABits and anything else are refused with an error.
func NewStatic(pemText string) (*Static, error) {
	pub, err := parseStaticKey(pemText)
	if err != nil {
		return nil, err
	}
	k, err := NewKey(StaticKeyID, RS256, pub)
	if err != nil {
		return nil, err
	}
	return &Static{key: k, loaded: time.Now()}, nil
}

// Key returns the configured key whatever kid is asked for (see Static).
func (s *Static) Key(_ context.Context, _ string) (*Key, error) {
	return s.key, nil
}

// Ready reports true: a Static source always has its key.
func (s *Static) Ready() bool { return true }

// Stats reports one key, loaded when NewStatic ran, and no fetches.
func (s *Static) Stats() Stats {
	return Stats{Keys: 1, LastSuccess: s.loaded}
}

func parseStaticKey(text string) (*rsa.PublicKey, error) {
	text = strings.TrimSpace(strings.ReplaceAll(text, `\n`, "\n"))
	if text == "" {
		return nil, errors.New("jwks: static key: empty")
	}
	if strings.Contains(text, "-----BEGIN") {
		block, rest := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("jwks: static key: malformed PEM")
		}
		if len(strings.TrimSpace(string(rest))) != 0 {
			return nil, errors.New("jwks: static key: more than one PEM block, or trailing data")
		}
		switch block.Type {
		case "PUBLIC KEY":
			return pkixRSA(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("jwks: static key: malformed RSA PUBLIC KEY: %w", err)
			}
			return pub, nil
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, errPrivateStatic
			}
			return nil, fmt.Errorf("jwks: static key: PEM block %q is not a PUBLIC KEY", block.Type)
		}
	}

	// No armor: the base64 body alone, possibly wrapped over several lines.
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
	if err != nil {
		return nil, errors.New("jwks: static key: neither PEM nor base64 DER")
	}
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return pkixRSA(der)
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub, nil
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return nil, errPrivateStatic
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return nil, errPrivateStatic
	}
	return nil, errors.New("jwks: static key: base64 body is not a DER public key")
}

var errPrivateStatic = errors.New("jwks: static key: this is a private key; configure the instance's public key (PEM PUBLIC KEY)")

func pkixRSA(der []byte) (*rsa.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("jwks: static key: malformed PUBLIC KEY: %w", err)
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return p, nil
	default:
		return nil, fmt.Errorf("jwks: static key: %T is not an RSA key", pub)
	}
}
