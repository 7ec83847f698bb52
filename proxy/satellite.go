package proxy

import (
	"net/http"

	"github.com/sessiongate/sessiongate/handshake"
)

// signInReturnURL is the redirect_url of the sign-in redirect: the page's
// public URL, on a satellite domain (Options.SignInSync) marked with
// __clerk_synced=false so that the return from the primary domain's
// sign-in page syncs the session.
func (p *Proxy) signInReturnURL(r *http.Request, st *state) string {
	u := p.publicURL(r, st)
	if p.signInSync {
		return handshake.SignInReturnURL(u)
	}
	return u
}
