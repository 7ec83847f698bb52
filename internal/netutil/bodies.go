package netutil

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// BoundBodies bounds how long a request whose path starts with prefix may
// take to deliver its body: timeout, counted from when next is called. It
// is for a listener that has no ReadTimeout, because other paths on it
// (uploads to upstreams, streams through them) may last as long as they
// like, while the paths under prefix need no such length. Without a
// deadline, a client announcing a body and then stalling would hold the
// handler, since net/http drains an unread body (up to 256 KiB) before it
// answers.
//
// The deadline is set only when a body is announced: on a bodiless request
// net/http is already reading ahead for the next request, and a deadline
// reached during that read would cancel the connection's context, and with
// it every later request on the connection. A request with a body to one
// of the unread paths (handlers that never read a body) is also answered,
// on HTTP/1, with Connection: close, so the answer goes out at once instead
// of after draining a body nobody will read.
//
// A ResponseWriter without read deadlines (tests, HTTP/2 wrappers that lack
// them) leaves the server's timeouts in charge.
func BoundBodies(next http.Handler, prefix string, timeout time.Duration, unread ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && strings.HasPrefix(r.URL.Path, prefix) {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
			if r.ProtoMajor == 1 && slices.Contains(unread, r.URL.Path) {
				w.Header().Set("Connection", "close")
			}
		}
		next.ServeHTTP(w, r)
	})
}
