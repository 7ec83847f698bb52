package clerktest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// claims builds the payload of a minted token and records its session.
func (i *Instance) claims(c *tokenConfig) ([]byte, error) {
	now := i.now()
	iat := c.issuedAt
	if iat.IsZero() {
		iat = now
	}
	lifetime := c.lifetime
	if lifetime == 0 {
		lifetime = i.lifetime
	}
	exp, nbf := iat.Add(lifetime), iat.Add(-notBeforeSkew)
	if !c.expiry.IsZero() {
		exp = c.expiry
	}
	if !c.notBefore.IsZero() {
		nbf = c.notBefore
	}
	m := map[string]any{
		"exp": exp.Unix(),
		"iat": iat.Unix(),
		"iss": i.Issuer(),
		"nbf": nbf.Unix(),
	}
	azp := i.azp
	if c.azp != nil {
		azp = *c.azp
	}

	switch c.kind {
	case kindMachine:
		m["sub"] = cmp.Or(c.userID, newID("mch"))
		m["jti"] = randomHex(10)
	case kindTemplate:
		m["sub"] = cmp.Or(c.userID, newID("user"))
		m["jti"] = randomHex(10)
		if azp != "" {
			m["azp"] = azp
		}
	default:
		if azp != "" {
			m["azp"] = azp
		}
		sess, err := i.sessionFor(c, now)
		if err != nil {
			return nil, err
		}
		m["sub"], m["sid"] = sess.UserID, sess.ID
		m["fva"] = []int{0, -1}
		if c.actor != nil {
			m["act"] = actClaim(*c.actor)
		}
		if c.v1 {
			if c.org != nil {
				m["org_id"] = c.org.ID
				m["org_slug"] = c.org.Slug
				m["org_role"] = clerkwire.OrgPrefix + clerkwire.ShortOrgName(c.org.Role)
				m["org_permissions"] = append([]string{}, c.org.Permissions...)
			}
			break
		}
		m["v"] = 2
		m["sts"] = statusActive
		if c.pending || sess.Status == statusPending {
			m["sts"] = statusPending
		}
		if c.plan != "" {
			m["pla"] = c.plan
		}
		var fea []string
		if c.org != nil {
			o, orgFea, err := orgClaim(*c.org)
			if err != nil {
				return nil, err
			}
			m["o"], fea = o, orgFea
		}
		for _, f := range c.userFeatures {
			if !strings.Contains(f, ":") {
				f = "u:" + f
			}
			fea = append(fea, f)
		}
		if len(fea) > 0 {
			m["fea"] = strings.Join(fea, ",")
		}
	}
	applyEdits(m, c.claimEdits)
	b, err := encodeObject(m)
	if err != nil {
		return nil, fmt.Errorf("clerktest: mint: claims: %w", err)
	}
	return b, nil
}

// sessionFor returns the session a session token belongs to, recording a new
// one when needed.
func (i *Instance) sessionFor(c *tokenConfig, now time.Time) (session, error) {
	status := statusActive
	if c.pending {
		status = statusPending
	}
	userID := cmp.Or(c.userID, newID("user"))
	fresh := newSession(cmp.Or(c.sessionID, newID("sess")), userID, status, now)
	if c.org != nil {
		fresh.LastActiveOrganizationID = c.org.ID
	}
	if c.actor != nil {
		a := *c.actor
		fresh.Actor = &a
	}
	sess, created := i.sessions.getOrCreate(fresh)
	if created {
		return sess, nil
	}
	if c.userID != "" && c.userID != sess.UserID {
		return session{}, fmt.Errorf("clerktest: mint: session %s belongs to %s, not %s (use WithClaim to forge sub)", sess.ID, sess.UserID, c.userID)
	}
	i.sessions.touch(sess.ID, now)
	return sess, nil
}

// orgV2 is the v2 "o" claim.
type orgV2 struct {
	ID   string `json:"id"`
	Slug string `json:"slg,omitempty"`
	Role string `json:"rol,omitempty"`
	Per  string `json:"per,omitempty"`
	FPM  string `json:"fpm,omitempty"`
}

// orgClaim builds the v2 "o" claim and the org-scoped fea entries.
func orgClaim(org Org) (orgV2, []string, error) {
	fea, per, fpm, err := encodeOrgPermissions(org.Permissions)
	if err != nil {
		return orgV2{}, nil, err
	}
	return orgV2{
		ID:   org.ID,
		Slug: org.Slug,
		Role: clerkwire.ShortOrgName(org.Role),
		Per:  strings.Join(per, ","),
		FPM:  strings.Join(fpm, ","),
	}, fea, nil
}

// encodeOrgPermissions turns "org:<feature>:<perm>" strings into Clerk's v2
// encoding: fea lists "o:<feature>" for each feature in first-seen order, per
// each permission name in first-seen order, and fpm[k] is the decimal bitmask
// of fea[k]'s permissions, bit j (from the least significant) standing for
// per[j]. Masks are arbitrary-precision, as Clerk's JS parser allows.
func encodeOrgPermissions(perms []string) (fea, per, fpm []string, err error) {
	var masks []*big.Int
	for _, p := range perms {
		scope, rest, ok1 := strings.Cut(p, ":")
		feature, name, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || scope != "org" || feature == "" || name == "" {
			return nil, nil, nil, fmt.Errorf("clerktest: mint: permission %q is not org:<feature>:<permission>", p)
		}
		f := slices.Index(fea, "o:"+feature)
		if f < 0 {
			fea = append(fea, "o:"+feature)
			masks = append(masks, new(big.Int))
			f = len(fea) - 1
		}
		j := slices.Index(per, name)
		if j < 0 {
			per = append(per, name)
			j = len(per) - 1
		}
		masks[f].SetBit(masks[f], j, 1)
	}
	for _, m := range masks {
		fpm = append(fpm, m.String())
	}
	return fea, per, fpm, nil
}

// actV2 is the "act" claim.
type actV2 struct {
	Iss  string `json:"iss,omitempty"`
	Sid  string `json:"sid,omitempty"`
	Sub  string `json:"sub,omitempty"`
	Type string `json:"type,omitempty"`
}

func actClaim(a Actor) actV2 {
	return actV2{Iss: a.Issuer, Sid: a.SessionID, Sub: a.Subject, Type: a.Type}
}

// applyEdits applies WithClaim/WithoutClaim (or the header equivalents) in
// order.
func applyEdits(m map[string]any, edits []edit) {
	for _, e := range edits {
		if e.remove {
			delete(m, e.name)
		} else {
			m[e.name] = e.value
		}
	}
}

// encodeObject writes m as a JSON object with its members sorted by name,
// like encoding/json does for maps, but with json.RawMessage values copied
// verbatim (not validated or compacted) and without HTML escaping.
func encodeObject(m map[string]any) ([]byte, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for n, name := range names {
		if n > 0 {
			buf.WriteByte(',')
		}
		if err := encodeValue(&buf, name); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if raw, ok := m[name].(json.RawMessage); ok {
			buf.Write(raw)
			continue
		}
		if err := encodeValue(&buf, m[name]); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func encodeValue(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}
