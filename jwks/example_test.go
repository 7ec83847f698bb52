package jwks_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sessiongate/sessiongate/jwks"
)

func ExampleNewStatic() {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	src, err := jwks.NewStatic(string(pemKey)) // e.g. CLERK_JWT_KEY
	if err != nil {
		fmt.Println(err)
		return
	}
	// A PEM has no kid: every kid gets the one key, pinned to RS256.
	k, _ := src.Key(context.Background(), "ins_2abc")
	fmt.Println(k.ID, k.Algorithm, k.Public.N.BitLen())
	// Output: static RS256 2048
}

func ExampleMemory() {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	key, _ := jwks.NewKey("ins_2abc", jwks.RS256, &priv.PublicKey)
	src := jwks.NewMemory(key)
	ctx := context.Background()

	k, _ := src.Key(ctx, "ins_2abc")
	fmt.Println(k == key, k.Retired())

	_, err := src.Key(ctx, "ins_other")
	fmt.Println(errors.Is(err, jwks.ErrKeyNotFound))

	src.Remove("ins_2abc") // rotation: the key leaves the set
	fmt.Println(key.Retired())
	// Output:
	// true false
	// true
	// true
}
