package clerktest_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sessiongate/sessiongate/clerktest"
)

func Example() {
	// In a test: inst := clerktest.Start(t, clerktest.Options{}).
	inst, err := clerktest.New(clerktest.Options{})
	if err != nil {
		panic(err)
	}
	defer inst.Close()

	token, err := inst.Mint(clerktest.WithOrg(clerktest.Org{
		ID: "org_1", Slug: "acme", Role: "org:admin",
		Permissions: []string{"org:invoices:read", "org:invoices:manage", "org:reports:read"},
	}))
	if err != nil {
		panic(err)
	}
	segments := strings.Split(token, ".")
	var header struct{ Alg, Kid string }
	var claims struct {
		Sub string
		O   struct{ Rol, Per, Fpm string }
		Fea string
	}
	h, _ := base64.RawURLEncoding.DecodeString(segments[0])
	p, _ := base64.RawURLEncoding.DecodeString(segments[1])
	_ = json.Unmarshal(h, &header)
	_ = json.Unmarshal(p, &claims)

	fmt.Println("segments:", len(segments))
	fmt.Println("alg:", header.Alg, "kid prefix:", header.Kid[:4])
	fmt.Println("sub prefix:", claims.Sub[:5])
	fmt.Println("rol:", claims.O.Rol, "fea:", claims.Fea, "per:", claims.O.Per, "fpm:", claims.O.Fpm)
	fmt.Println("JWKS:", strings.TrimPrefix(inst.FrontendJWKSURL(), inst.URL()))
	// Output:
	// segments: 3
	// alg: RS256 kid prefix: ins_
	// sub prefix: user_
	// rol: admin fea: o:invoices,o:reports per: read,manage fpm: 3,1
	// JWKS: /.well-known/jwks.json
}
