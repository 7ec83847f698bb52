package templatetoken_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/templatetoken"
)

// orgMinter stands for Clerk: a template token carries the session's
// active organization at the time it is minted, as {{org.id}} and
// {{org.role}} shortcodes would.
type orgMinter struct {
	now   func() time.Time
	calls atomic.Int64

	mu   sync.Mutex // guards following
	org  string
	role string
}

func (m *orgMinter) switchTo(org, role string) {
	m.mu.Lock()
	m.org, m.role = org, role
	m.mu.Unlock()
}

func (m *orgMinter) CreateToken(_ context.Context, sid, _ string) (string, error) {
	n := m.calls.Add(1)
	m.mu.Lock()
	org, role := m.org, m.role
	m.mu.Unlock()
	payload, _ := json.Marshal(map[string]any{"sid": sid, "org": org, "role": role, "n": n, "exp": m.now().Add(time.Hour).Unix()})
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".sig", nil
}

func orgOf(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Org, Role string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Org + "/" + c.Role
}

// The upstream of a session that switched organization (or whose role or
// permissions changed) gets a template token minted for what its session
// token now says, never one cached for the previous organization.
func TestTokenFollowsTheActiveOrganization(t *testing.T) {
	t.Parallel()
	m := &orgMinter{now: time.Now}
	s, err := templatetoken.New(templatetoken.Config{Minter: m, Template: "hasura"})
	if err != nil {
		t.Fatal(err)
	}
	orgA := middleware.Claims{SessionID: "sess_1", Subject: "user_1", OrgID: "org_A", OrgSlug: "a", OrgRole: "org:admin", OrgPermissions: []string{"org:sys_memberships:manage"}}
	orgB := middleware.Claims{SessionID: "sess_1", Subject: "user_1", OrgID: "org_B", OrgSlug: "b", OrgRole: "org:member"}
	for i, step := range []struct {
		name      string
		clerkOrg  string // the session's organization at Clerk
		clerkRole string
		claims    func() middleware.Claims
		wantOrg   string
		wantMints int64
	}{
		{"org A: minted", "org_A", "org:admin", func() middleware.Claims { return orgA }, "org_A/org:admin", 1},
		{"org A again, another token with the same claims: cached", "org_A", "org:admin", func() middleware.Claims { return orgA }, "org_A/org:admin", 1},
		{"switched to org B: minted for B", "org_B", "org:member", func() middleware.Claims { return orgB }, "org_B/org:member", 2},
		{"role changed in org B: minted", "org_B", "org:admin", func() middleware.Claims { c := orgB; c.OrgRole = "org:admin"; return c }, "org_B/org:admin", 3},
		{"permissions changed in org A: minted", "org_A", "org:admin", func() middleware.Claims {
			c := orgA
			c.OrgPermissions = nil
			return c
		}, "org_A/org:admin", 4},
		{"no active organization: minted", "", "", func() middleware.Claims { return middleware.Claims{SessionID: "sess_1", Subject: "user_1"} }, "/", 5},
		{"impersonated: minted", "", "", func() middleware.Claims {
			return middleware.Claims{SessionID: "sess_1", Subject: "user_1", Actor: &middleware.Actor{Subject: "user_admin"}}
		}, "/", 6},
	} {
		m.switchTo(step.clerkOrg, step.clerkRole)
		c := step.claims()
		jwt, err := s.UpstreamToken(context.Background(), &c)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, step.name, err)
		}
		if got := orgOf(t, jwt); got != step.wantOrg {
			t.Errorf("step %d (%s): upstream got a token for %s, want %s", i, step.name, got, step.wantOrg)
		}
		if got := m.calls.Load(); got != step.wantMints {
			t.Errorf("step %d (%s): mints = %d, want %d", i, step.name, got, step.wantMints)
		}
	}
}

// Two tabs of one session on different organizations do not evict each
// other's token, and Forget drops every one of them.
func TestTokensOfOneSessionPerOrganization(t *testing.T) {
	t.Parallel()
	m := &orgMinter{now: time.Now}
	s, _ := templatetoken.New(templatetoken.Config{Minter: m, Template: "t"})
	tabs := []*middleware.Claims{
		{SessionID: "sess_1", OrgID: "org_A", OrgRole: "org:admin"},
		{SessionID: "sess_1", OrgID: "org_B", OrgRole: "org:admin"},
	}
	for round := 0; round < 3; round++ {
		for _, c := range tabs {
			m.switchTo(c.OrgID, c.OrgRole)
			jwt, err := s.UpstreamToken(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := orgOf(t, jwt), c.OrgID+"/"+c.OrgRole; got != want {
				t.Fatalf("round %d: token for %s, want %s", round, got, want)
			}
		}
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("mints = %d, want 2 (one per organization)", n)
	}
	s.Forget("sess_1")
	for _, c := range tabs {
		m.switchTo(c.OrgID, c.OrgRole)
		_, _ = s.UpstreamToken(context.Background(), c)
	}
	if n := m.calls.Load(); n != 4 {
		t.Fatalf("mints after Forget = %d, want 4: Forget kept a token", n)
	}
}
