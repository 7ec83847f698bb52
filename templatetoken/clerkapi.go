package templatetoken

import (
	"context"

	"github.com/sessiongate/sessiongate/clerkapi"
)

// ClerkMinter returns the Minter that mints through Clerk's Backend API
// with c (POST /v1/sessions/{sid}/tokens/{template}, the template's own
// lifetime): Config.Minter for a Go app, as sessiongate configures it from
// clerk.secret_key.
func ClerkMinter(c *clerkapi.Client) Minter { return clerkMinter{c} }

type clerkMinter struct{ c *clerkapi.Client }

var _ Minter = clerkMinter{}

func (m clerkMinter) CreateToken(ctx context.Context, sid, template string) (string, error) {
	t, err := m.c.CreateToken(ctx, sid, template, 0)
	if err != nil {
		return "", err
	}
	return t.JWT, nil
}
