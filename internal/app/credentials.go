package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// The admin listener's credentials:
//
//	path                         no token configured    admin_token    metrics_token    both
//	/healthz, /readyz            open                   open           open             open
//	GET /metrics                 open (loopback only)   admin          metrics          metrics or admin
//	POST /sessions/{sid}/revoke  open (loopback only)   admin          open (loopback)  admin
//	/debug/pprof/*               never                  admin          never            admin
//
// metrics_token is a scrape credential: it never opens revocation or
// profiles. Without admin_token the listener is loopback-only (config
// validation) and refuses browsers (refuseBrowsers).

// requireAdmin guards what only admin_token opens.
func (a *App) requireAdmin(next http.Handler) http.Handler {
	return requireBearer(next, "the admin token is missing or wrong", a.cfg.AdminToken.Reveal())
}

// requireMetrics guards /metrics: metrics_token or admin_token.
func (a *App) requireMetrics(next http.Handler) http.Handler {
	if a.cfg.MetricsToken == "" {
		return a.requireAdmin(next)
	}
	return requireBearer(next, "the metrics token is missing or wrong", a.cfg.MetricsToken.Reveal(), a.cfg.AdminToken.Reveal())
}

// requireBearer lets a request through when its Authorization header is
// "Bearer <t>" for one of the non-empty tokens; with none, every request.
// Digests are compared, every one of them, in constant time: neither a
// token's length nor which token matched shows in the timing.
func requireBearer(next http.Handler, msg string, tokens ...string) http.Handler {
	var wants [][sha256.Size]byte
	for _, t := range tokens {
		if t != "" {
			wants = append(wants, sha256.Sum256([]byte(t)))
		}
	}
	if len(wants) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(bearer(r.Header.Get("Authorization"))))
		ok := 0
		for i := range wants {
			ok |= subtle.ConstantTimeCompare(got[:], wants[i][:])
		}
		// An absent or malformed header hashes the empty string, which no
		// configured (non-empty) token matches.
		if ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiongate-admin"`)
			writeAdminError(w, http.StatusUnauthorized, "unauthenticated", msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// value (scheme case-insensitive), or "".
func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return token
}
