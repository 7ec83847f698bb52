package app

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/proxy"
)

// defaultReservedReadTimeout is Options.ReservedReadTimeout's default.
const defaultReservedReadTimeout = 5 * time.Second

// boundReserved bounds, on the proxy listener, how long a request to a
// reserved path (/_sessiongate/…) may take to deliver its body. That
// listener has no ReadTimeout, because uploads to upstreams and streams
// through them may last as long as they like; the reserved endpoints need
// no such length. Forward-auth never reads a body (front proxies send none)
// and the webhook reads at most webhook.MaxBody; without a deadline, a
// client announcing a body and then stalling would hold the handler, since
// net/http drains an unread body (up to 256 KiB) before it answers.
//
// The deadline is set only when a body is announced: on a bodiless request
// net/http is already reading ahead for the next request, and a deadline
// reached during that read would cancel the connection's context, and with
// it every later request on the connection. A forward-auth request with a
// body is also answered with Connection: close, so the answer goes out at
// once instead of after draining a body nobody will read.
func boundReserved(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && strings.HasPrefix(r.URL.Path, proxy.ReservedPrefix) {
			// A ResponseWriter without deadlines (tests, HTTP/2 wrappers
			// that lack it) leaves the server's timeouts in charge.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
			if r.URL.Path == proxy.ForwardAuthPath && r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
		}
		next.ServeHTTP(w, r)
	})
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
			writeAdminError(w, http.StatusForbidden, "forbidden",
				"browser requests are refused by an admin listener without admin_token")
		case r.Host != "" && !loopbackHost(r.Host):
			writeAdminError(w, http.StatusForbidden, "forbidden",
				"an admin listener without admin_token answers only requests for a loopback host (localhost, 127.0.0.1, [::1])")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// loopbackHost reports whether a Host header value (with or without a
// port) names the loopback interface: "localhost" in any case, or an IP
// literal in 127.0.0.0/8 or ::1 (a zone, as in ::1%lo, is ignored; an
// IPv4-mapped ::ffff:127.0.0.1 counts). Names that merely resolve to
// loopback ("localhost.", *.localhost, 127.0.0.1.nip.io) do not: the Host
// is compared, never resolved.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return netutil.IsLoopbackHost(host)
}
