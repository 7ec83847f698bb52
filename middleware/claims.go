package middleware

import (
	"encoding/json"
	"errors"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// Claims are the verified claims of a Clerk session token, v1 and v2 alike.
//
// A *Claims handed out by the Gate is shared between requests carrying the
// same token (it lives in the verified-token cache): callers MUST treat it,
// and its slices, as read-only.
type Claims struct {
	// Subject is the user id (user_…).
	Subject string
	// SessionID is the session id (sess_…).
	SessionID string
	// Issuer is the Frontend API URL that minted the token.
	Issuer string
	// AuthorizedParty is the azp claim: the origin the token was minted for.
	AuthorizedParty string
	// ID is the jti claim, if present.
	ID string
	// Expiry, IssuedAt and NotBefore are exp, iat and nbf (zero if absent,
	// except Expiry, which is required).
	Expiry, IssuedAt, NotBefore time.Time
	// Version is the claim-set version: 2 for tokens with "v":2, else 1.
	Version int
	// SessionStatus is the sts claim ("active" or "pending"; "" in v1 tokens).
	SessionStatus string

	// OrgID, OrgSlug and OrgRole describe the active organization, if any.
	// OrgRole always carries the "org:" prefix (v2 tokens send it without).
	OrgID, OrgSlug, OrgRole string
	// OrgPermissions are the active organization's permissions, as
	// "org:<feature>:<permission>" (v2 o.per/o.fpm decoded with fea, once
	// the signature has been verified) or as listed in v1's
	// org_permissions. There are at most 1,024.
	OrgPermissions []string

	// Features is the fea claim split on commas ("o:dashboard", "u:export").
	Features []string
	// Plan is the pla claim ("u:free", "o:pro").
	Plan string
	// FactorVerificationAge is fva: minutes since the first and second factor
	// were verified, -1 meaning never. Nil when absent.
	FactorVerificationAge *[2]int64
	// Actor is set when the session is an impersonation (act claim).
	Actor *Actor

	// Custom is a JSON object of the payload's members that are not Clerk's
	// standard claims (those of the session-token template: an email,
	// metadata…), with their values as the token has them. Nil when there
	// are none. Read it with Claim or DecodeCustom.
	Custom json.RawMessage
}

// Actor is the impersonator of an impersonation session (the act claim).
type Actor struct {
	Issuer    string // act.iss: the issuer of the impersonator's identity
	SessionID string // act.sid: the impersonator's own session id (sess_…)
	Subject   string // act.sub: the impersonator's user id (user_…)
	Type      string // act.type: the kind of actor ("agent"); "" when absent
}

// HasRole reports whether the active organization role is role. "admin" and
// "org:admin" name the same role.
func (c *Claims) HasRole(role string) bool {
	return c.OrgRole != "" && c.OrgRole == clerkwire.OrgName(role)
}

// HasPermission reports whether the active organization grants perm.
func (c *Claims) HasPermission(perm string) bool {
	for _, p := range c.OrgPermissions {
		if p == perm {
			return true
		}
	}
	return false
}

// rawClaims is the decoded claim set before the checks that depend on time
// and configuration. Presence of numeric claims is tracked separately because
// 0 is a valid value.
type rawClaims struct {
	Claims
	exp, iat, nbf          int64
	hasExp, hasIat, hasNbf bool
	hasSts                 bool // present and not null
	version                int64
	org                    rawOrg
	v1OrgRole              string
	v1OrgPerms             []string
	fea                    string
	custom                 []byte // the Custom object being built
	aud                    []string
}

type rawOrg struct {
	id, slug, role, per, fpm string
}

// decodeClaims parses a claim set strictly: every member known to Clerk's Go
// SDK must have the JSON type that SDK requires (a token it rejects MUST NOT
// pass here), null means absent, duplicate members and malformed JSON are
// refused. Unknown members are validated and ignored.
//
// It runs before the signature is checked, so it MUST cost no more than
// linear time in the payload: v2 organization permissions are only checked
// against the limits here and expanded by expandPermissions, after
// verification.
func decodeClaims(payload []byte) (*rawClaims, error) {
	c := &rawClaims{}
	r := jsonReader{data: payload}
	err := r.object(0, func(name string) error {
		if r.null() {
			return nil
		}
		var err error
		switch name {
		case "sub":
			c.Subject, err = r.string()
		case "sid":
			c.SessionID, err = r.string()
		case "iss":
			c.Issuer, err = r.string()
		case "azp":
			c.AuthorizedParty, err = r.string()
		case "jti":
			c.ID, err = r.string()
		case "sts":
			c.SessionStatus, err = r.string()
			c.hasSts = true
		case "pla":
			c.Plan, err = r.string()
		case "fea":
			c.fea, err = r.string()
		case "exp":
			c.exp, err = r.int64()
			c.hasExp = true
		case "iat":
			c.iat, err = r.int64()
			c.hasIat = true
		case "nbf":
			c.nbf, err = r.int64()
			c.hasNbf = true
		case "v":
			c.version, err = r.int64()
		case "fva":
			err = c.decodeFVA(&r)
		case "o":
			err = c.decodeOrg(&r)
		case "act":
			err = c.decodeActor(&r)
		case "org_id":
			c.OrgID, err = r.string()
		case "org_slug":
			c.OrgSlug, err = r.string()
		case "org_role":
			c.v1OrgRole, err = r.string()
		case "org_permissions":
			c.v1OrgPerms, err = stringArray(&r)
		case "aud":
			// Clerk session tokens carry no aud; when present it must be a
			// string or an array of strings (RFC 7519), as go-jose requires.
			// Kept for machine JWTs (an M2M JWT's aud lists machines).
			if r.peek() == '[' {
				c.aud, err = stringArray(&r)
			} else {
				var a string
				a, err = r.string()
				c.aud = []string{a}
			}
		default:
			r.ws()
			start := r.pos
			if err = r.skip(1); err == nil {
				c.addCustom(name, r.data[start:r.pos])
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	for _, d := range [...]struct {
		has bool
		v   int64
	}{{c.hasExp, c.exp}, {c.hasIat, c.iat}, {c.hasNbf, c.nbf}} {
		// time.Unix wraps around for seconds near the int64 limits: an nbf of
		// 2^63-1 would become a date in the past and pass. Only dates a
		// time.Time holds exactly are accepted.
		if d.has && (d.v < minNumericDate || d.v > maxNumericDate) {
			return nil, errDateRange
		}
	}
	if err := c.checkPermissionLimits(); err != nil {
		return nil, err
	}
	c.finishCustom()
	c.finish()
	return c, nil
}

// The accepted range of exp, nbf and iat: 0001-01-01 to 9999-12-31 UTC.
const (
	minNumericDate = -62135596800
	maxNumericDate = 253402300799
)

var errDateRange = errors.New("a NumericDate outside years 1 to 9999")

func (c *rawClaims) decodeFVA(r *jsonReader) error {
	if r.peek() != '[' {
		if err := r.skip(1); err != nil {
			return err
		}
		return errClaimType
	}
	var fva [2]int64
	n := 0
	err := r.array(1, func() error {
		if n >= 2 {
			return errClaimType
		}
		v, err := r.int64()
		fva[n] = v
		n++
		return err
	})
	if err != nil {
		return err
	}
	if n != 2 {
		return errClaimType
	}
	c.FactorVerificationAge = &fva
	return nil
}

func (c *rawClaims) decodeOrg(r *jsonReader) error {
	if r.peek() != '{' {
		if err := r.skip(1); err != nil {
			return err
		}
		return errClaimType
	}
	return r.object(1, func(name string) error {
		if r.null() {
			return nil
		}
		var err error
		switch name {
		case "id":
			c.org.id, err = r.string()
		case "slg":
			c.org.slug, err = r.string()
		case "rol":
			c.org.role, err = r.string()
		case "per":
			c.org.per, err = r.string()
		case "fpm":
			c.org.fpm, err = r.string()
		default:
			err = r.skip(2)
		}
		return err
	})
}

func (c *rawClaims) decodeActor(r *jsonReader) error {
	if r.peek() != '{' {
		if err := r.skip(1); err != nil {
			return err
		}
		return errClaimType
	}
	a := &Actor{}
	err := r.object(1, func(name string) error {
		if r.null() {
			return nil
		}
		var err error
		switch name {
		case "iss":
			a.Issuer, err = r.string()
		case "sid":
			a.SessionID, err = r.string()
		case "sub":
			a.Subject, err = r.string()
		case "type":
			a.Type, err = r.string()
		default:
			err = r.skip(2)
		}
		return err
	})
	if err != nil {
		return err
	}
	c.Actor = a
	return nil
}

func stringArray(r *jsonReader) ([]string, error) {
	if r.peek() != '[' {
		if err := r.skip(1); err != nil {
			return nil, err
		}
		return nil, errClaimType
	}
	var out []string
	err := r.array(1, func() error {
		s, err := r.string()
		out = append(out, s)
		return err
	})
	return out, err
}

// finish fills the public Claims from the raw members.
func (c *rawClaims) finish() {
	if c.hasExp {
		c.Expiry = time.Unix(c.exp, 0)
	}
	if c.hasIat {
		c.IssuedAt = time.Unix(c.iat, 0)
	}
	if c.hasNbf {
		c.NotBefore = time.Unix(c.nbf, 0)
	}
	if c.fea != "" {
		c.Features = splitList(c.fea)
	}
	if c.version >= 2 {
		c.Version = int(c.version)
		c.OrgID, c.OrgSlug = c.org.id, c.org.slug
		if c.org.id != "" {
			// OrgPermissions: expandPermissions, after verification.
			c.OrgRole = clerkwire.OrgName(c.org.role)
		} else {
			c.OrgID, c.OrgSlug = "", ""
		}
	} else {
		// v1 (and tokens without v): flat org claims; v2's "o" is ignored.
		c.Version = 1
		if c.OrgID != "" {
			c.OrgRole = clerkwire.OrgName(c.v1OrgRole)
			c.OrgPermissions = c.v1OrgPerms
		} else {
			c.OrgSlug = ""
		}
	}
}

func splitList(s string) []string {
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Limits on the organization permissions of a claim set. A token over any
// of them is token-invalid, even when correctly signed. They sit far above
// what Clerk issues (an instance has a few dozen permissions, so its masks
// are a few digits long) and bound both the work a token can cause and the
// claims a cached token keeps. docs/security.md lists them.
const (
	// maxOrgPermissionNames bounds the comma-separated entries of o.per.
	maxOrgPermissionNames = 1024
	// maxOrgMaskDigits bounds each comma-separated mask of o.fpm, spaces
	// around it excluded: 309 digits hold 2^1024-1, one bit for each of
	// maxOrgPermissionNames names.
	maxOrgMaskDigits = 309
	// maxOrgPermissions bounds the permissions granted in all: v2's o.per
	// and o.fpm once decoded, v1's org_permissions entries.
	maxOrgPermissions = 1024
)

var errPermissionLimit = errors.New("organization permissions over sessiongate's limits")

// checkPermissionLimits applies the limits that need no decoding, in linear
// time: it runs before the signature check. They apply wherever the members
// appear (a v1 token's o, an org-less v2 token's o.per), since an upstream
// that reads the forwarded token may decode them.
func (c *rawClaims) checkPermissionLimits() error {
	if strings.Count(c.org.per, ",") >= maxOrgPermissionNames {
		return errPermissionLimit
	}
	for rest, more := c.org.fpm, c.org.fpm != ""; more; {
		var mask string
		mask, rest, more = strings.Cut(rest, ",")
		if len(strings.TrimSpace(mask)) > maxOrgMaskDigits {
			return errPermissionLimit
		}
	}
	if len(c.v1OrgPerms) > maxOrgPermissions {
		return errPermissionLimit
	}
	return nil
}

// expandPermissions decodes v2's o.per and o.fpm into OrgPermissions. It
// MUST run only once the signature is verified: the output can be
// maxOrgPermissions strings for a 16 KiB token, more than a forged token
// may cost. It fails with errPermissionLimit past maxOrgPermissions.
func (c *rawClaims) expandPermissions() error {
	if c.Version < 2 || c.OrgID == "" {
		return nil // v1 permissions are listed, not encoded
	}
	perms, err := orgPermissions(c.Features, c.org.per, c.org.fpm)
	if err != nil {
		return err
	}
	c.OrgPermissions = perms
	return nil
}

// orgPermissions decodes v2's compact permissions. fea lists features as
// "<scope>:<feature>"; the org-scoped ones (scope contains "o") are, in order,
// the features that fpm's comma-separated decimal masks describe; bit j of a
// mask (least significant first) grants per[j]. This follows Clerk's
// JavaScript SDK (jwtPayloadParser.ts), which indexes org-scoped features
// only; masks may exceed 64 bits. A mask that is not a decimal number grants
// nothing for its feature (fail closed) rather than rejecting the token.
//
// Each mask is parsed once, and only its set bits are visited: with the
// limits checked by checkPermissionLimits, the cost is linear in the claims
// plus the permissions granted.
func orgPermissions(features []string, per, fpm string) ([]string, error) {
	if per == "" || fpm == "" || len(features) == 0 {
		return nil, nil
	}
	perms := splitList(per)
	masks := strings.Split(fpm, ",")
	var out []string
	var m mask
	i := 0
	for _, f := range features {
		scope, name, ok := strings.Cut(f, ":")
		if !ok || !strings.Contains(scope, "o") || name == "" {
			continue
		}
		if i >= len(masks) {
			break
		}
		words, ok := m.parse(strings.TrimSpace(masks[i]))
		i++
		if !ok {
			continue
		}
		for w, word := range words {
			for word != 0 {
				j := w*bits.UintSize + bits.TrailingZeros(uint(word))
				if j >= len(perms) {
					break // bits past the last name grant nothing
				}
				if len(out) == maxOrgPermissions {
					return nil, errPermissionLimit
				}
				out = append(out, "org:"+name+":"+perms[j])
				word &= word - 1
			}
		}
	}
	return out, nil
}

// mask is the scratch space of one decoded permission mask.
type mask struct {
	small [64 / bits.UintSize]big.Word
	big   *big.Int // for masks of 20 digits or more, allocated on first use
}

// parse decodes a non-empty string of ASCII digits into its binary words,
// least significant first; they are valid until the next call.
func (m *mask) parse(s string) ([]big.Word, bool) {
	if s == "" {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, false
		}
	}
	if len(s) <= 19 { // < 10^19 < 2^64
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, false
		}
		for k := range m.small { // one word, or two on 32-bit platforms
			m.small[k] = big.Word(v)
			v >>= bits.UintSize / 2 // in two halves: vet refuses a 64-bit shift of a uint64
			v >>= bits.UintSize / 2
		}
		return m.small[:], true
	}
	if m.big == nil {
		m.big = new(big.Int)
	}
	if _, ok := m.big.SetString(s, 10); !ok {
		return nil, false
	}
	return m.big.Bits(), true
}
