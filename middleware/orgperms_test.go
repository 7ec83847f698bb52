package middleware_test

import (
	"context"
	"encoding/base64"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
)

// The limits on organization permissions: entries of o.per, decimal digits
// of one o.fpm mask, and permissions granted in all (v2 once decoded, v1 as
// listed in org_permissions).
const (
	capNames  = middleware.MaxOrgPermissionNamesForTest
	capDigits = middleware.MaxOrgMaskDigitsForTest
	capGrants = middleware.MaxOrgPermissionsForTest
)

// orgClaims is the corpus claim set with a v2 organization whose fea, per
// and fpm are spelled raw.
func orgClaims(fea, per, fpm string) []byte {
	return rawClaims(`"fea":"`+fea+`"`, `"o":{"id":"org_1","slg":"acme","rol":"admin","per":"`+per+`","fpm":"`+fpm+`"}`)
}

// permNames returns n distinct permission names ("p0", "p1", …).
func permNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "p" + strconv.FormatInt(int64(i), 36)
	}
	return out
}

// ones is 2^n-1: the mask granting the first n names.
func ones(n int) string {
	m := new(big.Int).Lsh(big.NewInt(1), uint(n))
	return m.Sub(m, big.NewInt(1)).String()
}

// maxPayloadLen is the largest payload that fits a token of MaxTokenSize
// with header and an RSA signature of sigLen bytes.
func maxPayloadLen(header string, sigLen int) int {
	room := middleware.MaxTokenSize - len(enc(header)) - 2 - base64.RawURLEncoding.EncodedLen(sigLen)
	return base64.RawURLEncoding.DecodedLen(room)
}

// worstMaskClaims is the claim set that cost the most to decode when every
// permission bit re-parsed its whole decimal mask: n names sharing one mask
// of d digits, with d*d*n as large as a 16 KiB token allows (d = 2/3 of the
// room). About 2,000 names and a 7,700-digit mask.
func worstMaskClaims(tb testing.TB) []byte {
	tb.Helper()
	room := maxPayloadLen(corpusHeader, corpusMain.Private.Size()) - len(orgClaims("o:f", "", ""))
	d := 2 * room / 3
	n := (room - d + 1) / 2
	payload := orgClaims("o:f", strings.Repeat("a,", n-1)+"a", strings.Repeat("9", d))
	if len(signRaw(corpusHeader, payload)) > middleware.MaxTokenSize {
		tb.Fatalf("worst-mask token is over %d bytes", middleware.MaxTokenSize)
	}
	return payload
}

// atCapsClaims is the costliest claim set within the limits that the Gate
// accepts: capNames names, one mask granting all of them, then as many
// capDigits-digit masks as fit, each with bits only above the last name (so
// they grant nothing more and the grant limit is not reached).
func atCapsClaims(tb testing.TB) []byte {
	tb.Helper()
	per := strings.Join(permNames(capNames), ",")
	high := new(big.Int).Lsh(big.NewInt(1), capNames+2).String() // 2^1026: 309 digits
	if len(high) != capDigits || len(ones(capNames)) != capDigits {
		tb.Fatalf("masks of %d and %d digits, want %d", len(high), len(ones(capNames)), capDigits)
	}
	max := maxPayloadLen(corpusHeader, corpusMain.Private.Size())
	fea, fpm := []string{"o:f"}, []string{ones(capNames)}
	for {
		f := append(fea, "o:g"+strconv.Itoa(len(fea)))
		m := append(fpm, high)
		if len(orgClaims(strings.Join(f, ","), per, strings.Join(m, ","))) > max {
			break
		}
		fea, fpm = f, m
	}
	return orgClaims(strings.Join(fea, ","), per, strings.Join(fpm, ","))
}

// TestOrgPermissionLimits: organization permissions beyond the limits make a
// token invalid even when it is correctly signed, and a token over the
// limits is refused before its key is looked up, whatever its signature:
// no permission is expanded from an unverified payload.
func TestOrgPermissionLimits(t *testing.T) {
	t.Parallel()
	e := newCorpusEnv(t)
	keys := &countingKeys{Memory: e.keys}
	g, err := middleware.New(gateConfig(keys))
	if err != nil {
		t.Fatal(err)
	}
	names := permNames(capNames + 1)
	atNames := strings.Join(names[:capNames], ",")
	v1 := func(n int) []byte {
		perms := make([]string, n)
		for i := range perms {
			perms[i] = `"` + names[i] + `"` // short, to fit: the Gate reads v1 permissions verbatim
		}
		c := strings.Replace(string(rawClaims(`"org_id":"org_1","org_role":"admin","org_permissions":[`+strings.Join(perms, ",")+`]`)), `"v":2`, `"v":1`, 1)
		return []byte(c)
	}
	worst := worstMaskClaims(t)
	foreign := func(payload []byte) string {
		return clerktest.Sign([]byte(corpusHeader), payload, corpusForeign, "RS256")
	}
	unknownKid := func(payload []byte) string {
		return clerktest.Sign([]byte(`{"alg":"RS256","kid":"`+corpusAttacker.ID+`","typ":"JWT"}`), payload, corpusAttacker, "RS256")
	}

	cases := []struct {
		name   string
		token  string
		reason middleware.Reason // "" = accepted
		grants int               // when accepted
		prefix string            // of the permissions when accepted: "org:f:" (v2) or "" (v1)
		lookup bool              // the key may be looked up
	}{
		{name: "names, mask digits and grants at the limits", token: signRaw(corpusHeader, orgClaims("o:f", atNames, ones(capNames))), grants: capGrants, prefix: "org:f:", lookup: true},
		{name: "costliest token within the limits", token: signRaw(corpusHeader, atCapsClaims(t)), grants: capGrants, prefix: "org:f:", lookup: true},
		{name: "v1 org_permissions at the limit", token: signRaw(corpusHeader, v1(capGrants)), grants: capGrants, lookup: true},
		{name: "one name too many", token: signRaw(corpusHeader, orgClaims("o:f", atNames+","+names[capNames], "1")), reason: middleware.ReasonTokenInvalid},
		{name: "one mask digit too many", token: signRaw(corpusHeader, orgClaims("o:f", "a", "1"+strings.Repeat("0", capDigits))), reason: middleware.ReasonTokenInvalid},
		{name: "a long mask of a feature not in fea", token: signRaw(corpusHeader, orgClaims("o:f", "a", "1,"+strings.Repeat("1", capDigits+1))), reason: middleware.ReasonTokenInvalid},
		{name: "one grant too many", token: signRaw(corpusHeader, orgClaims("o:f,o:g", atNames, ones(capNames)+",1")), reason: middleware.ReasonTokenInvalid, lookup: true},
		{name: "v1 org_permissions one too many", token: signRaw(corpusHeader, v1(capGrants+1)), reason: middleware.ReasonTokenInvalid},
		{name: "worst mask, signed", token: signRaw(corpusHeader, worst), reason: middleware.ReasonTokenInvalid},
		{name: "worst mask, another key with the real kid", token: foreign(worst), reason: middleware.ReasonTokenInvalid},
		{name: "worst mask, unknown kid", token: unknownKid(worst), reason: middleware.ReasonTokenInvalid},
		{name: "worst mask, no signature", token: strings.TrimRightFunc(signRaw(corpusHeader, worst), func(r rune) bool { return r != '.' }), reason: middleware.ReasonTokenInvalid},
		{name: "within the limits, another key with the real kid", token: foreign(atCapsClaims(t)), reason: middleware.ReasonTokenInvalidSignature, lookup: true},
	}
	for _, tc := range cases {
		if len(tc.token) > middleware.MaxTokenSize {
			t.Fatalf("%s: token of %d bytes", tc.name, len(tc.token))
		}
		before := keys.calls.Load()
		c, err := g.Verify(context.Background(), tc.token)
		// Cases run one after another: the count is this case's alone.
		looked := keys.calls.Load() != before
		if tc.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if len(c.OrgPermissions) != tc.grants || !c.HasPermission(tc.prefix+names[capNames-1]) || c.HasPermission(tc.prefix+names[capNames]) {
				t.Errorf("%s: %d permissions, want %d", tc.name, len(c.OrgPermissions), tc.grants)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted (%d permissions), want %s", tc.name, len(c.OrgPermissions), tc.reason)
			continue
		}
		if _, reason, _ := middleware.Outcome(err); reason != tc.reason {
			t.Errorf("%s: reason %s (%v), want %s", tc.name, reason, err, tc.reason)
		}
		if looked && !tc.lookup {
			t.Errorf("%s: the key was looked up for a token over the limits", tc.name)
		}
	}
}

// TestOrgPermissionsCachedAtLimits: a cache hit carries the same expanded
// permissions as the miss that stored it, here as many as the limit allows.
func TestOrgPermissionsCachedAtLimits(t *testing.T) {
	t.Parallel()
	e := newCorpusEnv(t)
	names := permNames(capNames)
	// f: every name but the last two; g: p0 and p2 (5 = 0b101).
	tok := signRaw(corpusHeader, orgClaims("o:f,u:x,o:g", strings.Join(names, ","), ones(capNames-2)+",5"))
	miss, err := e.gate.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	hits := e.gate.Stats().CacheHits
	hit, err := e.gate.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if e.gate.Stats().CacheHits != hits+1 || len(hit.OrgPermissions) != capGrants || !reflect.DeepEqual(hit, miss) {
		t.Fatalf("hit (%d permissions, cache hit %v) differs from the miss", len(hit.OrgPermissions), e.gate.Stats().CacheHits == hits+1)
	}
	for _, p := range []string{"org:f:p0", "org:f:" + names[capNames-3], "org:g:p0", "org:g:p2"} {
		if !hit.HasPermission(p) {
			t.Errorf("cached claims lack %s", p)
		}
	}
	for _, p := range []string{"org:f:" + names[capNames-2], "org:g:p1", "org:x:p0"} {
		if hit.HasPermission(p) {
			t.Errorf("cached claims grant %s", p)
		}
	}
}
