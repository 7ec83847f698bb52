package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
)

// verifyWith verifies a token minted with opts under requirements req and
// returns the outcome's reason ("" when it passes).
func verifyWith(t *testing.T, e *env, req middleware.Requirements, opts ...clerktest.TokenOption) middleware.Reason {
	t.Helper()
	p := e.gate.DefaultPolicy()
	p.Require = req
	_, err := e.gate.VerifyWith(context.Background(), e.inst.MustMint(t, opts...), p)
	if err == nil {
		return ""
	}
	_, reason, _ := middleware.Outcome(err)
	return reason
}

// Features and plans follow Clerk's has({feature}) / has({plan}): the claim
// lists "<scope>:<name>" with scope o, u, ou or uo; a requirement "org:x"
// needs an organization-scoped entry, "user:x" a user-scoped one, a bare
// "x" either. A user-scoped and an org-scoped feature of one name are
// different things.
func TestFeatureAndPlanScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	fea := func(list string) clerktest.TokenOption { return clerktest.WithClaim("fea", list) }
	pla := func(list string) clerktest.TokenOption { return clerktest.WithClaim("pla", list) }
	const F, P = middleware.ReasonMissingFeature, middleware.ReasonMissingPlan
	cases := []struct {
		name string
		req  middleware.Requirements
		opt  clerktest.TokenOption
		want middleware.Reason
	}{
		{"org feature from o:", middleware.Requirements{Features: []string{"org:analytics"}}, fea("o:analytics"), ""},
		{"org feature from ou:", middleware.Requirements{Features: []string{"org:analytics"}}, fea("ou:analytics"), ""},
		{"org feature from uo:", middleware.Requirements{Features: []string{"org:analytics"}}, fea("uo:analytics"), ""},
		{"org feature is not a user feature", middleware.Requirements{Features: []string{"org:analytics"}}, fea("u:analytics"), F},
		{"user feature from u:", middleware.Requirements{Features: []string{"user:export"}}, fea("u:export"), ""},
		{"user feature is not an org feature", middleware.Requirements{Features: []string{"user:export"}}, fea("o:export"), F},
		{"bare feature from either scope (org)", middleware.Requirements{Features: []string{"export"}}, fea("o:export"), ""},
		{"bare feature from either scope (user)", middleware.Requirements{Features: []string{"export"}}, fea("u:export"), ""},
		{"Go SDK scope aliases o: and u:", middleware.Requirements{Features: []string{"o:analytics", "u:export"}}, fea("o:analytics,u:export"), ""},
		{"every feature is required", middleware.Requirements{Features: []string{"org:a", "org:b"}}, fea("o:a"), F},
		{"spaces around entries", middleware.Requirements{Features: []string{"org:b"}}, fea("o:a , o:b"), ""},
		{"unknown claim scope grants nothing", middleware.Requirements{Features: []string{"analytics"}}, fea("x:analytics"), F},
		{"entry without a scope grants nothing", middleware.Requirements{Features: []string{"analytics"}}, fea("analytics"), F},
		{"name must match exactly", middleware.Requirements{Features: []string{"org:analytic"}}, fea("o:analytics"), F},
		{"no fea claim", middleware.Requirements{Features: []string{"analytics"}}, clerktest.WithoutClaim("fea"), F},
		{"org plan", middleware.Requirements{Plans: []string{"org:pro"}}, pla("o:pro"), ""},
		{"org plan is not a user plan", middleware.Requirements{Plans: []string{"org:pro"}}, pla("u:pro"), P},
		{"user plan", middleware.Requirements{Plans: []string{"user:free"}}, pla("u:free"), ""},
		{"any of the plans", middleware.Requirements{Plans: []string{"org:enterprise", "org:pro"}}, pla("u:free,o:pro"), ""},
		{"bare plan from either scope", middleware.Requirements{Plans: []string{"pro"}}, pla("o:pro"), ""},
		{"no plan matches", middleware.Requirements{Plans: []string{"org:enterprise", "pro"}}, pla("u:free"), P},
		{"no pla claim", middleware.Requirements{Plans: []string{"free"}}, clerktest.WithoutClaim("pla"), P},
		{"feature checked before plan", middleware.Requirements{Features: []string{"x"}, Plans: []string{"y"}}, fea("u:y"), F},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyWith(t, e, tc.req, tc.opt); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// Reverification follows Clerk's has({reverification}): fva is minutes since
// the first and the second factor were verified, -1 for a user without that
// kind of factor; a requirement passes while the age is below after_minutes
// (an age of exactly after_minutes fails); second_factor falls back to the
// first factor for a user without a second; multi_factor needs both where
// both exist; a token without fva fails.
func TestReverificationPresetsAtTheBoundary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	fva := func(a, b int) clerktest.TokenOption { return clerktest.WithClaim("fva", []int{a, b}) }
	const R = middleware.ReasonReverificationRequired
	preset := func(name string) middleware.Requirements {
		r, ok := middleware.ReverificationPreset(name)
		if !ok {
			t.Fatalf("no preset %q", name)
		}
		return middleware.Requirements{Reverification: &r}
	}
	explicit := func(level middleware.ReverificationLevel, min int) middleware.Requirements {
		return middleware.Requirements{Reverification: &middleware.Reverification{Level: level, AfterMinutes: min}}
	}
	cases := []struct {
		name string
		req  middleware.Requirements
		opt  clerktest.TokenOption
		want middleware.Reason
	}{
		// strict: second factor, 10 minutes.
		{"strict, second factor 9 min ago", preset("strict"), fva(500, 9), ""},
		{"strict, second factor 10 min ago", preset("strict"), fva(0, 10), R},
		{"strict, no second factor, first 9 min ago", preset("strict"), fva(9, -1), ""},
		{"strict, no second factor, first 10 min ago", preset("strict"), fva(10, -1), R},
		{"strict, no first factor either", preset("strict"), fva(-1, -1), R},
		{"strict, no first factor, second 9 min ago", preset("strict"), fva(-1, 9), ""},
		{"strict, no first factor, second 10 min ago", preset("strict"), fva(-1, 10), R},
		// strict_mfa: multi factor, 10 minutes.
		{"strict_mfa, both within", preset("strict_mfa"), fva(9, 9), ""},
		{"strict_mfa, first too old", preset("strict_mfa"), fva(10, 0), R},
		{"strict_mfa, second too old", preset("strict_mfa"), fva(0, 10), R},
		{"strict_mfa, no second factor, first within", preset("strict_mfa"), fva(9, -1), ""},
		{"strict_mfa, no first factor", preset("strict_mfa"), fva(-1, 0), R},
		{"strict_mfa, no second factor, first 10 min ago", preset("strict_mfa"), fva(10, -1), R},
		{"strict_mfa, no factor at all", preset("strict_mfa"), fva(-1, -1), R},
		// moderate: second factor, 60 minutes.
		{"moderate at 59", preset("moderate"), fva(1000, 59), ""},
		{"moderate at 60", preset("moderate"), fva(0, 60), R},
		{"moderate, no second factor, first at 59", preset("moderate"), fva(59, -1), ""},
		{"moderate, no second factor, first at 60", preset("moderate"), fva(60, -1), R},
		{"moderate, no first factor, second at 59", preset("moderate"), fva(-1, 59), ""},
		// lax: second factor, 1,440 minutes.
		{"lax at 1439", preset("lax"), fva(5000, 1439), ""},
		{"lax at 1440", preset("lax"), fva(0, 1440), R},
		{"lax, no second factor, first at 1439", preset("lax"), fva(1439, -1), ""},
		{"lax, no second factor, first at 1440", preset("lax"), fva(1440, -1), R},
		{"lax, no first factor, second at 1440", preset("lax"), fva(-1, 1440), R},
		// Explicit levels.
		{"first_factor within", explicit(middleware.FirstFactor, 5), fva(4, 100), ""},
		{"first_factor at the limit", explicit(middleware.FirstFactor, 5), fva(5, 0), R},
		{"first_factor, -1 first factor", explicit(middleware.FirstFactor, 5), fva(-1, 0), R},
		{"first_factor, -1 second factor", explicit(middleware.FirstFactor, 5), fva(4, -1), ""},
		{"multi_factor, both within", explicit(middleware.MultiFactor, 30), fva(29, 29), ""},
		{"multi_factor, no second factor, first at the limit", explicit(middleware.MultiFactor, 30), fva(30, -1), R},
		// A malformed fva (an age below -1) fails, whatever the level
		// looks at, as in @clerk/shared.
		{"first_factor, malformed second age", explicit(middleware.FirstFactor, 5), fva(1, -2), R},
		{"strict, malformed first age", preset("strict"), fva(-5, 1), R},
		// No fva: fails every level.
		{"strict without fva", preset("strict"), clerktest.WithoutClaim("fva"), R},
		{"first_factor without fva", explicit(middleware.FirstFactor, 1440), clerktest.WithoutClaim("fva"), R},
		{"fva null", preset("lax"), clerktest.WithClaim("fva", nil), R},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyWith(t, e, tc.req, tc.opt); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// The order of the 403s: organization, role, permission, feature, plan,
// reverification; roles and permissions compare like Clerk's has() ("admin"
// is "org:admin").
func TestRequirementsOrderAndOrgNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	org := clerktest.WithOrg(clerktest.Org{ID: "org_1", Role: "member", Permissions: []string{"org:docs:read"}})
	strict, _ := middleware.ReverificationPreset("strict")
	all := middleware.Requirements{Org: true, Roles: []string{"member"}, Permissions: []string{"docs:read"},
		Features: []string{"org:docs"}, Plans: []string{"org:pro"}, Reverification: &strict}
	cases := []struct {
		name string
		req  middleware.Requirements
		opts []clerktest.TokenOption
		want middleware.Reason
	}{
		{"no org", all, nil, middleware.ReasonMissingOrg},
		{"role", middleware.Requirements{Roles: []string{"org:admin"}}, []clerktest.TokenOption{org}, middleware.ReasonMissingRole},
		{"role without prefix", middleware.Requirements{Roles: []string{"member"}}, []clerktest.TokenOption{org}, ""},
		{"permission without prefix", middleware.Requirements{Permissions: []string{"docs:read"}}, []clerktest.TokenOption{org}, ""},
		{"permission", middleware.Requirements{Permissions: []string{"org:docs:write"}}, []clerktest.TokenOption{org}, middleware.ReasonMissingPermission},
		{"org features come from the permission encoding", middleware.Requirements{Features: []string{"org:docs"}}, []clerktest.TokenOption{org}, ""},
		{"then the plan", all, []clerktest.TokenOption{org}, middleware.ReasonMissingPlan},
		{"then reverification", all, []clerktest.TokenOption{org, clerktest.WithPlan("o:pro"), clerktest.WithClaim("fva", []int{0, 10})}, middleware.ReasonReverificationRequired},
		{"all met", all, []clerktest.TokenOption{org, clerktest.WithPlan("o:pro"), clerktest.WithClaim("fva", []int{0, 9})}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyWith(t, e, tc.req, tc.opts...); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRequirementsValidate(t *testing.T) {
	t.Parallel()
	bad := []middleware.Requirements{
		{Roles: []string{""}},
		{Roles: []string{"org:"}},
		{Permissions: []string{"org:"}},
		{Features: []string{""}},
		{Features: []string{"team:x"}},
		{Features: []string{"org:"}},
		{Features: []string{"org:a:b"}},
		{Plans: []string{"org:a,b"}},
		{Reverification: &middleware.Reverification{Level: "third_factor", AfterMinutes: 5}},
		{Reverification: &middleware.Reverification{Level: middleware.FirstFactor}},
		{Reverification: &middleware.Reverification{Preset: "strict", Level: middleware.FirstFactor, AfterMinutes: 10}},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v validated", r)
		}
	}
	good := middleware.Requirements{Roles: []string{"admin"}, Features: []string{"x", "org:y", "user:z", "o:a", "u:b", "organization:c"}, Plans: []string{"pro"}}
	if err := good.Validate(); err != nil {
		t.Errorf("%+v: %v", good, err)
	}
}

// The reverification 403 carries Clerk's clerk_error member, in the shape
// Clerk's frontend (useReverification, isReverificationHint) reads:
// type "forbidden", reason "reverification-error" and the requirement as
// Clerk's ReverificationConfig (a preset name, or {level, afterMinutes}).
func TestReverificationErrorBodyIsClerks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	strict, _ := middleware.ReverificationPreset("strict")
	for _, tc := range []struct {
		name string
		rv   middleware.Reverification
		want any
	}{
		{"preset", strict, "strict"},
		{"explicit", middleware.Reverification{Level: middleware.MultiFactor, AfterMinutes: 30},
			map[string]any{"level": "multi_factor", "afterMinutes": float64(30)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.gate.DefaultPolicy()
			p.Require.Reverification = &tc.rv
			h := e.gate.RequireWith(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Error("the handler ran")
			}))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+e.inst.MustMint(t, clerktest.WithClaim("fva", []int{100, 100})))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusForbidden || w.Header().Get("X-Clerk-Auth-Reason") != "reverification-required" {
				t.Fatalf("%d %q", w.Code, w.Header().Get("X-Clerk-Auth-Reason"))
			}
			var body struct {
				Error      string `json:"error"`
				Reason     string `json:"reason"`
				ClerkError *struct {
					Type     string `json:"type"`
					Reason   string `json:"reason"`
					Metadata struct {
						Reverification any `json:"reverification"`
					} `json:"metadata"`
				} `json:"clerk_error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error != "forbidden" || body.Reason != "reverification-required" || body.ClerkError == nil ||
				body.ClerkError.Type != "forbidden" || body.ClerkError.Reason != "reverification-error" {
				t.Fatalf("body %s", w.Body)
			}
			got, _ := json.Marshal(body.ClerkError.Metadata.Reverification)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("metadata.reverification %s, want %s", got, want)
			}
		})
	}
	// Other 403s carry no clerk_error.
	w := httptest.NewRecorder()
	middleware.WriteError(w, middleware.ErrMissingFeature, "x")
	if strings.Contains(w.Body.String(), "clerk_error") {
		t.Errorf("missing-feature body %s", w.Body)
	}
	if !errors.Is(&middleware.Error{Reason: middleware.ReasonReverificationRequired, Reverification: &strict}, middleware.ErrReverificationRequired) {
		t.Error("errors.Is by reason")
	}
}

// RequireWith applies the requirements per handler; OptionalWith passes a
// session that misses them on without claims; invalid requirements panic
// when the handler is built.
func TestRequireWithAndOptionalWith(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := e.gate.DefaultPolicy()
	p.Require.Plans = []string{"org:pro"}
	var seen string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = "anonymous"
		if c, ok := middleware.ClaimsFromContext(r.Context()); ok {
			seen = c.Subject
		}
	})
	req := func(opts ...clerktest.TokenOption) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+e.inst.MustMint(t, append(opts, clerktest.WithUser("user_p"))...))
		return r
	}
	w := httptest.NewRecorder()
	e.gate.RequireWith(p)(next).ServeHTTP(w, req())
	if w.Code != 403 || w.Header().Get("X-Clerk-Auth-Reason") != "missing-plan" {
		t.Fatalf("require without the plan: %d %q", w.Code, w.Header().Get("X-Clerk-Auth-Reason"))
	}
	seen = ""
	e.gate.RequireWith(p)(next).ServeHTTP(httptest.NewRecorder(), req(clerktest.WithPlan("o:pro")))
	if seen != "user_p" {
		t.Fatalf("require with the plan: %q", seen)
	}
	seen = ""
	e.gate.OptionalWith(p)(next).ServeHTTP(httptest.NewRecorder(), req())
	if seen != "anonymous" {
		t.Fatalf("optional without the plan: %q", seen)
	}
	defer func() {
		if recover() == nil {
			t.Error("RequireWith accepted an invalid feature scope")
		}
	}()
	bad := e.gate.DefaultPolicy()
	bad.Require.Features = []string{"team:x"}
	e.gate.RequireWith(bad)
}
