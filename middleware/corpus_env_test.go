package middleware_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// The hostile-token corpus and the token fuzzers share one deterministic
// environment: a fixed signing key (testdata/corpus-signing-key.pem, a key
// made for these tests and used nowhere else), a fixed clock, a fixed issuer
// and a fixed user and session. A token minted here is therefore the same
// bytes in every process, which is what lets the fuzzers assert "accepted ⇒
// one of the valid tokens the harness minted": fuzz workers are separate
// processes that rebuild the environment.
const (
	corpusIssuer = "https://clerk.sessiongate.test"
	corpusParty  = "https://app.example.com"
	corpusUser   = "user_corpus"
	corpusSID    = "sess_corpus"
	corpusKID    = "ins_corpus"
)

// corpusNow is the Gate's clock and the minting clock.
var corpusNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

var (
	corpusKeysOnce sync.Once
	corpusKeysErr  error
	// corpusMain is the fixed RS256 key; corpusRS384 an RS384 key in the set;
	// corpusRotated a key that was in the set and has been removed;
	// corpusForeign a key with corpusMain's kid that no JWKS publishes;
	// corpusAttacker a key only an attacker has.
	corpusMain, corpusRS384, corpusRotated, corpusForeign, corpusAttacker *clerktest.SigningKey
)

func loadCorpusKeys(tb testing.TB) {
	tb.Helper()
	corpusKeysOnce.Do(func() {
		data, err := os.ReadFile("testdata/corpus-signing-key.pem")
		if err != nil {
			corpusKeysErr = err
			return
		}
		block, _ := pem.Decode(data)
		if block == nil {
			corpusKeysErr = fmt.Errorf("testdata/corpus-signing-key.pem: no PEM block")
			return
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			corpusKeysErr = err
			return
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			corpusKeysErr = fmt.Errorf("testdata/corpus-signing-key.pem: not an RSA key")
			return
		}
		corpusMain = &clerktest.SigningKey{ID: corpusKID, Algorithm: "RS256", Private: rk}
		gen := func(kid, alg string) *clerktest.SigningKey {
			sk, err := clerktest.NewSigningKey(kid, alg)
			if err != nil && corpusKeysErr == nil {
				corpusKeysErr = err
			}
			return sk
		}
		corpusRS384 = gen("ins_corpus384", "RS384")
		corpusRotated = gen("ins_rotated", "RS256")
		corpusForeign = gen(corpusKID, "RS256")
		corpusAttacker = gen("ins_attacker", "RS256")
	})
	if corpusKeysErr != nil {
		tb.Fatalf("corpus keys: %v", corpusKeysErr)
	}
}

// corpusEnv is a fake Clerk instance minting with the fixed key and clock,
// two Gates over its keys (an in-memory set and a remote JWKS fetched from
// the instance), and an "attacker" server that counts every request: tokens
// that name it in jku/x5u must never make anything fetch from it.
type corpusEnv struct {
	inst     *clerktest.Instance
	keys     *jwks.Memory
	gate     *middleware.Gate // in-memory key set
	remote   *jwks.Remote
	rgate    *middleware.Gate // remote JWKS from the fake instance
	attacker string           // base URL of the attacker's server
	hits     *atomic.Int64    // requests the attacker's server received
	// rotatedToken is otherwise valid, signed by a key that has since left
	// the key set (minted before the removal).
	rotatedToken string
}

func gateConfig(keys middleware.KeySource) middleware.Config {
	return middleware.Config{
		Issuer:            corpusIssuer,
		Keys:              keys,
		AuthorizedParties: []string{corpusParty},
		Algorithms:        []string{"RS256", "RS384"},
		Now:               func() time.Time { return corpusNow },
	}
}

func newCorpusEnv(tb testing.TB) *corpusEnv {
	tb.Helper()
	loadCorpusKeys(tb)
	e := &corpusEnv{hits: new(atomic.Int64)}
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys":[]}`)
	}))
	tb.Cleanup(attacker.Close)
	e.attacker = attacker.URL

	e.inst = clerktest.Start(tb, clerktest.Options{
		Now:             func() time.Time { return corpusNow },
		SigningKey:      corpusMain,
		AuthorizedParty: corpusParty,
	})
	e.inst.PublishKey(corpusRS384)
	e.inst.PublishKey(corpusRotated)
	e.keys = jwks.NewMemory(corpusMain.Public(), corpusRS384.Public(), corpusRotated.Public())
	e.rotatedToken = e.mint(tb, clerktest.WithSigningKey(corpusRotated))
	e.keys.Remove(corpusRotated.ID)
	e.inst.RemoveKey(corpusRotated.ID)

	var err error
	if e.gate, err = middleware.New(gateConfig(e.keys)); err != nil {
		tb.Fatal(err)
	}
	e.remote, err = jwks.NewRemote(jwks.RemoteConfig{URL: e.inst.FrontendJWKSURL(), RefreshInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.remote.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.remote.WaitReady(ctx); err != nil {
		tb.Fatalf("remote JWKS: %v", err)
	}
	if e.rgate, err = middleware.New(gateConfig(e.remote)); err != nil {
		tb.Fatal(err)
	}
	return e
}

// mint mints with the fixed user, session and issuer; later options win.
func (e *corpusEnv) mint(tb testing.TB, opts ...clerktest.TokenOption) string {
	tb.Helper()
	base := []clerktest.TokenOption{
		clerktest.WithUser(corpusUser), clerktest.WithSession(corpusSID),
		clerktest.WithClaim("iss", corpusIssuer),
	}
	return e.inst.MustMint(tb, append(base, opts...)...)
}

// baseMembers are the members of a valid v2 claim set, as raw JSON, for
// tokens whose payload must be spelled byte by byte.
func baseMembers() []string {
	now := corpusNow.Unix()
	return []string{
		`"azp":"` + corpusParty + `"`,
		fmt.Sprintf(`"exp":%d`, now+60),
		fmt.Sprintf(`"iat":%d`, now),
		`"iss":"` + corpusIssuer + `"`,
		fmt.Sprintf(`"nbf":%d`, now-5),
		`"sid":"` + corpusSID + `"`,
		`"sts":"active"`,
		`"sub":"` + corpusUser + `"`,
		`"v":2`,
	}
}

// rawClaims is a valid claim set plus extra members (a repeated name makes a
// duplicate member).
func rawClaims(extra ...string) []byte {
	return []byte("{" + strings.Join(append(baseMembers(), extra...), ",") + "}")
}

// corpusHeader is the header Clerk sends, as raw JSON.
const corpusHeader = `{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"` + corpusKID + `","typ":"JWT"}`

// signRaw signs raw header and payload bytes with the fixed key.
func signRaw(header string, payload []byte) string {
	return clerktest.Sign([]byte(header), payload, corpusMain, "RS256")
}

// validTokens are the tokens the corpus Gate accepts: the default session
// token, v1 and v2 organization tokens, the accepted side of every time
// boundary and header variants. They are deterministic (same bytes in every
// process, RSASSA-PKCS1-v1_5 being deterministic), so a fuzz worker can
// recompute them.
func (e *corpusEnv) validTokens(tb testing.TB) map[string]string {
	tb.Helper()
	now := corpusNow
	org := clerktest.Org{ID: "org_corpus", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write", "org:billing:manage"}}
	return map[string]string{
		"default v2":                  e.mint(tb),
		"raw base claims":             signRaw(corpusHeader, rawClaims()),
		"v1":                          e.mint(tb, clerktest.WithVersion1()),
		"v1 with org":                 e.mint(tb, clerktest.WithVersion1(), clerktest.WithOrg(org)),
		"v2 with org":                 e.mint(tb, clerktest.WithOrg(org)),
		"v2 with actor and plan":      e.mint(tb, clerktest.WithActor(clerktest.Actor{Subject: "user_support", Type: "agent"}), clerktest.WithPlan("o:pro"), clerktest.WithUserFeatures("export")),
		"exp 4s ago (inside skew)":    e.mint(tb, clerktest.WithExpiry(now.Add(-4*time.Second))),
		"nbf exactly now+skew":        e.mint(tb, clerktest.WithNotBefore(now.Add(5*time.Second))),
		"nbf now+skew-1":              e.mint(tb, clerktest.WithNotBefore(now.Add(4*time.Second))),
		"iat exactly now+skew":        e.mint(tb, clerktest.WithClaim("iat", now.Add(5*time.Second).Unix())),
		"iat now+skew-1":              e.mint(tb, clerktest.WithClaim("iat", now.Add(4*time.Second).Unix())),
		"no nbf no iat":               e.mint(tb, clerktest.WithoutClaim("nbf"), clerktest.WithoutClaim("iat")),
		"null optional claims":        e.mint(tb, clerktest.WithClaim("nbf", rawJSON("null")), clerktest.WithClaim("o", rawJSON("null")), clerktest.WithClaim("act", rawJSON("null"))),
		"no typ":                      e.mint(tb, clerktest.WithoutHeader("typ")),
		"no cat":                      e.mint(tb, clerktest.WithoutHeader("cat")),
		"cat ignore":                  e.mint(tb, clerktest.WithHeader("cat", "cl_I7d4PD111III")),
		"unknown header member":       e.mint(tb, clerktest.WithHeader("x-extra", map[string]any{"a": []int{1, 2}})),
		"unknown claim":               e.mint(tb, clerktest.WithClaim("x-extra", map[string]any{"a": []any{1, "b", nil, true}})),
		"header spaced, own sig":      signRaw(`{ "alg" : "RS256" , "kid" : "`+corpusKID+`" }`, rawClaims()),
		"payload escaped, own sig":    signRaw(corpusHeader, []byte(strings.ReplaceAll(string(rawClaims()), "/", `\/`))),
		"aud string and array":        e.mint(tb, clerktest.WithClaim("aud", []string{"a", "b"})),
		"fva null-free two ints":      e.mint(tb, clerktest.WithClaim("fva", []int64{-1, 9007199254740993})),
		"exp at the end of year 9999": e.mint(tb, clerktest.WithClaim("exp", int64(253402300799))),
		"sts absent (v1 semantics)":   e.mint(tb, clerktest.WithoutClaim("sts")),
	}
}
