package clerktest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Token categories Clerk puts in the "cat" header parameter.
const (
	// CategorySession marks a session token.
	CategorySession = "cl_B7d4PD111AAA"
	// CategoryTemplate marks a JWT-template token.
	CategoryTemplate = "cl_B7d4PD222AAA"
	// CategoryMachine marks a machine (M2M) token.
	CategoryMachine = "cl_B7d4PD333AAA"
)

// notBeforeSkew is iat − nbf of minted tokens.
const notBeforeSkew = 5 * time.Second

// Org is the active organization of a minted session token.
type Org struct {
	// ID is the organization id (org_…).
	ID string
	// Slug is the organization slug.
	Slug string
	// Role is the member's role, with or without the "org:" prefix: v2
	// tokens carry it without ("admin"), v1 tokens with ("org:admin").
	Role string
	// Permissions are "org:<feature>:<permission>" strings. v2 tokens encode
	// them into fea, o.per and o.fpm; v1 tokens list them in org_permissions
	// as given.
	Permissions []string
}

// Actor is the impersonator of an impersonation session (the "act" claim).
// Empty fields are omitted.
type Actor struct {
	Issuer    string // act.iss
	SessionID string // act.sid
	Subject   string // act.sub: the impersonator's user id
	Type      string // act.type, e.g. "agent"
}

// TokenOption changes one aspect of a token minted by Mint.
type TokenOption func(*tokenConfig)

type tokenKind int

const (
	kindSession tokenKind = iota
	kindTemplate
	kindMachine
)

// edit sets (or, with remove, deletes) one header parameter or claim.
type edit struct {
	name   string
	value  any
	remove bool
}

type tokenConfig struct {
	kind         tokenKind
	template     string
	userID       string
	sessionID    string
	azp          *string
	org          *Org
	userFeatures []string
	plan         string
	actor        *Actor
	pending      bool
	v1           bool
	lifetime     time.Duration
	issuedAt     time.Time
	expiry       time.Time
	notBefore    time.Time
	claimEdits   []edit
	headerEdits  []edit
	key          *SigningKey
	alg          string
	rawHeader    []byte
	hasRawHeader bool
	rawPayload   []byte
	hasRawPayld  bool
}

// WithUser sets the subject (sub). Without it a session token gets a new
// user id (user_…), or the user of the session given with WithSession.
func WithUser(id string) TokenOption { return func(c *tokenConfig) { c.userID = id } }

// WithSession sets the session id (sid). A session the instance already
// knows is reused, with its user; an unknown id is recorded as a new session.
// Without it each token gets a new session (sess_…).
func WithSession(id string) TokenOption { return func(c *tokenConfig) { c.sessionID = id } }

// WithAuthorizedParty sets azp; "" omits it.
func WithAuthorizedParty(azp string) TokenOption {
	return func(c *tokenConfig) { c.azp = &azp }
}

// WithOrg makes org the active organization: claim o in v2 tokens, the flat
// org_* claims in v1 tokens.
func WithOrg(org Org) TokenOption {
	return func(c *tokenConfig) {
		org.Permissions = append([]string(nil), org.Permissions...)
		c.org = &org
	}
}

// WithUserFeatures adds user-scoped features to fea (v2 only). A name
// without a scope gets "u:"; one with a scope ("u:x", "ou:x") is kept. They
// come after the org features, because o.fpm indexes the org features only.
func WithUserFeatures(features ...string) TokenOption {
	return func(c *tokenConfig) { c.userFeatures = append(c.userFeatures, features...) }
}

// WithPlan sets pla (v2 only), e.g. "u:free" or "o:pro".
func WithPlan(plan string) TokenOption { return func(c *tokenConfig) { c.plan = plan } }

// WithFactorVerificationAge sets fva: minutes since the session's first
// and second factor were verified, -1 for a user without that kind of
// factor. Without it a session token has [0, -1] (just signed in with a
// first factor, no second factor), as Clerk's do.
func WithFactorVerificationAge(first, second int64) TokenOption {
	return WithClaim("fva", []int64{first, second})
}

// WithActor adds the act claim of an impersonation session.
func WithActor(a Actor) TokenOption { return func(c *tokenConfig) { c.actor = &a } }

// WithPending sets sts to "pending" (v2 only): a session with unfinished
// tasks. A new session is recorded as pending.
func WithPending() TokenOption { return func(c *tokenConfig) { c.pending = true } }

// WithVersion1 mints a v1 token: no v, sts or fea; org claims flat.
func WithVersion1() TokenOption { return func(c *tokenConfig) { c.v1 = true } }

// WithLifetime sets exp − iat instead of Options.TokenLifetime.
func WithLifetime(d time.Duration) TokenOption { return func(c *tokenConfig) { c.lifetime = d } }

// WithIssuedAt sets iat instead of the instance clock's now; exp is iat plus
// the lifetime and nbf is iat − 5 s.
func WithIssuedAt(t time.Time) TokenOption { return func(c *tokenConfig) { c.issuedAt = t } }

// WithExpiry sets exp, overriding the lifetime.
func WithExpiry(t time.Time) TokenOption { return func(c *tokenConfig) { c.expiry = t } }

// WithNotBefore sets nbf.
func WithNotBefore(t time.Time) TokenOption { return func(c *tokenConfig) { c.notBefore = t } }

// WithClaim sets claim name to value, after every other claim option. The
// value is JSON-encoded, except a json.RawMessage, which is used verbatim
// (unchecked): WithClaim("exp", json.RawMessage(`"123"`)) or
// json.RawMessage("null").
func WithClaim(name string, value any) TokenOption {
	return func(c *tokenConfig) { c.claimEdits = append(c.claimEdits, edit{name: name, value: value}) }
}

// WithoutClaim removes claim name from the payload.
func WithoutClaim(name string) TokenOption {
	return func(c *tokenConfig) { c.claimEdits = append(c.claimEdits, edit{name: name, remove: true}) }
}

// WithHeader sets header parameter name to value, with WithClaim's encoding
// rules. It changes only the header: to sign with another algorithm use
// WithAlgorithm.
func WithHeader(name string, value any) TokenOption {
	return func(c *tokenConfig) { c.headerEdits = append(c.headerEdits, edit{name: name, value: value}) }
}

// WithoutHeader removes header parameter name.
func WithoutHeader(name string) TokenOption {
	return func(c *tokenConfig) { c.headerEdits = append(c.headerEdits, edit{name: name, remove: true}) }
}

// WithSigningKey signs with k instead of the instance's signing key; the
// header kid is k.ID and alg is k.Algorithm unless overridden.
func WithSigningKey(k *SigningKey) TokenOption { return func(c *tokenConfig) { c.key = k } }

// WithAlgorithm sets the header alg and signs accordingly (see Sign): RS256,
// RS384 or RS512 with the RSA key; HS256, HS384 or HS512 with an HMAC keyed
// by the key's public key (algorithm confusion); "none" with no signature.
func WithAlgorithm(alg string) TokenOption { return func(c *tokenConfig) { c.alg = alg } }

// WithRawHeader uses header, byte for byte, as the JOSE header; every other
// header option is ignored.
func WithRawHeader(header []byte) TokenOption {
	return func(c *tokenConfig) { c.rawHeader, c.hasRawHeader = header, true }
}

// WithRawPayload uses payload, byte for byte, as the claims; every other
// claim option is ignored and no session is recorded.
func WithRawPayload(payload []byte) TokenOption {
	return func(c *tokenConfig) { c.rawPayload, c.hasRawPayld = payload, true }
}

// WithTemplate mints a JWT-template token (cat cl_B7d4PD222AAA): azp, exp,
// iat, iss, jti, nbf and sub only, no sid, v, sts or fva, so it outlives its
// session. Clerk does not put the template name in the token; name is kept
// for the Backend API endpoints that mint template tokens. The session-only
// options (WithSession, WithOrg, WithActor, WithPending, WithVersion1,
// WithPlan, WithUserFeatures) are ignored, and no session is recorded.
func WithTemplate(name string) TokenOption {
	return func(c *tokenConfig) { c.kind, c.template = kindTemplate, name }
}

// WithMachine mints a machine token (cat cl_B7d4PD333AAA): exp, iat, iss,
// jti, nbf and a machine subject (mch_…, or WithUser's), no sid or azp. The
// session-only options are ignored, as for WithTemplate.
func WithMachine() TokenOption { return func(c *tokenConfig) { c.kind = kindMachine } }

// Mint returns a signed token in Clerk's format (see the options for the
// variants). A session token's session is recorded in the instance.
func (i *Instance) Mint(opts ...TokenOption) (string, error) {
	var c tokenConfig
	for _, o := range opts {
		o(&c)
	}
	key := c.key
	if key == nil {
		key = i.keys.signing()
	}
	if key == nil || key.Private == nil {
		return "", errors.New("clerktest: mint: no signing key")
	}
	alg := c.alg
	if alg == "" {
		alg = key.Algorithm
	}
	if !supportedAlg(alg) {
		return "", fmt.Errorf("clerktest: mint: unsupported algorithm %q (want RS256/384/512, HS256/384/512 or none)", alg)
	}
	header := c.rawHeader
	if !c.hasRawHeader {
		var err error
		if header, err = i.header(&c, key, alg); err != nil {
			return "", err
		}
	}
	payload := c.rawPayload
	if !c.hasRawPayld {
		var err error
		if payload, err = i.claims(&c); err != nil {
			return "", err
		}
	}
	return Sign(header, payload, key, alg), nil
}

// MustMint is Mint that fails tb on error.
func (i *Instance) MustMint(tb TB, opts ...TokenOption) string {
	tb.Helper()
	tok, err := i.Mint(opts...)
	if err != nil {
		tb.Fatalf("clerktest: %v", err)
	}
	return tok
}

// header builds the JOSE header: alg, cat, kid, typ.
func (i *Instance) header(c *tokenConfig, key *SigningKey, alg string) ([]byte, error) {
	cat := CategorySession
	switch c.kind {
	case kindTemplate:
		cat = CategoryTemplate
	case kindMachine:
		cat = CategoryMachine
	}
	h := map[string]any{"alg": alg, "cat": cat, "kid": key.ID, "typ": "JWT"}
	applyEdits(h, c.headerEdits)
	b, err := encodeObject(h)
	if err != nil {
		return nil, fmt.Errorf("clerktest: mint: header: %w", err)
	}
	return b, nil
}

func supportedAlg(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "HS256", "HS384", "HS512", "none":
		return true
	}
	return false
}

// Sign returns the compact JWS base64url(header).base64url(payload).
// base64url(signature) over exactly these bytes. alg chooses the signature:
//
//   - RS256, RS384, RS512: RSASSA-PKCS1-v1_5 with key's private key;
//   - HS256, HS384, HS512: HMAC keyed with the PKIX DER encoding of key's
//     public key, the classic algorithm-confusion forgery against verifiers
//     that let the token pick the algorithm;
//   - none: an empty signature (the token ends with ".").
//
// Sign panics on any other alg, or a nil key for an alg that needs one: these
// are mistakes in the test, not conditions to handle.
func Sign(header, payload []byte, key *SigningKey, alg string) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	if alg == "none" {
		return input + "."
	}
	if key == nil || key.Private == nil {
		panic("clerktest: Sign: nil key for " + alg)
	}
	var sig []byte
	switch alg {
	case "RS256", "RS384", "RS512":
		h, newHash := hashFor(alg)
		d := newHash()
		d.Write([]byte(input))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key.Private, h, d.Sum(nil)); err != nil {
			panic(fmt.Sprintf("clerktest: Sign: %v", err))
		}
	case "HS256", "HS384", "HS512":
		_, newHash := hashFor(alg)
		m := hmac.New(newHash, key.publicDER())
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		panic(fmt.Sprintf("clerktest: Sign: unsupported algorithm %q", alg))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// hashFor maps the size suffix of alg (…256, …384, …512) to its hash.
func hashFor(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[2:] {
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}
