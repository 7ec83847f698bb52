package proxy

import (
	"net/http"

	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/middleware"
)

// ReasonHandshakeFailed is the reason of a development instance's 500 for
// a handshake payload that failed verification (handshake.Failed).
const ReasonHandshakeFailed middleware.Reason = "handshake-failed"

// writeHandshakeFailure answers a development instance's failed handshake:
// 500 with the handshake's message (it names the cause and the cure, never
// a token) and its cookies (the deletion of a rejected cookie).
func (p *Proxy) writeHandshakeFailure(w http.ResponseWriter, o *handshake.Outcome, st *state) {
	st.reason = ReasonHandshakeFailed
	o.AddCookies(w.Header())
	msg := "the Clerk handshake failed"
	if o.Err != nil {
		msg = o.Err.Message
	}
	writeJSON(w, http.StatusInternalServerError, "internal_error", st.reason, msg)
}
