package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/sessiongate/sessiongate/internal/jsonresp"
	"github.com/sessiongate/sessiongate/internal/netutil"
)

// The admin listener's refusals are written in the body shape of every
// sessiongate error, without a reason code (jsonresp.ErrorBody):
// {"error":"unauthenticated","message":…}.

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
			jsonresp.Write(w, http.StatusUnauthorized, jsonresp.ErrorBody{Error: "unauthenticated", Message: msg})
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

// refuseBrowsers guards the admin listener when no admin_token is set. It
// is then reachable on loopback only (config requires the token
// elsewhere), and meant for local tools: curl, the CLI, probes run inside
// the host or pod. The one way in from elsewhere is a browser on the same
// machine: a page posting a cross-site form to 127.0.0.1 (CSRF), or a page
// whose own name the attacker has re-pointed at 127.0.0.1 (DNS rebinding),
// which the browser then treats as same-origin and lets read the answers.
// So a request is refused with 403 when
//   - it carries Origin (browsers send it on every POST and every CORS
//     request; curl and probes never do),
//   - it carries Sec-Fetch-Site with any value but "none" ("none" is a URL
//     typed into the address bar: an operator opening /metrics), or
//   - its Host is not a loopback name (a rebound page sends its own name).
func refuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.Header.Get("Sec-Fetch-Site")
		switch {
		case len(r.Header.Values("Origin")) > 0, site != "" && site != "none":
			jsonresp.Write(w, http.StatusForbidden, jsonresp.ErrorBody{Error: "forbidden",
				Message: "browser requests are refused by an admin listener without admin_token"})
		case r.Host != "" && !loopbackHost(r.Host):
			jsonresp.Write(w, http.StatusForbidden, jsonresp.ErrorBody{Error: "forbidden",
				Message: "an admin listener without admin_token answers only requests for a loopback host (localhost, 127.0.0.1, [::1])"})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// loopbackHost reports whether a Host header value (with or without a
// port) names the loopback interface (netutil.IsLoopbackHost): "localhost"
// in any case, or an IP literal in 127.0.0.0/8 or ::1 (a zone, as in
// ::1%lo, is ignored; an IPv4-mapped ::ffff:127.0.0.1 counts). Names that
// merely resolve to loopback ("localhost.", *.localhost, 127.0.0.1.nip.io)
// do not: the Host is compared, never resolved.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return netutil.IsLoopbackHost(host)
}
