package templatetoken_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/templatetoken"
)

// BenchmarkUpstreamTokenCached is a template route's request for a session
// whose token is cached: the request path's whole cost.
func BenchmarkUpstreamTokenCached(b *testing.B) {
	m := &minter{now: time.Now, life: time.Hour}
	s, err := templatetoken.New(templatetoken.Config{Minter: m, Template: "hasura"})
	if err != nil {
		b.Fatal(err)
	}
	c := &middleware.Claims{
		SessionID: "sess_2xYz0123456789abcdefghijklm", Subject: "user_2xYz0123456789abcdefghijklm",
		OrgID: "org_2xYz0123456789abcdefghijklm", OrgSlug: "acme", OrgRole: "org:admin",
		OrgPermissions: []string{"org:sys_memberships:manage", "org:sys_profile:manage", "org:invoices:read"},
		SessionStatus:  "active", Features: []string{"o:dashboard"}, Plan: "o:pro",
	}
	ctx := context.Background()
	if _, err := s.UpstreamToken(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.UpstreamToken(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if m.calls.Load() != 1 {
		b.Fatalf("mints = %d", m.calls.Load())
	}
}
