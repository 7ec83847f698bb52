package middleware

import (
	"strings"
	"sync"
)

// interner shares the strings and string slices that repeat across the
// tokens of one instance (issuer, azp, organization role, slug, permission
// and feature lists), so that 100,000 cached tokens do not hold 100,000
// copies of each. It runs on the cold path only, after the signature check:
// an attacker cannot fill it with strings of their choosing without valid
// tokens, and it is bounded anyway (past maxInterned entries a value is
// simply not shared).
type interner struct {
	mu     sync.Mutex // guards following
	strs   map[string]string
	slices map[string][]string
}

const maxInterned = 4096

func newInterner() *interner {
	return &interner{strs: make(map[string]string), slices: make(map[string][]string)}
}

func (in *interner) str(s string) string {
	if s == "" || len(s) > 256 {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.strs[s]; ok {
		return v
	}
	if len(in.strs) < maxInterned {
		in.strs[s] = s
	}
	return s
}

// slice returns a shared copy of ss; the result MUST NOT be modified.
func (in *interner) slice(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	key := strings.Join(ss, "\x00")
	if len(key) > 4096 {
		return ss
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.slices[key]; ok {
		return v
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		if v, ok := in.strs[s]; ok {
			out[i] = v
		} else {
			out[i] = s
		}
	}
	if len(in.slices) < maxInterned {
		in.slices[key] = out
	}
	return out
}

// compact copies the verified claims src into dst, out of the decoding
// structure (which would otherwise stay alive with them in the cache), and
// shares the values that repeat across tokens. The three values unique to
// each token (sub, sid, jti) are packed into one string: one heap object
// per cached token instead of three, less for the garbage collector to mark
// on every cycle.
func (g *Gate) compact(dst, src *Claims) {
	*dst = *src
	c := dst
	if c.Issuer == g.issuer {
		c.Issuer = g.issuer
	}
	if n := len(c.Subject) + len(c.SessionID) + len(c.ID); n > 0 {
		var b strings.Builder
		b.Grow(n)
		b.WriteString(c.Subject)
		b.WriteString(c.SessionID)
		b.WriteString(c.ID)
		all := b.String()
		sub, sid := len(c.Subject), len(c.Subject)+len(c.SessionID)
		c.Subject, c.SessionID, c.ID = all[:sub], all[sub:sid], all[sid:]
	}
	in := g.intern
	c.AuthorizedParty = in.str(c.AuthorizedParty)
	c.SessionStatus = in.str(c.SessionStatus)
	c.OrgID = in.str(c.OrgID)
	c.OrgSlug = in.str(c.OrgSlug)
	c.OrgRole = in.str(c.OrgRole)
	c.Plan = in.str(c.Plan)
	c.OrgPermissions = in.slice(c.OrgPermissions)
	c.Features = in.slice(c.Features)
}
