package middleware_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// clock is a settable clock shared by the fake instance and the Gate.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)) }

// keys shared by every instance of this package's tests: RSA key generation
// is slow.
var (
	keysOnce           sync.Once
	mainKey, otherKey  *clerktest.SigningKey
	rs384Key, foreignK *clerktest.SigningKey
)

func testKeys(tb testing.TB) {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		mk := func(kid, alg string) *clerktest.SigningKey {
			k, e := clerktest.NewSigningKey(kid, alg)
			if e != nil {
				err = e
			}
			return k
		}
		mainKey = mk("ins_main", "RS256")
		otherKey = mk("ins_other", "RS256")
		rs384Key = mk("ins_rs384", "RS384")
		foreignK = mk("ins_main", "RS256") // same kid as mainKey, different key
		if err != nil {
			panic(err)
		}
	})
}

type env struct {
	clk  *clock
	inst *clerktest.Instance
	keys *countingKeys
	gate *middleware.Gate
}

// countingKeys wraps a Memory source and counts lookups.
type countingKeys struct {
	*jwks.Memory
	calls atomic.Int64
	err   error // returned instead, when set
}

func (k *countingKeys) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	k.calls.Add(1)
	if k.err != nil {
		return nil, k.err
	}
	return k.Memory.Key(ctx, kid)
}

func newEnv(t *testing.T, mutate func(*middleware.Config)) *env {
	t.Helper()
	testKeys(t)
	clk := newClock()
	inst := clerktest.Start(t, clerktest.Options{Now: clk.Now, SigningKey: mainKey, AuthorizedParty: "https://app.example.com"})
	inst.PublishKey(rs384Key)
	keys := &countingKeys{Memory: jwks.NewMemory(inst.PublicKeys()...)}
	cfg := middleware.Config{Issuer: inst.Issuer(), Keys: keys, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := middleware.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{clk: clk, inst: inst, keys: keys, gate: g}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// truncSig drops the last byte of a base64url signature.
func truncSig(sig string) string {
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])
}

// flipLast returns a last character that decodes to the same byte but with
// non-zero padding bits: the same signature spelled differently.
func flipLast(sig string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, sig[len(sig)-1])
	return string(alphabet[i|1])
}

func TestVerifyRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) {
		c.Algorithms = []string{"RS256", "RS384"}
	})
	now := e.clk.Now()
	mint := func(opts ...clerktest.TokenOption) func(*testing.T) string {
		return func(t *testing.T) string { return e.inst.MustMint(t, opts...) }
	}
	raw := func(tok string) func(*testing.T) string { return func(*testing.T) string { return tok } }
	valid := e.inst.MustMint(t)
	parts := strings.Split(valid, ".")

	cases := []struct {
		name   string
		token  func(*testing.T) string
		reason middleware.Reason
	}{
		{"empty token", raw(""), middleware.ReasonSessionTokenMissing},
		{"garbage", raw("not-a-token"), middleware.ReasonTokenInvalid},
		{"two segments", raw(parts[0] + "." + parts[1]), middleware.ReasonTokenInvalid},
		{"four segments", raw(valid + ".x"), middleware.ReasonTokenInvalid},
		{"empty signature", raw(parts[0] + "." + parts[1] + "."), middleware.ReasonTokenInvalidSignature},
		{"padding", raw(parts[0] + "=." + parts[1] + "." + parts[2]), middleware.ReasonTokenInvalid},
		{"whitespace", raw(parts[0] + ".\n" + parts[1] + "." + parts[2]), middleware.ReasonTokenInvalid},
		{"standard base64 alphabet", raw(strings.ReplaceAll(valid, "-", "+")), middleware.ReasonTokenInvalid},
		{"over 16 KiB", mint(clerktest.WithClaim("pad", strings.Repeat("a", 16<<10))), middleware.ReasonTokenInvalid},
		{"header not JSON", raw(b64("{") + "." + parts[1] + "." + parts[2]), middleware.ReasonTokenInvalid},
		{"payload not JSON", raw(parts[0] + "." + b64("x") + "." + parts[2]), middleware.ReasonTokenInvalid},
		{"alg none", mint(clerktest.WithAlgorithm("none")), middleware.ReasonTokenInvalidAlgorithm},
		{"alg None header", mint(clerktest.WithHeader("alg", "None")), middleware.ReasonTokenInvalidAlgorithm},
		{"HS256 with the public key", mint(clerktest.WithAlgorithm("HS256")), middleware.ReasonTokenInvalidAlgorithm},
		{"alg PS256", mint(clerktest.WithHeader("alg", "PS256")), middleware.ReasonTokenInvalidAlgorithm},
		{"alg ES256", mint(clerktest.WithHeader("alg", "ES256")), middleware.ReasonTokenInvalidAlgorithm},
		{"alg RS512 not allowed", mint(clerktest.WithAlgorithm("RS512")), middleware.ReasonTokenInvalidAlgorithm},
		{"alg missing", mint(clerktest.WithoutHeader("alg")), middleware.ReasonTokenInvalidAlgorithm},
		{"allowed alg but key pinned to RS256", mint(clerktest.WithAlgorithm("RS384")), middleware.ReasonTokenInvalidAlgorithm},
		{"kid missing", mint(clerktest.WithoutHeader("kid")), middleware.ReasonTokenInvalid},
		{"kid empty", mint(clerktest.WithHeader("kid", "")), middleware.ReasonTokenInvalid},
		{"kid not a string", mint(clerktest.WithHeader("kid", 7)), middleware.ReasonTokenInvalid},
		{"kid unknown", mint(clerktest.WithSigningKey(otherKey)), middleware.ReasonKidMismatch},
		{"signed by another key with the same kid", mint(clerktest.WithSigningKey(foreignK)), middleware.ReasonTokenInvalidSignature},
		{"payload changed after signing", raw(parts[0] + "." + b64(`{"exp":9999999999,"iss":"`+e.inst.Issuer()+`","sid":"sess_x","sub":"user_x"}`) + "." + parts[2]), middleware.ReasonTokenInvalidSignature},
		{"signature truncated", raw(parts[0] + "." + parts[1] + "." + truncSig(parts[2])), middleware.ReasonTokenInvalidSignature},
		{"signature with non-zero trailing bits", raw(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + flipLast(parts[2])), middleware.ReasonTokenInvalid},
		{"embedded jwk", mint(clerktest.WithHeader("jwk", map[string]string{"kty": "RSA"})), middleware.ReasonTokenInvalid},
		{"jku", mint(clerktest.WithHeader("jku", "https://attacker.example/jwks")), middleware.ReasonTokenInvalid},
		{"x5u", mint(clerktest.WithHeader("x5u", "https://attacker.example/cert")), middleware.ReasonTokenInvalid},
		{"x5c", mint(clerktest.WithHeader("x5c", []string{"MIIB"})), middleware.ReasonTokenInvalid},
		{"crit", mint(clerktest.WithHeader("crit", []string{"exp"})), middleware.ReasonTokenInvalid},
		{"b64 false", mint(clerktest.WithHeader("b64", false)), middleware.ReasonTokenInvalid},
		{"typ lower case", mint(clerktest.WithHeader("typ", "jwt")), middleware.ReasonTokenInvalid},
		{"typ JOSE", mint(clerktest.WithHeader("typ", "JOSE")), middleware.ReasonTokenInvalid},
		{"typ at+jwt", mint(clerktest.WithHeader("typ", "at+jwt")), middleware.ReasonTokenTypeMismatch},
		{"duplicate header member", mint(clerktest.WithRawHeader([]byte(`{"alg":"RS256","kid":"ins_main","alg":"none"}`))), middleware.ReasonTokenInvalid},
		{"template category", mint(clerktest.WithHeader("cat", clerktest.CategoryTemplate)), middleware.ReasonTokenTypeMismatch},
		{"machine category", mint(clerktest.WithHeader("cat", clerktest.CategoryMachine)), middleware.ReasonTokenTypeMismatch},
		{"oauth category", mint(clerktest.WithHeader("cat", "cl_B7d4PD444AAA")), middleware.ReasonTokenTypeMismatch},
		{"template token", mint(clerktest.WithTemplate("supabase")), middleware.ReasonTokenTypeMismatch},
		{"template token without cat", mint(clerktest.WithTemplate("supabase"), clerktest.WithoutHeader("cat")), middleware.ReasonTokenTypeMismatch},
		{"machine token", mint(clerktest.WithMachine()), middleware.ReasonTokenTypeMismatch},
		{"machine subject without cat", mint(clerktest.WithoutHeader("cat"), clerktest.WithClaim("sub", "mch_123")), middleware.ReasonTokenTypeMismatch},
		{"subject not a user", mint(clerktest.WithClaim("sub", "org_123")), middleware.ReasonTokenTypeMismatch},
		{"subject bare prefix", mint(clerktest.WithClaim("sub", "user_")), middleware.ReasonTokenTypeMismatch},
		{"sub missing", mint(clerktest.WithoutClaim("sub")), middleware.ReasonTokenInvalid},
		{"sub null", mint(clerktest.WithClaim("sub", json.RawMessage("null"))), middleware.ReasonTokenInvalid},
		{"sid missing", mint(clerktest.WithoutClaim("sid")), middleware.ReasonTokenTypeMismatch},
		{"sid not a session", mint(clerktest.WithClaim("sid", "client_123")), middleware.ReasonTokenTypeMismatch},
		{"exp missing", mint(clerktest.WithoutClaim("exp")), middleware.ReasonTokenInvalid},
		{"exp a string", mint(clerktest.WithClaim("exp", json.RawMessage(`"9999999999"`))), middleware.ReasonTokenInvalid},
		{"nbf an object", mint(clerktest.WithClaim("nbf", json.RawMessage(`{}`))), middleware.ReasonTokenInvalid},
		{"azp an array", mint(clerktest.WithClaim("azp", []string{"https://app.example.com"})), middleware.ReasonTokenInvalid},
		{"v not an integer", mint(clerktest.WithClaim("v", 2.5)), middleware.ReasonTokenInvalid},
		{"fva not two integers", mint(clerktest.WithClaim("fva", []int{1})), middleware.ReasonTokenInvalid},
		{"o not an object", mint(clerktest.WithClaim("o", "org_1")), middleware.ReasonTokenInvalid},
		{"duplicate claim", mint(clerktest.WithRawPayload([]byte(fmt.Sprintf(
			`{"exp":%d,"iss":%q,"sid":"sess_a","sub":"user_a","sub":"user_b"}`, now.Add(time.Minute).Unix(), e.inst.Issuer())))), middleware.ReasonTokenInvalid},
		{"expired at exp+skew", mint(clerktest.WithExpiry(now.Add(-5 * time.Second))), middleware.ReasonTokenExpired},
		{"expired long ago", mint(clerktest.WithIssuedAt(now.Add(-time.Hour))), middleware.ReasonTokenExpired},
		{"nbf beyond skew", mint(clerktest.WithNotBefore(now.Add(6 * time.Second))), middleware.ReasonTokenNotActiveYet},
		{"iat beyond skew", mint(clerktest.WithClaim("iat", now.Add(6*time.Second).Unix())), middleware.ReasonTokenIatInTheFuture},
		{"issuer other instance", mint(clerktest.WithClaim("iss", "https://clerk.other.example")), middleware.ReasonTokenInvalidIssuer},
		{"issuer trailing slash", mint(clerktest.WithClaim("iss", e.inst.Issuer()+"/")), middleware.ReasonTokenInvalidIssuer},
		{"issuer upper case", mint(clerktest.WithClaim("iss", strings.ToUpper(e.inst.Issuer()))), middleware.ReasonTokenInvalidIssuer},
		{"issuer https instead of http", mint(clerktest.WithClaim("iss", strings.Replace(e.inst.Issuer(), "http:", "https:", 1))), middleware.ReasonTokenInvalidIssuer},
		{"issuer missing", mint(clerktest.WithoutClaim("iss")), middleware.ReasonTokenInvalidIssuer},
		{"pending session", mint(clerktest.WithPending()), middleware.ReasonSessionPending},
		{"unknown session status", mint(clerktest.WithClaim("sts", "revoked")), middleware.ReasonTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			c, err := e.gate.Verify(context.Background(), tok)
			if err == nil {
				t.Fatalf("Verify accepted the token: sub=%s", c.Subject)
			}
			_, reason, _ := middleware.Outcome(err)
			if reason != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", reason, err, tc.reason)
			}
			if !errors.Is(err, &middleware.Error{Reason: tc.reason}) {
				t.Fatalf("errors.Is(err, sentinel of %s) is false", tc.reason)
			}
		})
	}
}

func TestVerifyAcceptsBoundaries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	cases := []struct {
		name string
		opts []clerktest.TokenOption
	}{
		{"expired 4s ago, inside the 5s skew", []clerktest.TokenOption{clerktest.WithExpiry(now.Add(-4 * time.Second))}},
		{"nbf 5s ahead", []clerktest.TokenOption{clerktest.WithNotBefore(now.Add(5 * time.Second))}},
		{"iat 5s ahead", []clerktest.TokenOption{clerktest.WithClaim("iat", now.Add(5*time.Second).Unix())}},
		{"no nbf, no iat", []clerktest.TokenOption{clerktest.WithoutClaim("nbf"), clerktest.WithoutClaim("iat")}},
		{"no cat header", []clerktest.TokenOption{clerktest.WithoutHeader("cat")}},
		{"no typ header", []clerktest.TokenOption{clerktest.WithoutHeader("typ")}},
		{"cat ignore", []clerktest.TokenOption{clerktest.WithHeader("cat", "cl_I7d4PD111III")}},
		{"unknown header member", []clerktest.TokenOption{clerktest.WithHeader("oiat", 1700000000)}},
		{"null claims are absent", []clerktest.TokenOption{clerktest.WithClaim("nbf", json.RawMessage("null")), clerktest.WithClaim("o", json.RawMessage("null"))}},
		{"v1 token", []clerktest.TokenOption{clerktest.WithVersion1()}},
		{"no azp without parties configured", []clerktest.TokenOption{clerktest.WithAuthorizedParty("")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.inst.MustMint(t, tc.opts...)
			if _, err := e.gate.Verify(context.Background(), tok); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyRS384WhenAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) { c.Algorithms = []string{"RS256", "RS384"} })
	tok := e.inst.MustMint(t, clerktest.WithSigningKey(rs384Key))
	if _, err := e.gate.Verify(context.Background(), tok); err != nil {
		t.Fatalf("RS384 token with an RS384 key: %v", err)
	}
	e2 := newEnv(t, nil)
	if _, err := e2.gate.Verify(context.Background(), tok); !errors.Is(err, middleware.ErrTokenInvalidAlgorithm) {
		t.Fatalf("RS384 token on an RS256-only gate: %v", err)
	}
}

func TestAuthorizedParties(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) {
		c.AuthorizedParties = []string{"https://app.example.com", "https://admin.example.com"}
	})
	cases := []struct {
		azp  string
		want error
	}{
		{"https://app.example.com", nil},
		{"https://admin.example.com", nil},
		{"", middleware.ErrTokenInvalidParties},
		{"https://app.example.com/", middleware.ErrTokenInvalidParties},
		{"https://APP.example.com", middleware.ErrTokenInvalidParties},
		{"http://app.example.com", middleware.ErrTokenInvalidParties},
		{"https://app.example.com.evil.com", middleware.ErrTokenInvalidParties},
		{"https://app.example.com:443", middleware.ErrTokenInvalidParties},
	}
	for _, tc := range cases {
		tok := e.inst.MustMint(t, clerktest.WithAuthorizedParty(tc.azp))
		_, err := e.gate.Verify(context.Background(), tok)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("azp %q: err = %v, want %v", tc.azp, err, tc.want)
		}
	}
}

func TestVerifyClaimsV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.inst.MustMint(t,
		clerktest.WithUser("user_2abc"), clerktest.WithSession("sess_2xyz"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin",
			Permissions: []string{"org:dashboard:read", "org:dashboard:manage", "org:billing:read"}}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_admin", SessionID: "sess_imp", Issuer: "https://dashboard.clerk.com"}),
		clerktest.WithPlan("o:pro"),
	)
	c, err := e.gate.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user_2abc" || c.SessionID != "sess_2xyz" || c.Version != 2 || c.Issuer != e.inst.Issuer() {
		t.Fatalf("claims = %+v", c)
	}
	if c.OrgID != "org_1" || c.OrgSlug != "acme" || c.OrgRole != "org:admin" {
		t.Fatalf("org = %q %q %q", c.OrgID, c.OrgSlug, c.OrgRole)
	}
	for _, p := range []string{"org:dashboard:read", "org:dashboard:manage", "org:billing:read"} {
		if !c.HasPermission(p) {
			t.Errorf("missing permission %s in %q", p, c.OrgPermissions)
		}
	}
	if c.HasPermission("org:billing:manage") {
		t.Errorf("extra permission in %q", c.OrgPermissions)
	}
	if c.Actor == nil || c.Actor.Subject != "user_admin" {
		t.Fatalf("actor = %+v", c.Actor)
	}
	if c.Plan != "o:pro" || !c.Expiry.After(e.clk.Now()) {
		t.Fatalf("plan/exp = %q %v", c.Plan, c.Expiry)
	}
}

func TestVerifyClaimsV1(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.inst.MustMint(t, clerktest.WithVersion1(),
		clerktest.WithOrg(clerktest.Org{ID: "org_9", Slug: "beta", Role: "member", Permissions: []string{"org:sys_profile:read"}}))
	c, err := e.gate.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || c.OrgID != "org_9" || c.OrgSlug != "beta" || c.OrgRole != "org:member" || !c.HasPermission("org:sys_profile:read") {
		t.Fatalf("v1 claims = %+v", c)
	}
}

func TestPendingAllowedByPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) { c.AllowPending = true })
	tok := e.inst.MustMint(t, clerktest.WithPending())
	c, err := e.gate.Verify(context.Background(), tok)
	if err != nil || c.SessionStatus != "pending" {
		t.Fatalf("AllowPending: %v %+v", err, c)
	}
	if _, err := e.gate.VerifyWith(context.Background(), tok, middleware.Policy{}); !errors.Is(err, middleware.ErrSessionPending) {
		t.Fatalf("per-call policy without AllowPending: %v", err)
	}
}

func TestTokenCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	tok := e.inst.MustMint(t)
	for i := 0; i < 3; i++ {
		if _, err := e.gate.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.keys.calls.Load(); n != 1 {
		t.Fatalf("key lookups for one token verified 3 times = %d, want 1 (cache)", n)
	}
	if st := e.gate.Stats(); st.CacheHits != 2 || st.CacheMisses != 1 || st.CacheSize != 1 {
		t.Fatalf("Stats = %+v, want 2 hits, 1 miss, 1 entry", st)
	}

	t.Run("a cached token still expires", func(t *testing.T) {
		e.clk.Advance(65 * time.Second) // 60 s lifetime + 5 s skew
		if _, err := e.gate.Verify(ctx, tok); !errors.Is(err, middleware.ErrTokenExpired) {
			t.Fatalf("cached token past exp: %v", err)
		}
	})
}

func TestTokenCacheDropsTokensOfRetiredKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	tok := e.inst.MustMint(t)
	if _, err := e.gate.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	e.keys.Remove(mainKey.ID) // the key leaves the key set
	if _, err := e.gate.Verify(ctx, tok); !errors.Is(err, middleware.ErrKidMismatch) {
		t.Fatalf("token of a removed key after caching: %v", err)
	}
}

func TestTokenCacheDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) { c.TokenCacheSize = -1 })
	tok := e.inst.MustMint(t)
	for i := 0; i < 2; i++ {
		if _, err := e.gate.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.keys.calls.Load(); n != 2 {
		t.Fatalf("key lookups with the cache disabled = %d, want 2", n)
	}
}

func TestBadClaimsNeverReachTheKeySource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	bad := [][]clerktest.TokenOption{
		{clerktest.WithExpiry(now.Add(-time.Minute))},
		{clerktest.WithClaim("iss", "https://evil.example")},
		{clerktest.WithMachine()},
		{clerktest.WithoutClaim("sid")},
		{clerktest.WithAlgorithm("HS256")},
		{clerktest.WithClaim("exp", "soon")},
	}
	for _, opts := range bad {
		tok := e.inst.MustMint(t, append(opts, clerktest.WithSigningKey(otherKey))...) // unknown kid
		if _, err := e.gate.Verify(context.Background(), tok); err == nil {
			t.Fatal("accepted")
		}
	}
	if n := e.keys.calls.Load(); n != 0 {
		t.Fatalf("key source consulted %d times for tokens with bad claims, want 0", n)
	}
}

func TestKeySourceUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.keys.err = fmt.Errorf("wrapped: %w", jwks.ErrUnavailable)
	_, err := e.gate.Verify(context.Background(), e.inst.MustMint(t))
	if !errors.Is(err, middleware.ErrKeysUnavailable) {
		t.Fatalf("err = %v, want jwk-remote-failed-to-load", err)
	}
	if !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatal("the cause is not wrapped")
	}
}

type checkerFunc func(context.Context, *middleware.Claims) error

func (f checkerFunc) CheckSession(ctx context.Context, c *middleware.Claims) error { return f(ctx, c) }

func TestSessionCheckerRunsOnEveryRequest(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var revoked atomic.Bool
	e := newEnv(t, func(c *middleware.Config) {
		c.Sessions = checkerFunc(func(_ context.Context, c *middleware.Claims) error {
			calls.Add(1)
			if revoked.Load() {
				return &middleware.Error{Reason: middleware.ReasonSessionRevoked, Message: "revoked"}
			}
			return nil
		})
	})
	tok := e.inst.MustMint(t)
	if _, err := e.gate.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	if _, err := e.gate.Verify(context.Background(), tok); !errors.Is(err, middleware.ErrSessionRevoked) {
		t.Fatalf("revoked session on a cache hit: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("checker calls = %d, want 2", calls.Load())
	}
}

func TestSessionCheckerUnknownErrorFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *middleware.Config) {
		c.Sessions = checkerFunc(func(context.Context, *middleware.Claims) error { return errors.New("backend down") })
	})
	_, err := e.gate.Verify(context.Background(), e.inst.MustMint(t))
	if !errors.Is(err, middleware.ErrSessionStatusUnavailable) {
		t.Fatalf("err = %v, want session-status-unavailable", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	keys := jwks.NewMemory()
	cases := []struct {
		name string
		cfg  middleware.Config
		want string
	}{
		{"no issuer", middleware.Config{Keys: keys}, "Issuer is required"},
		{"relative issuer", middleware.Config{Issuer: "clerk.example.com", Keys: keys}, "Issuer"},
		{"issuer with slash", middleware.Config{Issuer: "https://clerk.example.com/", Keys: keys}, "must not end"},
		{"issuer with query", middleware.Config{Issuer: "https://clerk.example.com?a=b", Keys: keys}, "Issuer"},
		{"no keys", middleware.Config{Issuer: "https://clerk.example.com"}, "Keys is required"},
		{"bad party", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, AuthorizedParties: []string{"app.example.com"}}, "AuthorizedParties"},
		{"party with path", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, AuthorizedParties: []string{"https://app.example.com/x"}}, "AuthorizedParties"},
		{"bad alg", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, Algorithms: []string{"HS256"}}, "Algorithms"},
		{"negative skew", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, ClockSkew: -time.Second}, "ClockSkew"},
		{"huge skew", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, ClockSkew: time.Hour}, "ClockSkew"},
		{"realm with quote", middleware.Config{Issuer: "https://clerk.example.com", Keys: keys, Realm: `a"b`}, "Realm"},
	}
	for _, tc := range cases {
		_, err := middleware.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestRequireOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var seen *middleware.Claims
	h := e.gate.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = middleware.ClaimsFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	valid := e.inst.MustMint(t, clerktest.WithUser("user_ok"))
	expired := e.inst.MustMint(t, clerktest.WithExpiry(e.clk.Now().Add(-time.Minute)))

	cases := []struct {
		name      string
		prepare   func(*http.Request)
		status    int
		reason    string
		challenge string
	}{
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+valid) }, 204, "", ""},
		{"bearer lower-case scheme", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+valid) }, 204, "", ""},
		{"bearer upper-case scheme, two spaces", func(r *http.Request) { r.Header.Set("Authorization", "BEARER  "+valid) }, 204, "", ""},
		{"cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__session", Value: valid}) }, 204, "", ""},
		{"header wins over cookie", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+expired)
			r.AddCookie(&http.Cookie{Name: "__session", Value: valid})
		}, 401, "token-expired", `Bearer realm="sessiongate", error="invalid_token"`},
		{"other scheme falls through to the cookie", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
			r.AddCookie(&http.Cookie{Name: "__session", Value: valid})
		}, 204, "", ""},
		{"other scheme without cookie", func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") }, 401, "session-token-missing", `Bearer realm="sessiongate"`},
		{"bare token without scheme is not a token", func(r *http.Request) { r.Header.Set("Authorization", valid) }, 401, "session-token-missing", `Bearer realm="sessiongate"`},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401, "session-token-missing", `Bearer realm="sessiongate"`},
		{"two Authorization headers", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+valid)
			r.Header.Add("Authorization", "Bearer "+valid)
		}, 401, "token-invalid", `Bearer realm="sessiongate", error="invalid_token"`},
		{"no token", func(*http.Request) {}, 401, "session-token-missing", `Bearer realm="sessiongate"`},
		{"expired cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__session", Value: expired}) }, 401, "token-expired", `Bearer realm="sessiongate", error="invalid_token"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest("GET", "/", nil)
			tc.prepare(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tc.status, w.Body)
			}
			if tc.status == 204 {
				if seen == nil || seen.Subject != "user_ok" {
					t.Fatalf("handler saw claims %+v", seen)
				}
				return
			}
			if seen != nil {
				t.Fatal("the handler ran for a rejected request")
			}
			checkRejection(t, w, tc.status, tc.reason)
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, tc.challenge)
			}
		})
	}
}

func checkRejection(t *testing.T, w *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	var body struct{ Error, Reason, Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	wantErr := map[int]string{401: "unauthenticated", 403: "forbidden", 429: "rate-limited", 503: "unavailable"}[status]
	if body.Error != wantErr || body.Reason != reason || body.Message == "" {
		t.Fatalf("body = %+v, want error %q reason %q and a message", body, wantErr, reason)
	}
	if got := w.Header().Get("X-Clerk-Auth-Reason"); got != reason {
		t.Fatalf("X-Clerk-Auth-Reason = %q, want %q", got, reason)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	wantStatus := ""
	if status == 401 {
		wantStatus = "signed-out"
	}
	if got := w.Header().Get("X-Clerk-Auth-Status"); got != wantStatus {
		t.Fatalf("X-Clerk-Auth-Status = %q, want %q", got, wantStatus)
	}
	if got := w.Header().Get("Retry-After"); (status == 503 || status == 429) != (got != "") {
		t.Fatalf("Retry-After = %q on a %d", got, status)
	}
}

func TestWriteErrorForEveryReason(t *testing.T) {
	t.Parallel()
	for _, reason := range middleware.Reasons() {
		w := httptest.NewRecorder()
		middleware.WriteError(w, &middleware.Error{Reason: reason, Message: "m"}, "sessiongate")
		checkRejection(t, w, reason.Status(), string(reason))
		if reason.Status() == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", reason)
		}
	}
	w := httptest.NewRecorder()
	middleware.WriteError(w, errors.New("anything"), "sessiongate")
	checkRejection(t, w, 401, "token-invalid")
}

func TestRequire503WhenNoKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.keys.err = jwks.ErrUnavailable
	h := e.gate.Require(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler ran") }))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+e.inst.MustMint(t))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	checkRejection(t, w, 503, "jwk-remote-failed-to-load")
}

func TestOptional(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var got *middleware.Claims
	var ran bool
	h := e.gate.Optional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		got, _ = middleware.ClaimsFromContext(r.Context())
	}))
	for _, tc := range []struct {
		name  string
		auth  string
		claim bool
	}{
		{"valid", "Bearer " + e.inst.MustMint(t), true},
		{"invalid", "Bearer garbage", false},
		{"missing", "", false},
	} {
		ran, got = false, nil
		r := httptest.NewRequest("GET", "/", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !ran || (got != nil) != tc.claim || w.Code != 200 {
			t.Errorf("%s: ran=%v claims=%v status=%d", tc.name, ran, got != nil, w.Code)
		}
	}
}

func TestLogsNeverContainTokens(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	e := newEnv(t, func(c *middleware.Config) { c.Logger = zap.New(core) })
	now := e.clk.Now()
	var tokens []string
	for _, opts := range [][]clerktest.TokenOption{
		nil,
		{clerktest.WithExpiry(now.Add(-time.Minute))},
		{clerktest.WithSigningKey(otherKey)},
		{clerktest.WithSigningKey(foreignK)},
		{clerktest.WithAlgorithm("HS256")},
		{clerktest.WithClaim("iss", "https://evil.example")},
		{clerktest.WithHeader("kid", "ins_\"quoted\"\n")},
	} {
		tokens = append(tokens, e.inst.MustMint(t, opts...))
	}
	tokens = append(tokens, "garbage.garbage.garbage")
	h := e.gate.Require(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, tok := range tokens {
		for _, carrier := range []string{"header", "cookie"} {
			r := httptest.NewRequest("GET", "/", nil)
			if carrier == "header" {
				r.Header.Set("Authorization", "Bearer "+tok)
			} else {
				r.AddCookie(&http.Cookie{Name: "__session", Value: tok})
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			for _, part := range strings.Split(tok, ".") {
				if len(part) > 8 && strings.Contains(w.Body.String(), part) {
					t.Fatalf("response body contains a token segment: %s", w.Body)
				}
			}
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no rejection was logged at debug level")
	}
	for _, entry := range logs.All() {
		line := fmt.Sprintf("%s %v", entry.Message, entry.ContextMap())
		for _, tok := range tokens {
			for _, part := range strings.Split(tok, ".") {
				if len(part) > 8 && strings.Contains(line, part) {
					t.Fatalf("log line contains a token segment: %s", line)
				}
			}
		}
		if strings.Contains(line, e.inst.SecretKey()) {
			t.Fatalf("log line contains the secret key: %s", line)
		}
	}
}

// TestCachedClaimsEqualFreshClaims: the claims a cache hit returns (decoded
// from the cache's record, interned values shared) are the claims a
// Gate without a cache decodes from the same token, field by field, for a
// token that sets every claim the Gate reads.
func TestCachedClaimsEqualFreshClaims(t *testing.T) {
	e := newEnv(t, nil)
	fresh, err := middleware.New(middleware.Config{Issuer: e.inst.Issuer(), Keys: e.keys, Now: e.clk.Now, TokenCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{
		"v2 full": e.inst.MustMint(t, clerktest.WithUser("user_2packedSubjectValue"), clerktest.WithSession("sess_2packedSessionValue"),
			clerktest.WithOrg(clerktest.Org{ID: "org_2x", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}),
			clerktest.WithUserFeatures("export"), clerktest.WithPlan("u:pro"),
			clerktest.WithActor(clerktest.Actor{Subject: "user_2admin", SessionID: "sess_2admin", Issuer: e.inst.Issuer(), Type: "impersonation"}),
			clerktest.WithAuthorizedParty("https://app.example.com"), clerktest.WithClaim("jti", "f2a1c3e4d5b6a7980011")),
		"v1":            e.inst.MustMint(t, clerktest.WithVersion1(), clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "s", Role: "member"})),
		"no jti no org": e.inst.MustMint(t, clerktest.WithoutClaim("jti")),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			want, err := fresh.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			first, err := e.gate.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			hits := e.gate.Stats().CacheHits
			hit, err := e.gate.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if e.gate.Stats().CacheHits != hits+1 {
				t.Fatal("the second verification was not a cache hit")
			}
			if !reflect.DeepEqual(first, want) {
				t.Fatalf("claims of the miss differ from fresh ones:\n got %+v\nwant %+v", *first, *want)
			}
			if !reflect.DeepEqual(hit, want) {
				t.Fatalf("cached claims differ from fresh ones:\n got %+v\nwant %+v", *hit, *want)
			}
			if want.Subject == "" || want.SessionID == "" {
				t.Fatal("token without sub or sid")
			}
			// Both Gates copy the claims the same way (compact), so check the
			// packed values against the token itself as well.
			if name == "v2 full" && (hit.Subject != "user_2packedSubjectValue" || hit.SessionID != "sess_2packedSessionValue" ||
				hit.ID != "f2a1c3e4d5b6a7980011" || hit.OrgPermissions[1] != "org:docs:write" || hit.Actor.Subject != "user_2admin") {
				t.Fatalf("cached claims: sub %q sid %q jti %q perms %q actor %+v", hit.Subject, hit.SessionID, hit.ID, hit.OrgPermissions, hit.Actor)
			}
		})
	}
}
