package middleware

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDecodeClaimsRejectsMalformedAndMistyped(t *testing.T) {
	t.Parallel()
	base := `"sub":"user_1","sid":"sess_1","iss":"https://clerk.example.com","exp":2000000000`
	cases := []struct {
		name    string
		payload string
		typeErr bool // errClaimType (well-formed JSON, wrong type)
	}{
		{"exp as string", `{` + base + `,"exp":"2000000000"}`, false}, // duplicate exp too
		{"string exp alone", `{"sub":"user_1","exp":"2000000000"}`, true},
		{"fractional exp", `{"exp":2000000000.5}`, true},
		{"exponent exp", `{"exp":2e9}`, true},
		{"exp overflows int64", `{"exp":99999999999999999999}`, true},
		{"nbf at the int64 limit", `{"nbf":9223372036854775807}`, false},
		{"iat at the int64 limit", `{"iat":9223372036854775807}`, false},
		{"exp below year 1", `{"exp":-9223372036854775808}`, false},
		{"nbf after year 9999", `{"nbf":253402300800}`, false},
		{"nbf as object", `{"nbf":{}}`, true},
		{"iat as bool", `{"iat":true}`, true},
		{"azp as array", `{"azp":["a"]}`, true},
		{"sub as number", `{"sub":1}`, true},
		{"sid as object", `{"sid":{}}`, true},
		{"iss as array", `{"iss":[]}`, true},
		{"v as float", `{"v":2.0}`, true},
		{"v as string", `{"v":"2"}`, true},
		{"fva one integer", `{"fva":[1]}`, true},
		{"fva three integers", `{"fva":[1,2,3]}`, true},
		{"fva strings", `{"fva":["1","2"]}`, true},
		{"fva object", `{"fva":{}}`, true},
		{"o as string", `{"o":"org_1"}`, true},
		{"o.id as number", `{"o":{"id":1}}`, true},
		{"o.per as array", `{"o":{"per":["read"]}}`, true},
		{"act as string", `{"act":"user_2"}`, true},
		{"act.sub as number", `{"act":{"sub":2}}`, true},
		{"org_permissions as string", `{"org_permissions":"a,b"}`, true},
		{"org_permissions with a number", `{"org_permissions":["a",1]}`, true},
		{"aud as number", `{"aud":1}`, true},
		{"sts as number", `{"sts":1}`, true},
		{"duplicate sub", `{"sub":"user_1","sub":"user_2"}`, false},
		{"duplicate after unescaping", `{"sub":"user_1","\u0073ub":"user_2"}`, false},
		{"duplicate inside o", `{"o":{"id":"a","id":"b"}}`, false},
		{"duplicate inside unknown member", `{"x":{"a":1,"a":2}}`, false},
		{"duplicate sub in upper case", `{"sub":"user_1","SUB":"user_2"}`, false},
		{"duplicate sub in mixed case", `{"Sub":"user_1","sUB":"user_2"}`, false},
		{"duplicate in another case after unescaping", `{"sub":"user_1","\u0053ub":"user_2"}`, false},
		{"duplicate with a Kelvin sign for k", `{"kid":"a","\u212aid":"b"}`, false},
		{"duplicate with a long s for s", `{"sub":"user_1","\u017fub":"user_2"}`, false},
		{"duplicate in another case inside o", `{"o":{"id":"a","ID":"b"}}`, false},
		{"duplicate in another case inside act", `{"act":{"sub":"a","Sub":"b"}}`, false},
		{"duplicate in another case inside an array", `{"x":[{"a":1,"A":2}]}`, false},
		{"trailing garbage", `{"sub":"user_1"}x`, false},
		{"two objects", `{}{}`, false},
		{"not an object", `["sub"]`, false},
		{"unterminated", `{"sub":"user_1"`, false},
		{"invalid utf-8", "{\"sub\":\"user_\xff\"}", false},
		{"lone surrogate", `{"sub":"\ud800"}`, false},
		{"control character", "{\"sub\":\"a\x01\"}", false},
		{"bad escape", `{"sub":"\x41"}`, false},
		{"leading zero", `{"exp":012}`, false},
		{"trailing comma", `{"sub":"user_1",}`, false},
		{"single quotes", `{'sub':'user_1'}`, false},
		{"too deep", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, false},
		{"empty", ``, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeClaims([]byte(tc.payload))
			if err == nil {
				t.Fatalf("decodeClaims(%q) succeeded, want an error", tc.payload)
			}
			if tc.typeErr && !errors.Is(err, errClaimType) {
				t.Fatalf("decodeClaims(%q) = %v, want a type error", tc.payload, err)
			}
		})
	}
}

func TestDecodeClaimsNullIsAbsent(t *testing.T) {
	t.Parallel()
	c, err := decodeClaims([]byte(`{"sub":"user_1","nbf":null,"iat":null,"azp":null,"o":null,"act":null,"fva":null,"exp":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.hasNbf || c.hasIat || c.AuthorizedParty != "" || c.Actor != nil || c.FactorVerificationAge != nil || c.OrgID != "" {
		t.Fatalf("null claims were not treated as absent: %+v", c)
	}
	if !c.hasExp || c.exp != 5 {
		t.Fatalf("exp = %d (has %v), want 5", c.exp, c.hasExp)
	}
}

func TestDecodeClaimsV2Organization(t *testing.T) {
	t.Parallel()
	payload := `{"v":2,"sub":"user_1","sid":"sess_1","exp":10,"sts":"active",
		"fea":"o:dashboard,u:export,o:billing,ou:reports",
		"o":{"id":"org_1","slg":"acme","rol":"admin","per":"read,manage,delete","fpm":"3,1,5"},
		"pla":"o:pro","fva":[3,-1],"act":{"iss":"https://dashboard.clerk.com","sid":"sess_imp","sub":"user_admin","type":"agent"}}`
	c, err := decodeVerified([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"org:dashboard:read", "org:dashboard:manage", // 3 = read|manage
		"org:billing:read",                       // 1 = read (u:export is not org-scoped and is skipped)
		"org:reports:read", "org:reports:delete", // 5 = read|delete; "ou" contains o
	}
	if !reflect.DeepEqual(c.OrgPermissions, want) {
		t.Fatalf("OrgPermissions = %q, want %q", c.OrgPermissions, want)
	}
	if c.Version != 2 || c.OrgID != "org_1" || c.OrgSlug != "acme" || c.OrgRole != "org:admin" {
		t.Fatalf("org = %+v", c.Claims)
	}
	if !c.HasRole("admin") || !c.HasRole("org:admin") || c.HasRole("member") {
		t.Fatal("HasRole does not treat admin and org:admin as one role")
	}
	if !c.HasPermission("org:billing:read") || c.HasPermission("org:billing:manage") {
		t.Fatal("HasPermission wrong")
	}
	if c.Plan != "o:pro" || *c.FactorVerificationAge != [2]int64{3, -1} {
		t.Fatalf("pla/fva = %q %v", c.Plan, c.FactorVerificationAge)
	}
	if c.Actor == nil || c.Actor.Subject != "user_admin" || c.Actor.Type != "agent" || c.Actor.SessionID != "sess_imp" {
		t.Fatalf("act = %+v", c.Actor)
	}
	if !reflect.DeepEqual(c.Features, []string{"o:dashboard", "u:export", "o:billing", "ou:reports"}) {
		t.Fatalf("Features = %q", c.Features)
	}
}

func TestDecodeClaimsLargePermissionMask(t *testing.T) {
	t.Parallel()
	perms := make([]string, 70)
	for i := range perms {
		perms[i] = "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	// 2^69 + 1: the first and the seventieth permission.
	payload := `{"v":2,"fea":"o:f","o":{"id":"org_1","per":"` + strings.Join(perms, ",") + `","fpm":"590295810358705651713"}}`
	c, err := decodeVerified([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"org:f:" + perms[0], "org:f:" + perms[69]}
	if !reflect.DeepEqual(c.OrgPermissions, want) {
		t.Fatalf("OrgPermissions = %q, want %q", c.OrgPermissions, want)
	}
}

func TestDecodeClaimsBadMaskGrantsNothing(t *testing.T) {
	t.Parallel()
	c, err := decodeVerified([]byte(`{"v":2,"fea":"o:f,o:g","o":{"id":"org_1","per":"read","fpm":"x,-1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OrgPermissions) != 0 {
		t.Fatalf("OrgPermissions = %q, want none", c.OrgPermissions)
	}
}

// decodeVerified is decodeClaims followed by what the Gate does once the
// signature is verified.
func decodeVerified(payload []byte) (*rawClaims, error) {
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	return c, c.expandPermissions()
}

// TestDecodeClaimsDoesNotExpandPermissions: decoding runs before the
// signature check, so it leaves v2 permissions encoded.
func TestDecodeClaimsDoesNotExpandPermissions(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"v":2,"fea":"o:f","o":{"id":"org_1","per":"a,b","fpm":"3"}}`)
	c, err := decodeClaims(payload)
	if err != nil {
		t.Fatal(err)
	}
	if c.OrgPermissions != nil {
		t.Fatalf("OrgPermissions = %q before verification", c.OrgPermissions)
	}
	if err := c.expandPermissions(); err != nil || !reflect.DeepEqual(c.OrgPermissions, []string{"org:f:a", "org:f:b"}) {
		t.Fatalf("expanded: %q, %v", c.OrgPermissions, err)
	}
}

// TestOrgPermissionMasks pins the decoding of one mask: ASCII digits only,
// spaces around it ignored, bits past the last name ignored, 64-bit and
// wider masks alike.
func TestOrgPermissionMasks(t *testing.T) {
	t.Parallel()
	per := "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z"
	for _, tc := range []struct {
		mask string
		want string // granted names, in order
	}{
		{"0", ""},
		{"1", "a"},
		{" 5 ", "ac"},
		{"0005", "ac"},
		{"67108863", "abcdefghijklmnopqrstuvwxyz"}, // 2^26-1
		{"67108864", ""},                                 // 2^26: past the last name
		{"9223372036854775809", "a"},                     // 2^63+1, 19 digits
		{"18446744073709551617", "a"},                    // 2^64+1, 20 digits
		{"000000000000000000000000000003", "ab"},         // 30 digits
		{"340282366920938463463374607431768211457", "a"}, // 2^128+1
		{"+5", ""},
		{"+00000000000000000000005", ""},
		{"-1", ""},
		{"1e3", ""},
		{"0x5", ""},
		{"1_0", ""},
		{"", ""},
	} {
		got, err := orgPermissions([]string{"o:f"}, per, tc.mask)
		if err != nil {
			t.Fatal(err)
		}
		var names strings.Builder
		for _, p := range got {
			names.WriteString(strings.TrimPrefix(p, "org:f:"))
		}
		if names.String() != tc.want {
			t.Errorf("mask %q grants %q, want %q", tc.mask, names.String(), tc.want)
		}
	}
}

func TestDecodeClaimsV1Organization(t *testing.T) {
	t.Parallel()
	c, err := decodeClaims([]byte(`{"sub":"user_1","org_id":"org_1","org_slug":"acme","org_role":"org:member","org_permissions":["org:a:read"],"o":{"id":"org_2"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || c.OrgID != "org_1" || c.OrgSlug != "acme" || c.OrgRole != "org:member" ||
		!reflect.DeepEqual(c.OrgPermissions, []string{"org:a:read"}) {
		t.Fatalf("v1 org = %+v", c.Claims)
	}
}

func TestDecodeClaimsV2IgnoresFlatOrgClaims(t *testing.T) {
	t.Parallel()
	c, err := decodeClaims([]byte(`{"v":2,"org_id":"org_flat","org_role":"org:admin"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.OrgID != "" || c.OrgRole != "" {
		t.Fatalf("a v2 token took its org from v1 members: %+v", c.Claims)
	}
}

func TestDecodeClaimsEscapesAndUnknownMembers(t *testing.T) {
	t.Parallel()
	c, err := decodeClaims([]byte(`{"sub":"user_\u00e9\ud83d\ude00","x":[1,{"y":null},"z",true,false,-0.5e+3],"exp":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user_é😀" {
		t.Fatalf("sub = %q", c.Subject)
	}
}

func TestDecodeClaimsManyMembersIsNotQuadratic(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k`)
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(string(rune('a' + (i/26)%26)))
		b.WriteString(string(rune('a' + (i/676)%26)))
		b.WriteString(`":0`)
	}
	b.WriteString("}")
	// Distinct names: must parse. Then the same object with one name repeated
	// at the end must fail.
	if _, err := decodeClaims([]byte(b.String())); err != nil {
		t.Fatalf("distinct members refused: %v", err)
	}
	dup := strings.TrimSuffix(b.String(), "}") + `,"kaaa":1}`
	if _, err := decodeClaims([]byte(dup)); !errors.Is(err, errDuplicateMember) {
		t.Fatalf("duplicate among many members: %v", err)
	}
	for _, name := range []string{"KAAA", "kAaA", "\u212aaaa"} {
		dup := strings.TrimSuffix(b.String(), "}") + `,"` + name + `":1}`
		if _, err := decodeClaims([]byte(dup)); !errors.Is(err, errDuplicateMember) {
			t.Fatalf("%s among many members: %v", name, err)
		}
	}
}

// TestDecodeClaimsCaseFoldingAgreesWithEncodingJSON: encoding/json matches
// member names to struct fields case-insensitively (simple Unicode folding),
// the last match winning. Every object the reader accepts must therefore
// read the same to encoding/json: these names are distinct under that
// folding, so both parsers see the first value.
func TestDecodeClaimsCaseFoldingAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{
		`{"sub":"user_1","sub_":"user_2"}`,
		`{"sub":"user_1","\u00dfub":"user_2"}`, // ß is not ss under simple folding
		`{"sub":"user_1","subs":"user_2"}`,
		`{"sub":"user_1","\u0161ub":"user_2"}`, // š
		`{"sub":"user_1","\uff53ub":"user_2"}`, // fullwidth s
		`{"sub":"user_1","su\u0131":"user_2"}`, // dotless i is not i
	} {
		c, err := decodeClaims([]byte(payload))
		if err != nil {
			t.Errorf("%s: %v", payload, err)
			continue
		}
		var std struct {
			Sub string `json:"sub"`
		}
		if err := json.Unmarshal([]byte(payload), &std); err != nil {
			t.Fatal(err)
		}
		if c.Subject != "user_1" || std.Sub != c.Subject {
			t.Errorf("%s: sub %q, encoding/json %q", payload, c.Subject, std.Sub)
		}
	}
}

// BenchmarkDecodeClaimsManyMembers decodes a claim set of 3,000 members,
// which the duplicate check must handle in linear time: lower-case names
// (their own folded form) and names with an upper-case letter (folded into
// a new string each).
func BenchmarkDecodeClaimsManyMembers(b *testing.B) {
	for _, bc := range []struct{ name, member string }{
		{"lower-case", `"k%x":0`},
		{"mixed-case", `"K%x":0`},
	} {
		var sb strings.Builder
		sb.WriteString("{")
		for i := 0; i < 3000; i++ {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, bc.member, i)
		}
		sb.WriteString("}")
		payload := []byte(sb.String())
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for i := 0; i < b.N; i++ {
				if _, err := decodeClaims(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParseTokenRejectsHeaderNamesEqualUnderFolding: the JOSE header gets
// the same duplicate check as the claims, case folding included.
func TestParseTokenRejectsHeaderNamesEqualUnderFolding(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	payload := enc([]byte(`{"sub":"user_1"}`))
	for _, h := range []string{
		`{"alg":"RS256","kid":"ins_1","ALG":"none"}`,
		`{"alg":"RS256","kid":"ins_1","Kid":"ins_2"}`,
		`{"alg":"RS256","kid":"ins_1","\u212aid":"ins_2"}`,
		`{"alg":"RS256","kid":"ins_1","typ":"JWT","TYP":"at+jwt"}`,
		`{"alg":"RS256","kid":"ins_1","x":{"jku":"a","JKU":"b"}}`,
	} {
		_, e := parseToken(enc([]byte(h)) + "." + payload + ".c2ln")
		if e == nil || e.Reason != ReasonTokenInvalid || !errors.Is(e, errDuplicateMember) {
			t.Errorf("%s: %v, want token-invalid for a duplicate member", h, e)
		}
	}
	if _, e := parseToken(enc([]byte(`{"alg":"RS256","kid":"ins_1","kid_":"x","KIDS":"y"}`)) + "." + payload + ".c2ln"); e != nil {
		t.Errorf("distinct header names refused: %v", e)
	}
}

// TestFoldNameAgreesWithEqualFold: the two forms of the duplicate check (the
// pairwise one for small objects, the map for large ones) are one relation,
// for every rune with a case mapping, and foldName is idempotent.
func TestFoldNameAgreesWithEqualFold(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= 0x1ffff; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		a := "x" + string(r)
		f := foldName(a)
		if foldName(f) != f || !sameFold(a, f) {
			t.Fatalf("U+%04X: foldName %q is not a fixed point of the same class", r, f)
		}
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if b := "x" + string(o); !sameFold(a, b) || foldName(b) != f {
				t.Fatalf("U+%04X and U+%04X: EqualFold %v, foldName %q %q", r, o, sameFold(a, b), f, foldName(b))
			}
		}
		if b := "x" + string(r+1); utf8.ValidRune(r+1) && sameFold(a, b) != (foldName(b) == f) {
			t.Fatalf("U+%04X and U+%04X: EqualFold %v, foldName %q %q", r, r+1, sameFold(a, b), f, foldName(b))
		}
	}
}
