package middleware

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// Requirements are what a verified session must also have to pass: an
// active organization, a role, permissions, Billing features and plans, a
// recent enough verification of its factors. They are checked after
// authentication; an unmet one is a 403 with the first failing reason, in
// this order: missing-org, missing-role, missing-permission,
// missing-feature, missing-plan, reverification-required.
//
// The zero value requires nothing. The checks follow Clerk's
// has({role | permission | feature | plan | reverification}) and allocate
// nothing per request. Validate reports what is malformed; RequireWith and
// OptionalWith panic on invalid Requirements, as regexp.MustCompile does.
type Requirements struct {
	// Org requires an active organization. Roles or Permissions imply it.
	Org bool
	// Roles: the active organization role must be one of these. "admin" and
	// "org:admin" name the same role.
	Roles []string
	// Permissions: the active organization must grant every one of these
	// ("org:<feature>:<permission>"; the "org:" prefix may be left out).
	Permissions []string
	// Features: the session must have every one of these Billing features
	// (the fea claim). "org:name" is an organization feature (fea "o:name"
	// or "ou:name"), "user:name" a user feature ("u:name" or "ou:name"), a
	// bare "name" either. A user-scoped and an org-scoped feature of one
	// name are different things.
	Features []string
	// Plans: the session must have one of these Billing plans (the pla
	// claim), scoped like Features ("org:pro", "user:free", "pro").
	Plans []string
	// Reverification, when set, requires the session's factors to have been
	// verified recently enough (the fva claim). A token without fva fails.
	Reverification *Reverification
	// Scopes: a machine credential must carry every one of these scopes
	// (403 missing-scope). Sessions carry no scopes: a session on a route
	// that requires scopes is refused with missing-scope too.
	Scopes []string
}

// IsZero reports whether r requires nothing.
func (r Requirements) IsZero() bool {
	return !r.Org && len(r.Roles) == 0 && len(r.Permissions) == 0 && len(r.Features) == 0 &&
		len(r.Plans) == 0 && r.Reverification == nil && len(r.Scopes) == 0
}

// sessionOnly reports whether r has a requirement only a session can meet.
func (r *Requirements) sessionOnly() bool {
	return r.Org || len(r.Roles) > 0 || len(r.Permissions) > 0 || len(r.Features) > 0 ||
		len(r.Plans) > 0 || r.Reverification != nil
}

// CheckMachine returns nil when machine credential m meets r. A
// requirement only sessions can meet fails with its code, in Check's order
// (missing-org first); then every scope must be granted (missing-scope).
func (r *Requirements) CheckMachine(m *MachineIdentity) *Error {
	if r.sessionOnly() {
		var none Claims
		if e := r.Check(&none); e != nil {
			return e
		}
	}
	for _, s := range r.Scopes {
		if !m.HasScope(s) {
			return reject(ReasonMissingScope, "the credential lacks a scope this route requires")
		}
	}
	return nil
}

// Validate reports the first malformed requirement: an empty role,
// permission, feature or plan, a feature or plan scope other than org, o,
// organization, user or u, or an invalid reverification.
func (r Requirements) Validate() error {
	for _, role := range r.Roles {
		if clerkwire.ShortOrgName(role) == "" {
			return fmt.Errorf("middleware: requirements: empty role %q", role)
		}
	}
	for _, p := range r.Permissions {
		if clerkwire.ShortOrgName(p) == "" {
			return fmt.Errorf("middleware: requirements: empty permission %q", p)
		}
	}
	for _, list := range [...]struct {
		what  string
		names []string
	}{{"feature", r.Features}, {"plan", r.Plans}} {
		for _, f := range list.names {
			if _, _, err := billingRequirement(f); err != nil {
				return fmt.Errorf("middleware: requirements: %s %q: %w", list.what, f, err)
			}
		}
	}
	if r.Reverification != nil {
		if err := r.Reverification.Validate(); err != nil {
			return fmt.Errorf("middleware: requirements: %w", err)
		}
	}
	for _, sc := range r.Scopes {
		if sc == "" || strings.ContainsAny(sc, " ,") {
			return fmt.Errorf("middleware: requirements: scope %q is empty or holds a space or comma", sc)
		}
	}
	return nil
}

// Check returns nil when c meets r, else the *Error of the first unmet
// requirement (status 403).
func (r *Requirements) Check(c *Claims) *Error {
	if (r.Org || len(r.Roles) > 0 || len(r.Permissions) > 0) && c.OrgID == "" {
		return reject(ReasonMissingOrg, "this route requires an active organization")
	}
	if len(r.Roles) > 0 {
		ok := false
		for _, role := range r.Roles {
			if clerkwire.SameOrgName(c.OrgRole, role) {
				ok = true
				break
			}
		}
		if !ok {
			return reject(ReasonMissingRole, "the organization role does not allow this route")
		}
	}
	for _, p := range r.Permissions {
		if !c.hasOrgPermission(p) {
			return reject(ReasonMissingPermission, "the organization permissions do not allow this route")
		}
	}
	for _, f := range r.Features {
		if !hasBilling(c.Features, f) {
			return reject(ReasonMissingFeature, "this route requires a feature the session does not have")
		}
	}
	if len(r.Plans) > 0 {
		ok := false
		for _, p := range r.Plans {
			if hasBillingList(c.Plan, p) {
				ok = true
				break
			}
		}
		if !ok {
			return reject(ReasonMissingPlan, "this route requires a plan the session does not have")
		}
	}
	if rv := r.Reverification; rv != nil && !rv.MetBy(c.FactorVerificationAge) {
		return &Error{Reason: ReasonReverificationRequired,
			Message: "this route requires a recent verification of the session's factors", Reverification: rv}
	}
	if len(r.Scopes) > 0 {
		return reject(ReasonMissingScope, "this route requires scopes, which a session does not carry")
	}
	return nil
}

func (c *Claims) hasOrgPermission(want string) bool {
	for _, p := range c.OrgPermissions {
		if clerkwire.SameOrgName(p, want) {
			return true
		}
	}
	return false
}

// Billing scopes of a requirement ("org:x", "user:x", "x").
const (
	scopeAny = iota
	scopeOrg
	scopeUser
)

var errBillingScope = errors.New(`the scope must be "org:" or "user:" (or none, for either)`)

// billingRequirement splits a feature or plan requirement into its scope
// and name. Clerk's Go SDK also accepts "o:", "u:" and "organization:".
func billingRequirement(s string) (scope int, name string, err error) {
	prefix, rest, scoped := strings.Cut(s, ":")
	if !scoped {
		if s == "" {
			return 0, "", errors.New("empty")
		}
		return scopeAny, s, nil
	}
	if rest == "" || strings.Contains(rest, ":") || strings.Contains(rest, ",") {
		return 0, "", errors.New(`want "name", "org:name" or "user:name"`)
	}
	switch prefix {
	case "org", "o", "organization":
		return scopeOrg, rest, nil
	case "user", "u":
		return scopeUser, rest, nil
	}
	return 0, "", errBillingScope
}

// hasBilling reports whether the fea entries ("o:x", "u:x", "ou:x", "uo:x")
// grant the requirement want.
func hasBilling(entries []string, want string) bool {
	scope, name, err := billingRequirement(want)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if billingEntryMatches(strings.TrimSpace(e), scope, name) {
			return true
		}
	}
	return false
}

// hasBillingList is hasBilling over a comma-separated claim (pla).
func hasBillingList(list, want string) bool {
	scope, name, err := billingRequirement(want)
	if err != nil {
		return false
	}
	for list != "" {
		var e string
		e, list, _ = strings.Cut(list, ",")
		if billingEntryMatches(strings.TrimSpace(e), scope, name) {
			return true
		}
	}
	return false
}

// billingEntryMatches matches one claim entry "<scope>:<name>". The claim's
// scopes are exactly o, u, ou and uo (as Clerk's Go SDK reads them; an
// entry with any other scope, or none, grants nothing).
func billingEntryMatches(entry string, scope int, name string) bool {
	s, n, ok := strings.Cut(entry, ":")
	if !ok || n != name {
		return false
	}
	org, user := false, false
	switch s {
	case "o":
		org = true
	case "u":
		user = true
	case "ou", "uo":
		org, user = true, true
	default:
		return false
	}
	switch scope {
	case scopeOrg:
		return org
	case scopeUser:
		return user
	}
	return true
}

// ReverificationLevel is which factors a reverification requirement looks
// at, as in Clerk's has({reverification}).
type ReverificationLevel string

// The levels of Clerk's reverification.
const (
	FirstFactor  ReverificationLevel = "first_factor"
	SecondFactor ReverificationLevel = "second_factor"
	MultiFactor  ReverificationLevel = "multi_factor"
)

// Reverification requires the session's factors to have been verified less
// than AfterMinutes ago (the fva claim: minutes since the first and the
// second factor were verified, -1 for a user without that kind of factor).
type Reverification struct {
	// Preset is the name of one of Clerk's presets when r came from one
	// ("strict_mfa", "strict", "moderate", "lax"); it is what the 403 body
	// names. Empty for an explicit requirement.
	Preset string
	// Level is first_factor, second_factor or multi_factor.
	Level ReverificationLevel
	// AfterMinutes is the most minutes since verification that still
	// passes (exclusive: an fva of exactly AfterMinutes fails). Positive.
	AfterMinutes int
}

// reverificationPresets are Clerk's presets (@clerk/shared authorization).
var reverificationPresets = map[string]Reverification{
	"strict_mfa": {Preset: "strict_mfa", Level: MultiFactor, AfterMinutes: 10},
	"strict":     {Preset: "strict", Level: SecondFactor, AfterMinutes: 10},
	"moderate":   {Preset: "moderate", Level: SecondFactor, AfterMinutes: 60},
	"lax":        {Preset: "lax", Level: SecondFactor, AfterMinutes: 1440},
}

// ReverificationPreset returns one of Clerk's presets: strict_mfa (multi
// factor, 10 minutes), strict (second factor, 10), moderate (second factor,
// 60) or lax (second factor, 1,440).
func ReverificationPreset(name string) (Reverification, bool) {
	r, ok := reverificationPresets[name]
	return r, ok
}

// Validate reports an unknown level or a non-positive AfterMinutes.
func (r *Reverification) Validate() error {
	switch r.Level {
	case FirstFactor, SecondFactor, MultiFactor:
	default:
		return fmt.Errorf("reverification level %q is not first_factor, second_factor or multi_factor", r.Level)
	}
	if r.AfterMinutes <= 0 {
		return fmt.Errorf("reverification after_minutes %d must be positive", r.AfterMinutes)
	}
	if r.Preset != "" {
		if p, ok := reverificationPresets[r.Preset]; !ok || p != *r {
			return fmt.Errorf("reverification preset %q does not match its level and minutes", r.Preset)
		}
	}
	return nil
}

// MetBy applies Clerk's rules to fva: -1 means the user has no factor of
// that kind. first_factor looks at the first factor; second_factor at the
// second, or the first for a user without one; multi_factor at both, or the
// first alone for a user without a second. A missing fva never passes, nor
// does a malformed one (an age below -1 in either position), as in
// @clerk/shared's has({reverification}).
func (r *Reverification) MetBy(fva *[2]int64) bool {
	if fva == nil {
		return false
	}
	f1, f2 := fva[0], fva[1]
	if f1 < -1 || f2 < -1 {
		return false
	}
	within := func(age int64) bool { return age >= 0 && int64(r.AfterMinutes) > age }
	switch r.Level {
	case FirstFactor:
		return f1 != -1 && within(f1)
	case SecondFactor:
		if f2 == -1 {
			return f1 != -1 && within(f1)
		}
		return within(f2)
	case MultiFactor:
		if f2 == -1 {
			return f1 != -1 && within(f1)
		}
		return f1 != -1 && within(f1) && within(f2)
	}
	return false
}

// clerkError is the clerk_error member Clerk's backend SDKs send with a
// reverification 403; Clerk's frontend (useReverification) reads it.
type clerkError struct {
	Type     string             `json:"type"`
	Reason   string             `json:"reason"`
	Metadata clerkErrorMetadata `json:"metadata"`
}

type clerkErrorMetadata struct {
	// Reverification is Clerk's ReverificationConfig: a preset name, or
	// {"level", "afterMinutes"}.
	Reverification any `json:"reverification"`
}

type reverificationConfig struct {
	Level        ReverificationLevel `json:"level"`
	AfterMinutes int                 `json:"afterMinutes"`
}

func (r *Reverification) clerkError() *clerkError {
	var cfg any = reverificationConfig{Level: r.Level, AfterMinutes: r.AfterMinutes}
	if r.Preset != "" {
		cfg = r.Preset
	}
	return &clerkError{Type: "forbidden", Reason: "reverification-error", Metadata: clerkErrorMetadata{Reverification: cfg}}
}
