package middleware

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// Custom claims: the members of a session token that are not Clerk's
// standard claims (an email, metadata, a plan name: whatever the instance's
// session-token template adds), and lookups by dotted path over all claims.

// standardClaims are the members decodeClaims reads; every other member of
// the payload goes to Claims.Custom.
var standardClaims = map[string]bool{
	"sub": true, "sid": true, "iss": true, "azp": true, "jti": true, "sts": true, "pla": true, "fea": true,
	"exp": true, "iat": true, "nbf": true, "v": true, "fva": true, "o": true, "act": true,
	"org_id": true, "org_slug": true, "org_role": true, "org_permissions": true, "aud": true,
}

// addCustom appends member name, with its raw JSON value, to the custom
// claims object being built. Linear in the payload: it runs before the
// signature check.
func (c *rawClaims) addCustom(name string, raw []byte) {
	if c.custom == nil {
		c.custom = make([]byte, 0, len(raw)+len(name)+8)
		c.custom = append(c.custom, '{')
	} else {
		c.custom = append(c.custom, ',')
	}
	c.custom = appendJSONString(c.custom, name)
	c.custom = append(c.custom, ':')
	c.custom = append(c.custom, raw...)
}

// finishCustom closes the custom claims object (nil when there is none).
func (c *rawClaims) finishCustom() {
	if c.custom != nil {
		c.Custom = json.RawMessage(append(c.custom, '}'))
	}
}

// Claim returns the raw JSON value of the claim at path, whose segments are
// separated by dots: "email", "public_metadata.plan", "o.id", "act.sub".
// Custom claims are looked up in Custom; Clerk's standard claims answer from
// the verified fields, in the v2 shape whatever the token's version (o is
// {"id","slg","rol"}, rol without "org:"; org_role keeps it). A missing
// claim, a path through a non-object, and null give ok false.
func (c *Claims) Claim(path string) (json.RawMessage, bool) {
	first, rest, nested := strings.Cut(path, ".")
	var doc []byte
	if standardClaims[first] {
		doc = c.standardClaim(first)
	} else if len(c.Custom) > 0 {
		raw, ok := lookupMember(c.Custom, first)
		if !ok {
			return nil, false
		}
		doc = raw
	}
	if doc == nil {
		return nil, false
	}
	for nested {
		var seg string
		seg, rest, nested = strings.Cut(rest, ".")
		raw, ok := lookupMember(doc, seg)
		if !ok {
			return nil, false
		}
		doc = raw
	}
	if string(doc) == "null" {
		return nil, false
	}
	return json.RawMessage(doc), true
}

// DecodeCustom unmarshals the custom claims into v (a struct with json tags,
// or a map), with encoding/json. It does nothing when there are none.
func (c *Claims) DecodeCustom(v any) error {
	if len(c.Custom) == 0 {
		return nil
	}
	return json.Unmarshal(c.Custom, v)
}

// lookupMember returns the raw value of member name of the JSON object doc;
// ok is false when doc is not an object or has no such member. doc was
// validated when the token was decoded (or is built here), so an error only
// means "not found".
func lookupMember(doc []byte, name string) ([]byte, bool) {
	r := jsonReader{data: doc}
	if r.peek() != '{' {
		return nil, false
	}
	var found []byte
	errFound := errJSON
	err := r.object(0, func(n string) error {
		r.ws()
		start := r.pos
		if err := r.skip(1); err != nil {
			return err
		}
		if n == name {
			found = doc[start:r.pos]
			return errFound
		}
		return nil
	})
	if found != nil && err == errFound {
		return found, true
	}
	return nil, false
}

// standardClaim renders a standard claim from the verified fields; nil when
// the token has none.
func (c *Claims) standardClaim(name string) []byte {
	str := func(s string) []byte {
		if s == "" {
			return nil
		}
		return appendJSONString(nil, s)
	}
	num := func(n int64, ok bool) []byte {
		if !ok {
			return nil
		}
		return strconv.AppendInt(nil, n, 10)
	}
	switch name {
	case "sub":
		return str(c.Subject)
	case "sid":
		return str(c.SessionID)
	case "iss":
		return str(c.Issuer)
	case "azp":
		return str(c.AuthorizedParty)
	case "jti":
		return str(c.ID)
	case "sts":
		return str(c.SessionStatus)
	case "pla":
		return str(c.Plan)
	case "fea":
		return str(strings.Join(c.Features, ","))
	case "v":
		return num(int64(c.Version), c.Version != 0)
	case "exp":
		return num(c.Expiry.Unix(), !c.Expiry.IsZero())
	case "iat":
		return num(c.IssuedAt.Unix(), !c.IssuedAt.IsZero())
	case "nbf":
		return num(c.NotBefore.Unix(), !c.NotBefore.IsZero())
	case "fva":
		if c.FactorVerificationAge == nil {
			return nil
		}
		b := append([]byte{'['}, strconv.AppendInt(nil, c.FactorVerificationAge[0], 10)...)
		b = append(append(b, ','), strconv.AppendInt(nil, c.FactorVerificationAge[1], 10)...)
		return append(b, ']')
	case "org_id":
		return str(c.OrgID)
	case "org_slug":
		return str(c.OrgSlug)
	case "org_role":
		return str(c.OrgRole)
	case "org_permissions":
		if c.OrgID == "" {
			return nil
		}
		b, _ := json.Marshal(nonNil(c.OrgPermissions))
		return b
	case "o":
		if c.OrgID == "" {
			return nil
		}
		b, _ := json.Marshal(struct {
			ID   string `json:"id"`
			Slug string `json:"slg,omitempty"`
			Role string `json:"rol,omitempty"`
		}{c.OrgID, c.OrgSlug, clerkwire.ShortOrgName(c.OrgRole)})
		return b
	case "act":
		if c.Actor == nil {
			return nil
		}
		b, _ := json.Marshal(struct {
			Issuer    string `json:"iss,omitempty"`
			SessionID string `json:"sid,omitempty"`
			Subject   string `json:"sub,omitempty"`
			Type      string `json:"type,omitempty"`
		}{c.Actor.Issuer, c.Actor.SessionID, c.Actor.Subject, c.Actor.Type})
		return b
	}
	return nil // aud: not kept
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jsonOrder is the order MarshalJSON writes the standard claims in.
var jsonOrder = [...]string{"sub", "sid", "iss", "azp", "jti", "exp", "iat", "nbf", "v", "sts",
	"org_id", "org_slug", "org_role", "org_permissions", "fea", "pla", "fva", "act"}

// MarshalJSON writes the claims by their JWT names: the standard claims
// sessiongate verified (organization claims flat, as org_id, org_slug,
// org_role with its "org:" prefix and the expanded org_permissions,
// whatever the token's version), then the custom claims as they were.
func (c Claims) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, name := range jsonOrder {
		v := c.standardClaim(name)
		if v == nil {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.Write(appendJSONString(nil, name))
		b.WriteByte(':')
		b.Write(v)
	}
	if len(c.Custom) > 2 { // "{…}": merge its members
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(c.Custom[1 : len(c.Custom)-1])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (it was
// decoded from the token, or is a name of this file).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
