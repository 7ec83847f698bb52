package middleware

import (
	"errors"
	"reflect"
	"strings"
	"testing"
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
	c, err := decodeClaims([]byte(payload))
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
	c, err := decodeClaims([]byte(payload))
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
	c, err := decodeClaims([]byte(`{"v":2,"fea":"o:f,o:g","o":{"id":"org_1","per":"read","fpm":"x,-1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OrgPermissions) != 0 {
		t.Fatalf("OrgPermissions = %q, want none", c.OrgPermissions)
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
}
