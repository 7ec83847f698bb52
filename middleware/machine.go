package middleware

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Machine credentials: Clerk API keys, M2M tokens and OAuth access tokens,
// accepted per Policy next to (or instead of) session tokens.

// TokenType is a kind of credential, by Clerk's names.
type TokenType string

// The credential kinds. AnyToken, in Policy.Accepts, accepts every kind.
const (
	SessionToken TokenType = "session_token"
	APIKey       TokenType = "api_key"
	M2MToken     TokenType = "m2m_token"
	OAuthToken   TokenType = "oauth_token"
	AnyToken     TokenType = "any"
)

// TokenTypes lists the credential kinds, AnyToken excluded.
func TokenTypes() []TokenType { return []TokenType{SessionToken, APIKey, M2MToken, OAuthToken} }

// Prefixes of Clerk's opaque machine credentials.
const (
	APIKeyPrefix     = "ak_"
	M2MTokenPrefix   = "mt_"
	OAuthTokenPrefix = "oat_"
)

// OpaqueTokenType is the kind of an opaque machine credential by its
// prefix ("" for anything else, a JWT included).
func OpaqueTokenType(token string) TokenType {
	switch {
	case strings.HasPrefix(token, APIKeyPrefix):
		return APIKey
	case strings.HasPrefix(token, M2MTokenPrefix):
		return M2MToken
	case strings.HasPrefix(token, OAuthTokenPrefix):
		return OAuthToken
	}
	return ""
}

// ValidateAccepts reports an unknown kind in accepts.
func ValidateAccepts(accepts []TokenType) error {
	for _, t := range accepts {
		switch t {
		case SessionToken, APIKey, M2MToken, OAuthToken, AnyToken:
		default:
			return fmt.Errorf("middleware: accepts: %q is not one of session_token, api_key, m2m_token, oauth_token, any", t)
		}
	}
	return nil
}

// AcceptsType reports whether the policy accepts credentials of kind t.
// Nil or empty Accepts accepts session tokens only.
func (p *Policy) AcceptsType(t TokenType) bool {
	if len(p.Accepts) == 0 {
		return t == SessionToken
	}
	for _, a := range p.Accepts {
		if a == t || a == AnyToken {
			return true
		}
	}
	return false
}

// acceptsMachine reports whether the policy accepts any machine kind.
func (p *Policy) acceptsMachine() bool {
	return p.AcceptsType(APIKey) || p.AcceptsType(M2MToken) || p.AcceptsType(OAuthToken)
}

// MachineIdentity is a verified machine credential. It never holds the
// credential's secret.
type MachineIdentity struct {
	// Type is APIKey, M2MToken or OAuthToken.
	Type TokenType
	// ID is the credential's id: ak_…, mt_… or oat_… for opaque
	// credentials, the jti of a JWT (may be empty).
	ID string
	// Subject is who the credential acts for: user_…, org_… or mch_….
	Subject string
	// Scopes are the credential's scopes (for an M2M token, the machines it
	// may call).
	Scopes []string
	// ClientID is the OAuth application of an OAuth access token.
	ClientID string
	// Name is an API key's name.
	Name string
	// Claims are the custom claims of an API key or M2M token, if any.
	Claims json.RawMessage
	// Expiration is when the credential expires (zero: never, or unknown).
	Expiration time.Time
}

// UserID is Subject when it is a user (user_…), else "".
func (m *MachineIdentity) UserID() string { return subjectOf(m.Subject, "user_") }

// OrgID is Subject when it is an organization (org_…), else "".
func (m *MachineIdentity) OrgID() string { return subjectOf(m.Subject, "org_") }

// MachineID is Subject when it is a machine (mch_…), else "".
func (m *MachineIdentity) MachineID() string { return subjectOf(m.Subject, "mch_") }

func subjectOf(s, prefix string) string {
	if strings.HasPrefix(s, prefix) {
		return s
	}
	return ""
}

// HasScope reports whether the credential carries scope.
func (m *MachineIdentity) HasScope(scope string) bool {
	for _, s := range m.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Auth is what authenticated a request: a session (Session set) or a
// machine credential (Machine set). Type says which.
type Auth struct {
	// Type is the kind of credential: SessionToken, APIKey, M2MToken or
	// OAuthToken (never AnyToken).
	Type TokenType
	// Session is the verified session's claims; nil for a machine
	// credential.
	Session *Claims
	// Machine is the verified machine credential; nil for a session.
	Machine *MachineIdentity
}

type authKey struct{}

// AuthFromContext returns the credential the Gate verified for the request:
// a session or a machine credential. ClaimsFromContext answers for sessions
// only.
func AuthFromContext(ctx context.Context) (*Auth, bool) {
	a, ok := ctx.Value(authKey{}).(*Auth)
	return a, ok && a != nil
}

// ContextWithAuth returns a copy of ctx carrying a; for a session it also
// carries a.Session for ClaimsFromContext.
func ContextWithAuth(ctx context.Context, a *Auth) context.Context {
	ctx = context.WithValue(ctx, authKey{}, a)
	if a.Session != nil {
		ctx = ContextWithClaims(ctx, a.Session)
	}
	return ctx
}

// MachineVerifier verifies opaque machine credentials (ak_, mt_, oat_)
// through Clerk's Backend API. Package machine implements it, with caches
// and cost bounds. client identifies the caller (its address) for
// per-client rate limits. Errors are *Error values with the machine
// reasons.
type MachineVerifier interface {
	// VerifyMachine verifies secret, a credential of type kind (APIKey,
	// M2MToken or OAuthToken) sent by client, and returns its identity.
	VerifyMachine(ctx context.Context, kind TokenType, secret, client string) (*MachineIdentity, error)
}

// AuthenticateAny extracts and verifies the credential of r under policy p,
// which may accept machine credentials (Policy.Accepts). Machine
// credentials are read only from Authorization: Bearer, never from a
// cookie. A credential of a kind p does not accept is 401
// token-type-not-accepted, without any call to Clerk.
func (g *Gate) AuthenticateAny(r *http.Request, p Policy) (*Auth, error) {
	tok, src, err := ExtractToken(r)
	if err != nil {
		return nil, err
	}
	return g.verifyCredential(r.Context(), tok, src == SourceHeader, func() string { return g.clientKey(r) }, p)
}

// VerifyAny verifies a credential of any kind p accepts, as if it came as
// Authorization: Bearer (for callers outside HTTP: jobs, the verify
// command). Per-client limits count it under the client "local".
func (g *Gate) VerifyAny(ctx context.Context, token string, p Policy) (*Auth, error) {
	return g.verifyCredential(ctx, token, true, func() string { return "local" }, p)
}

func (g *Gate) verifyCredential(ctx context.Context, tok string, bearer bool, client func() string, p Policy) (*Auth, error) {
	if tok == "" || !bearer || !p.acceptsMachine() {
		src := SourceCookie
		if bearer {
			src = SourceHeader
		}
		if tok != "" && src == SourceHeader && OpaqueTokenType(tok) != "" {
			return nil, reject(ReasonTokenTypeNotAccepted, "this route does not accept "+string(OpaqueTokenType(tok))+" credentials")
		}
		if tok != "" && !p.AcceptsType(SessionToken) {
			return nil, reject(ReasonTokenTypeNotAccepted, "this route does not accept session tokens")
		}
		c, err := g.VerifyWith(ctx, tok, p)
		if err != nil {
			return nil, err
		}
		return &Auth{Type: SessionToken, Session: c}, nil
	}
	if kind := OpaqueTokenType(tok); kind != "" {
		if !p.AcceptsType(kind) {
			return nil, reject(ReasonTokenTypeNotAccepted, "this route does not accept "+string(kind)+" credentials")
		}
		if g.machines == nil {
			return nil, reject(ReasonMachineUnavailable, "machine credentials cannot be verified: no Backend API access is configured")
		}
		m, err := g.machines.VerifyMachine(ctx, kind, tok, client())
		if err != nil {
			return nil, err
		}
		return g.machineAuth(m, p)
	}
	// A JWT: a session token, an M2M JWT or an OAuth JWT.
	now := g.now()
	if p.AcceptsType(SessionToken) {
		c, ck, hit, e := g.cachedSession(tok, now)
		if hit {
			if e != nil {
				return nil, e
			}
			if err := g.applyPolicy(ctx, c, p); err != nil {
				return nil, err
			}
			return &Auth{Type: SessionToken, Session: c}, nil
		}
		pt, e := parseToken(tok)
		if e != nil {
			return nil, g.rejected(ctx, e, "", nil)
		}
		if pt.kind == kindSession {
			c, e := g.finishSession(ctx, pt, ck, now)
			if e != nil {
				return nil, e
			}
			if err := g.applyPolicy(ctx, c, p); err != nil {
				return nil, err
			}
			return &Auth{Type: SessionToken, Session: c}, nil
		}
		return g.machineJWT(ctx, pt, p, now)
	}
	pt, e := parseToken(tok)
	if e != nil {
		return nil, g.rejected(ctx, e, "", nil)
	}
	if pt.kind == kindSession {
		return nil, reject(ReasonTokenTypeNotAccepted, "this route does not accept session tokens")
	}
	return g.machineJWT(ctx, pt, p, now)
}

// machineJWT verifies an M2M JWT or an OAuth JWT networklessly against the
// instance's keys: the header step, the kind's claims, then the key and the
// signature (the same steps as a session token's).
func (g *Gate) machineJWT(ctx context.Context, pt *parsedToken, p Policy, now time.Time) (*Auth, error) {
	var kind TokenType
	switch pt.kind {
	case kindM2MJWT:
		kind = M2MToken
	case kindOAuthJWT:
		kind = OAuthToken
	default:
		return nil, g.rejected(ctx, pt.notSession(), pt.header.kid, nil)
	}
	if !p.AcceptsType(kind) {
		return nil, reject(ReasonTokenTypeNotAccepted, "this route does not accept "+string(kind)+" credentials")
	}
	h := &pt.header
	what := map[TokenType]string{M2MToken: "M2M token", OAuthToken: "OAuth access token"}[kind]
	if e := g.checkHeader(ctx, h, what); e != nil {
		return nil, g.countJWT(kind, e)
	}
	c := pt.claims
	if e := g.checkMachineClaims(kind, pt, now); e != nil {
		return nil, g.countJWT(kind, g.rejected(ctx, e, h.kid, nil))
	}
	if _, e := g.checkSignature(ctx, pt, what, nil); e != nil {
		return nil, g.countJWT(kind, e)
	}
	g.countJWT(kind, nil)
	m := &MachineIdentity{Type: kind, ID: c.ID, Subject: c.Subject, Expiration: c.Expiry, Claims: c.Custom}
	m.Scopes, m.ClientID = machineJWTScopes(kind, c.Custom, c.aud)
	return g.machineAuth(m, p)
}

// Outcomes of networkless machine-JWT verifications, counted by kind
// (Stats.MachineJWTs).
const (
	jwtValid = iota
	jwtInvalid
	jwtExpired
	jwtUnavailable
	numJWTOutcomes
)

// MachineJWTOutcomes are the outcome names of Stats.MachineJWTs.
var MachineJWTOutcomes = [numJWTOutcomes]string{"valid", "invalid", "expired", "unavailable"}

// countJWT counts a machine JWT's verification (e nil: valid) and returns e.
func (g *Gate) countJWT(kind TokenType, e *Error) *Error {
	o := jwtValid
	switch {
	case e == nil:
	case e.Reason == ReasonTokenExpired:
		o = jwtExpired
	case e.Reason == ReasonKeysUnavailable:
		o = jwtUnavailable
	default:
		o = jwtInvalid
	}
	k := 0
	if kind == OAuthToken {
		k = 1
	}
	g.machineJWTs[k][o].Add(1)
	return e
}

// checkMachineClaims are the claim checks of a machine JWT: exp required,
// exp/nbf/iat with the skew, iss exact; an M2M JWT must carry Clerk's
// machine category and a machine subject, an OAuth JWT a subject and a
// client_id.
func (g *Gate) checkMachineClaims(kind TokenType, pt *parsedToken, now time.Time) *Error {
	c := pt.claims
	if !c.hasExp {
		return reject(ReasonTokenInvalid, "the token has no exp claim")
	}
	if e := g.checkTimes(&c.Claims, now); e != nil {
		return e
	}
	if c.Issuer != g.issuer {
		return reject(ReasonTokenInvalidIssuer, "the token was issued by another instance")
	}
	switch kind {
	case M2MToken:
		if pt.header.cat != catMachine {
			return reject(ReasonTokenTypeMismatch, "the M2M token does not carry Clerk's machine category")
		}
		if !strings.HasPrefix(c.Subject, "mch_") || len(c.Subject) == len("mch_") {
			return reject(ReasonTokenTypeMismatch, "the M2M token's subject is not a machine")
		}
	case OAuthToken:
		if c.Subject == "" {
			return reject(ReasonTokenInvalid, "the OAuth access token has no sub claim")
		}
		if _, ok := c.Claim("client_id"); !ok {
			return reject(ReasonTokenInvalid, "the OAuth access token has no client_id claim")
		}
	}
	return nil
}

// machineJWTScopes reads the scopes (M2M: "scopes", space-separated, else
// aud; OAuth: "scp" array, else "scope", space-separated) and the OAuth
// client_id from a machine JWT's custom claims.
func machineJWTScopes(kind TokenType, custom json.RawMessage, aud []string) (scopes []string, clientID string) {
	claims := Claims{Custom: custom}
	str := func(name string) string {
		raw, ok := claims.Claim(name)
		if !ok {
			return ""
		}
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	list := func(name string) []string {
		raw, ok := claims.Claim(name)
		if !ok {
			return nil
		}
		var l []string
		_ = json.Unmarshal(raw, &l)
		return l
	}
	switch kind {
	case M2MToken:
		if s := str("scopes"); s != "" {
			return strings.Fields(s), ""
		}
		return aud, ""
	case OAuthToken:
		if l := list("scp"); l != nil {
			return l, str("client_id")
		}
		return strings.Fields(str("scope")), str("client_id")
	}
	return nil, ""
}

// machineAuth applies the policy's requirements to a verified machine
// credential.
func (g *Gate) machineAuth(m *MachineIdentity, p Policy) (*Auth, error) {
	if e := p.Require.CheckMachine(m); e != nil {
		return nil, e
	}
	return &Auth{Type: m.Type, Machine: m}, nil
}

// clientKey identifies r's client for per-client limits.
func (g *Gate) clientKey(r *http.Request) string {
	if g.clientKeyFn != nil {
		return g.clientKeyFn(r)
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}

// ClaimedTokenType is the kind of r's credential as far as its form tells
// without verifying anything: an opaque machine credential's (ak_, mt_,
// oat_) sent as Authorization: Bearer, by its prefix; "" for anything else
// (a JWT's kind is in a payload nobody has vouched for yet). Spans and logs
// of a rejected request use it; a verified one's kind is Auth.Type.
func ClaimedTokenType(r *http.Request) TokenType {
	if len(r.Header["Authorization"]) == 0 {
		return ""
	}
	tok, src, _ := ExtractToken(r)
	if src != SourceHeader {
		return ""
	}
	return OpaqueTokenType(tok)
}

// IsMachineCredential reports whether token is a machine credential: an
// opaque API key, M2M or OAuth token by its prefix, or an M2M or OAuth JWT
// by its header and subject. It verifies nothing; it lets a caller keep
// machine credentials away from browser flows (redirects).
func IsMachineCredential(token string) bool {
	if OpaqueTokenType(token) != "" {
		return true
	}
	p, e := parseToken(token)
	return e == nil && (p.kind == kindM2MJWT || p.kind == kindOAuthJWT)
}
