package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/sessiongate/sessiongate/internal/jsonresp"
)

// HandlerConfig is what the admin listener's handler is built from: plain
// values and functions, filled in by the process's assembly.
type HandlerConfig struct {
	// Ready reports whether the process can serve: ok, or not and a
	// message for people, which GET /readyz answers with 503. Nil: always
	// ready.
	Ready func() (ok bool, message string)
	// Metrics serves GET /metrics (the Prometheus exposition). Nil: the
	// path is not served.
	Metrics http.Handler
	// Sessions serves the revoke endpoint (RevokePattern). Nil: the
	// endpoint is not served.
	Sessions *Server
	// AdminToken is admin_token: the bearer token that opens everything
	// but the probes. Empty: none, and the listener refuses browsers (see
	// NewHandler).
	AdminToken string
	// MetricsToken is metrics_token: a bearer token that opens GET
	// /metrics, and nothing else. Empty: none.
	MetricsToken string
	// Pprof serves /debug/pprof/* behind AdminToken (admin_pprof). Without
	// an AdminToken it is ignored: profiles are never served unguarded.
	Pprof bool
}

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

// NewHandler returns the admin listener's handler: GET /healthz and GET
// /readyz, open (probes carry no credentials and the answers hold no
// secrets); GET /metrics behind MetricsToken or AdminToken; the revoke
// endpoint and, with Pprof, /debug/pprof/* behind AdminToken. Without an
// AdminToken the listener is loopback-only (the configuration requires the
// token elsewhere) and the handler refuses browsers: a request carrying
// Origin, a Sec-Fetch-Site other than "none", or a Host that is not a
// loopback name is answered 403.
func NewHandler(c HandlerConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if c.Ready != nil {
			if ok, msg := c.Ready(); !ok {
				writeStatus(w, http.StatusServiceUnavailable, "unavailable", msg)
				return
			}
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
	requireAdmin := func(next http.Handler) http.Handler {
		return requireBearer(next, "the admin token is missing or wrong", c.AdminToken)
	}
	if c.Metrics != nil {
		if c.MetricsToken == "" {
			mux.Handle("GET /metrics", requireAdmin(c.Metrics))
		} else {
			mux.Handle("GET /metrics", requireBearer(c.Metrics, "the metrics token is missing or wrong", c.MetricsToken, c.AdminToken))
		}
	}
	if c.Sessions != nil {
		mux.Handle(RevokePattern, requireAdmin(c.Sessions.RevokeHandler()))
	}
	if c.Pprof && c.AdminToken != "" {
		// Config refuses admin_pprof without admin_token; the second
		// condition keeps an unguarded profile endpoint impossible even for
		// a handler built from an unvalidated configuration.
		mux.Handle("GET /debug/pprof/", requireAdmin(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", requireAdmin(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", requireAdmin(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", requireAdmin(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", requireAdmin(http.HandlerFunc(pprof.Trace)))
	}
	if c.AdminToken == "" {
		return refuseBrowsers(mux)
	}
	return mux
}

// writeStatus answers a probe: {"status":"ok"}, {"status":"ready"}, or
// {"status":"unavailable","message":…}.
func writeStatus(w http.ResponseWriter, status int, s, msg string) {
	body := map[string]string{"status": s}
	if msg != "" {
		body["message"] = msg
	}
	jsonresp.Write(w, status, body)
}
