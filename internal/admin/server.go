package admin

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/jsonresp"
)

// clerkTimeout bounds the revocation at Clerk. The client's answer timeout
// exceeds it, so a slow Clerk is reported by the server, not cut short.
const clerkTimeout = 10 * time.Second

// Revoker revokes a session at Clerk (*clerkapi.Client does).
type Revoker interface {
	Revoke(ctx context.Context, sid string) (*clerkapi.Session, error)
}

// Server holds what the admin session handlers need from the App.
type Server struct {
	// DenyLocally denies sid locally at once (and drops what is cached for
	// it) and returns when the denial ends. ctx is the request's.
	DenyLocally func(ctx context.Context, sid string) time.Time
	// Clerk revokes at Clerk; nil when no secret key is configured.
	Clerk Revoker
	// Logger gets a line per revocation; nil: none.
	Logger *zap.Logger
}

// RevokeHandler serves RevokePattern: deny locally first (it takes effect
// on the very next request whatever Clerk answers), then revoke at Clerk.
// It does no authentication: NewHandler wraps it in the admin token check.
func (s *Server) RevokeHandler() http.Handler { return http.HandlerFunc(s.revoke) }

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	sid := r.PathValue("sid")
	if !clerkwire.ValidSessionID(sid) {
		jsonresp.Write(w, http.StatusBadRequest, jsonresp.ErrorBody{Error: "bad_request", Message: "not a session id (" + clerkwire.SessionIDShape + ")"})
		return
	}
	until := s.DenyLocally(r.Context(), sid)
	body := RevokeReply{SessionID: sid, DeniedLocally: true, DeniedUntil: until.UTC().Format(time.RFC3339)}
	if s.Clerk == nil {
		body.Clerk = ClerkSkipped
		jsonresp.Write(w, http.StatusOK, body)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), clerkTimeout)
	defer cancel()
	sess, err := s.Clerk.Revoke(ctx, sid)
	if err != nil {
		log.Warn("revoke at Clerk failed; the session stays denied locally", zap.String("sid", sid), zap.Error(err))
		body.Error = "bad_gateway"
		body.Message = "denied locally; Clerk did not confirm the revocation: " + err.Error()
		jsonresp.Write(w, http.StatusBadGateway, body)
		return
	}
	log.Info("session revoked", zap.String("sid", sid))
	body.Clerk = ClerkRevoked
	body.Status = string(sess.Status)
	jsonresp.Write(w, http.StatusOK, body)
}
