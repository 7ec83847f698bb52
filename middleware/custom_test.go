package middleware_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
)

// Custom claims: every member that is not one of Clerk's standard claims
// lands in Claims.Custom as it was; Claim looks up dotted paths over custom
// and standard claims alike.
func TestCustomClaimsAndPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.inst.MustMint(t, clerktest.WithUser("user_c"), clerktest.WithSession("sess_c"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin"}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_support"}),
		clerktest.WithClaim("email", "ada@example.com"),
		clerktest.WithClaim("public_metadata", map[string]any{"plan": "pro", "seats": 5, "beta": true, "tags": []string{"a", "b"},
			"nested": map[string]any{"deep": "x", "nil": nil}}),
		clerktest.WithClaim("name", "Zoë \u2603"),
		clerktest.WithClaim("nothing", nil))
	c, err := e.gate.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string // want "" = not found
	}{
		{"email", `"ada@example.com"`},
		{"public_metadata.plan", `"pro"`},
		{"public_metadata.seats", `5`},
		{"public_metadata.beta", `true`},
		{"public_metadata.tags", `["a","b"]`},
		{"public_metadata.nested.deep", `"x"`},
		{"public_metadata.nested.nil", ""},
		{"public_metadata.missing", ""},
		{"public_metadata.plan.more", ""}, // through a string
		{"public_metadata.tags.0", ""},    // arrays are not indexed
		{"nothing", ""},                   // null is absent
		{"missing", ""},
		{"name", `"Zoë ☃"`},
		{"sub", `"user_c"`},
		{"sid", `"sess_c"`},
		{"o.id", `"org_1"`},
		{"o.slg", `"acme"`},
		{"o.rol", `"admin"`},
		{"org_role", `"org:admin"`},
		{"act.sub", `"user_support"`},
		{"sts", `"active"`},
		{"v", `2`},
		{"fva", `[0,-1]`},
	} {
		raw, ok := c.Claim(tc.path)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: found %s, want nothing", tc.path, raw)
			}
			continue
		}
		if !ok || compact(t, raw) != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.path, raw, ok, tc.want)
		}
	}
	// Standard claims stay out of Custom; custom ones are all there.
	var custom map[string]json.RawMessage
	if err := json.Unmarshal(c.Custom, &custom); err != nil {
		t.Fatal(err)
	}
	for name := range custom {
		if name == "sub" || name == "o" || name == "exp" || name == "fva" {
			t.Errorf("standard claim %s in Custom", name)
		}
	}
	if len(custom) != 3 { // email, public_metadata, name (null is absent)
		t.Errorf("Custom %s", c.Custom)
	}
	var typed struct {
		Email          string `json:"email"`
		PublicMetadata struct {
			Seats int `json:"seats"`
		} `json:"public_metadata"`
	}
	if err := c.DecodeCustom(&typed); err != nil || typed.Email != "ada@example.com" || typed.PublicMetadata.Seats != 5 {
		t.Errorf("DecodeCustom: %+v %v", typed, err)
	}

	// The same claims from the verified-token cache.
	c2, err := e.gate.Verify(context.Background(), tok)
	if err != nil || string(c2.Custom) != string(c.Custom) {
		t.Errorf("cached Custom %s, %v", c2.Custom, err)
	}

	// MarshalJSON: the JWT names, custom claims merged.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	for k, want := range map[string]any{"sub": "user_c", "sid": "sess_c", "org_id": "org_1", "org_role": "org:admin", "email": "ada@example.com"} {
		if out[k] != want {
			t.Errorf("JSON %s = %v, want %v (%s)", k, out[k], want, b)
		}
	}
	if strings.Contains(string(b), "Subject") {
		t.Errorf("Go field names in %s", b)
	}
}

// A token without custom claims has no Custom, and its JSON is valid.
func TestNoCustomClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c, err := e.gate.Verify(context.Background(), e.inst.MustMint(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Custom != nil {
		t.Errorf("Custom %s", c.Custom)
	}
	var v map[string]any
	if b, _ := json.Marshal(c); json.Unmarshal(b, &v) != nil {
		t.Errorf("invalid JSON %s", b)
	}
	if _, ok := c.Claim("email"); ok {
		t.Error("found a claim in no custom claims")
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b strings.Builder
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out, _ := json.Marshal(v)
	b.Write(out)
	return b.String()
}
