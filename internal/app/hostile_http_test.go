package app_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
)

// Wire-level request hostility against the real server (app.Serve on
// loopback, Go's net/http server in front of the proxy): what Go refuses
// before sessiongate sees the request, proven here so that a change of Go
// version or server settings that loosens it fails a test.

// hostileRoutes: /public is public, everything else requires a session.
func hostileRoutes(c *config.Config, _ *clerktest.Instance) {
	c.Routes = []config.Route{
		{Path: "/public", Auth: config.AuthPublic},
		{Path: "/"},
	}
}

// TestOversizedHeadersGet431: headers beyond server.max_header_bytes (Go
// allows 4 KiB of slack on top) are refused by Go's server with 431 before
// any handler runs; the upstream sees nothing.
func TestOversizedHeadersGet431(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{config: func(c *config.Config, i *clerktest.Instance) {
		hostileRoutes(c, i)
		c.Server.MaxHeaderBytes = 8192
	}})
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t)
	big := strings.Repeat("a", 32<<10)
	for _, tc := range []struct {
		name, headers string
	}{
		{"one huge header", "X-Big: " + big + "\r\n"},
		{"huge cookie", "Cookie: __session=" + tok + "; pad=" + big + "\r\n"},
		{"huge bearer token", "Authorization: Bearer " + tok + big + "\r\n"},
		{"many headers", strings.Repeat("X-Many: "+strings.Repeat("m", 100)+"\r\n", 400)},
	} {
		for _, path := range []string{"/public/x", "/private"} {
			rs := h.raw(t, "GET "+path+" HTTP/1.1\r\nHost: app\r\n"+tc.headers+"\r\n")
			if len(rs) != 1 || rs[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s %s: responses %s, want [431]", tc.name, path, statuses(rs))
			}
		}
	}
	// Just under the limit is served.
	rs := h.raw(t, "GET /public/x HTTP/1.1\r\nHost: app\r\nX-Ok: "+strings.Repeat("o", 4096)+"\r\nConnection: close\r\n\r\n")
	if len(rs) != 1 || rs[0].StatusCode != 200 {
		t.Errorf("headers under the limit: %s", statuses(rs))
	}
	if got := h.up.paths(); !slices.Equal(got, []string{"/public/x"}) {
		t.Errorf("the upstream saw %v, want only the request under the limit", got)
	}
}

// TestRequestSmuggling sends the classic desynchronisation attempts to the
// real server on raw connections. Each request carries, in what one parser
// might read as its body, a second request for /private without a token. Go's
// server either refuses the message (400, or 501 for transfer codings it
// does not implement) and closes the connection, or parses it
// unambiguously; in every case the upstream never receives a request for
// /private (it would have to pass the Gate, and has no token), and what it
// receives for /public is a well-formed request Go re-framed itself.
func TestRequestSmuggling(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{config: hostileRoutes})
	h.waitReady(t, 200)
	smuggled := "GET /private HTTP/1.1\r\nHost: app\r\nX-Sessiongate-User-Id: user_admin\r\n\r\n"
	chunkedSmuggle := "0\r\n\r\n" + smuggled
	cases := []struct {
		name    string
		request string
		want    []int // the statuses read from the connection, in order
	}{
		{
			// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length. Go
			// drops the Content-Length and reads the chunked body, so the
			// "smuggled" request is just the next pipelined request on the
			// connection, authenticated on its own: 401.
			"Transfer-Encoding and Content-Length",
			"POST /public/te-cl HTTP/1.1\r\nHost: app\r\nContent-Length: " + fmt.Sprint(len(chunkedSmuggle)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle,
			[]int{200, 401},
		},
		{
			"Content-Length and Transfer-Encoding (CL first, short)",
			"POST /public/cl-te HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle,
			[]int{200, 401},
		},
		{
			"two Transfer-Encoding headers",
			"POST /public/te-te HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunkedSmuggle,
			[]int{501},
		},
		{
			"Transfer-Encoding list",
			"POST /public/te-list HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunkedSmuggle,
			[]int{501},
		},
		{
			"Transfer-Encoding obfuscated",
			"POST /public/te-obf HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: xchunked\r\nContent-Length: " + fmt.Sprint(len(chunkedSmuggle)) + "\r\n\r\n" + chunkedSmuggle,
			[]int{501},
		},
		{
			"Transfer-Encoding with a space before the colon",
			"POST /public/te-space HTTP/1.1\r\nHost: app\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n" + chunkedSmuggle,
			[]int{400},
		},
		{
			"duplicate Content-Length with different values",
			"POST /public/cl-cl HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\nContent-Length: " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled,
			[]int{400},
		},
		{
			"Content-Length list",
			"POST /public/cl-list HTTP/1.1\r\nHost: app\r\nContent-Length: 0, " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled,
			[]int{400},
		},
		{
			"negative Content-Length",
			"POST /public/cl-neg HTTP/1.1\r\nHost: app\r\nContent-Length: -1\r\n\r\n" + smuggled,
			[]int{400},
		},
		{
			"Content-Length with a plus sign",
			"POST /public/cl-plus HTTP/1.1\r\nHost: app\r\nContent-Length: +0\r\n\r\n" + smuggled,
			[]int{400},
		},
		{
			// obs-fold (RFC 9112 §5.2): a header continued on the next line.
			// Go does not refuse it: it unfolds the line into the previous
			// header's value (X-Folded: "a Transfer-Encoding: chunked"), so no
			// Transfer-Encoding exists, the GET has no body and is answered,
			// and the leftover "0\r\n\r\n…" is a malformed request line:
			// 400 and the connection closes before the smuggled GET.
			"obsolete line folding",
			"GET /public/fold HTTP/1.1\r\nHost: app\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle,
			[]int{200, 400},
		},
		{
			"obsolete line folding of Content-Length",
			"POST /public/fold-cl HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled,
			[]int{400},
		},
		{
			"NUL in a header value",
			"GET /public/nul HTTP/1.1\r\nHost: app\r\nX-Nul: a\x00b\r\n\r\n",
			[]int{400},
		},
		{
			"bare CR in a header value",
			"GET /public/cr HTTP/1.1\r\nHost: app\r\nX-Cr: a\rTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle,
			[]int{400},
		},
		{
			"two Host headers",
			"GET /public/host HTTP/1.1\r\nHost: app\r\nHost: evil\r\n\r\n",
			[]int{400},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs := h.raw(t, tc.request)
			got := statuses(rs)
			want := fmt.Sprint(tc.want)
			if got != want {
				t.Errorf("responses %s, want %s", got, want)
			}
		})
	}
	var folded bool
	for _, s := range h.up.seen() {
		if s.Path == "/public/fold" {
			folded = true
			if got := s.Header.Get("X-Folded"); got != "a Transfer-Encoding: chunked" || s.Header.Get("Transfer-Encoding") != "" {
				t.Errorf("the folded header reached the upstream as %q (TE %q)", got, s.Header.Get("Transfer-Encoding"))
			}
		}
		if strings.HasPrefix(s.Path, "/private") {
			t.Errorf("a smuggled request reached the upstream: %+v", s)
		}
		if s.Header.Get("X-Sessiongate-User-Id") != "" || strings.Contains(s.Body, "/private") {
			t.Errorf("the upstream saw smuggled content for %s: %q %q", s.Path, s.Header.Get("X-Sessiongate-User-Id"), s.Body)
		}
	}
	if !folded {
		t.Error("the folded request did not reach the upstream")
	}
	// Only the requests Go parsed unambiguously were forwarded, once each.
	want := []string{"/public/te-cl", "/public/cl-te", "/public/fold"}
	got := h.up.paths()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("upstream saw %v, want %v", got, want)
	}
}

// TestBadChunkNeverReachesTheUpstreamWhole: a chunked body with a malformed
// chunk cannot be refused before the handler runs (Go streams bodies); the
// proxy starts forwarding, the body read fails, and the client gets a clean
// error (the request is not answered 2xx), while the upstream sees the
// request's body end in an error rather than a second request.
func TestBadChunkNeverReachesTheUpstreamWhole(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{config: hostileRoutes})
	h.waitReady(t, 200)
	smuggled := "GET /private HTTP/1.1\r\nHost: app\r\n\r\n"
	for _, body := range []string{
		"zz\r\nabc\r\n0\r\n\r\n" + smuggled,          // not hex
		"3\r\nabcdef\r\n0\r\n\r\n" + smuggled,        // chunk longer than its size
		"fffffffffffffffff\r\n" + smuggled,           // size overflow
		"3;" + strings.Repeat("x", 8192) + "\r\nabc", // huge chunk extension
	} {
		rs := h.raw(t, "POST /public/chunk HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
		for _, r := range rs {
			if r.StatusCode/100 == 2 {
				b, _ := io.ReadAll(r.Body)
				t.Errorf("bad chunk %q answered %d: %s", body[:min(20, len(body))], r.StatusCode, b)
			}
		}
		if len(rs) > 1 {
			t.Errorf("bad chunk %q: %d responses on one connection, want at most 1", body[:min(20, len(body))], len(rs))
		}
	}
	for _, s := range h.up.seen() {
		if s.Path != "/public/chunk" || s.BodyErr == nil && s.Body != "" {
			t.Errorf("upstream saw %s with body %q (err %v)", s.Path, s.Body, s.BodyErr)
		}
	}
}

// TestIdentitySpoofingOnTheWire repeats the spoofing test through Go's real
// server, which canonicalizes names around "-" only: x_sessiongate_user_id
// arrives as X_sessiongate_user_id, a key distinct from X-Sessiongate-User-Id
// that an upstream mapping "_" to "-" would read as the identity.
func TestIdentitySpoofingOnTheWire(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{config: hostileRoutes})
	h.waitReady(t, 200)
	tok := h.inst.MustMint(t, clerktest.WithUser("user_wire"))
	spoofs := "X-Sessiongate-User-Id: spoofed\r\nx_sessiongate_user_id: spoofed\r\nX_SESSIONGATE_ORG_ROLE: spoofed\r\n" +
		"x-sessiongate-org-id: spoofed\r\nX-Sessiongate-User-Id: spoofed-again\r\nX-Sessiongate_Session-Id: spoofed\r\n"
	for _, tc := range []struct {
		path, auth string
		status     int
		user       string
	}{
		{"/public/w", "", 200, ""},
		{"/private/w", "Authorization:   Bearer " + tok + "  \r\n", 200, "user_wire"}, // Go trims the value
		{"/private/w", "", 401, ""},
	} {
		rs := h.raw(t, "GET "+tc.path+" HTTP/1.1\r\nHost: app\r\n"+spoofs+tc.auth+"Connection: close\r\n\r\n")
		if len(rs) != 1 || rs[0].StatusCode != tc.status {
			t.Fatalf("%s: %s, want [%d]", tc.path, statuses(rs), tc.status)
		}
	}
	seen := h.up.seen()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests, want 2", len(seen))
	}
	for i, want := range []string{"", "user_wire"} {
		for name, vals := range seen[i].Header {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if strings.HasPrefix(n, "x-sessiongate-") {
				for _, v := range vals {
					if strings.HasPrefix(v, "spoofed") {
						t.Errorf("%s: spoofed %s reached the upstream", seen[i].Path, name)
					}
				}
			}
		}
		if got := seen[i].Header.Get("X-Sessiongate-User-Id"); got != want {
			t.Errorf("%s: user %q, want %q", seen[i].Path, got, want)
		}
	}
}

// TestSlowHeadersAreCutOff (slowloris): a client that sends its headers a
// line at a time, forever, is disconnected once server.read_header_timeout
// has passed since the request began; the upstream never sees it.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	const readHeader = 500 * time.Millisecond
	h := hzStart(t, hzOptions{config: func(c *config.Config, i *clerktest.Instance) {
		hostileRoutes(c, i)
		c.Server.ReadHeaderTimeout = config.Duration(readHeader)
	}})
	h.waitReady(t, 200)
	conn, err := net.DialTimeout("tcp", h.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan []byte, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(conn) // until the server closes the connection
		closed <- b
	}()
	_, _ = io.WriteString(conn, "GET /public/slow HTTP/1.1\r\nHost: app\r\n")
	var answer []byte
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
loop:
	for {
		select {
		case answer = <-closed:
			break loop
		case <-ticker.C:
			if _, err := io.WriteString(conn, "X-Slow: a\r\n"); err != nil {
				answer = <-closed
				break loop
			}
		}
	}
	took := time.Since(start)
	// Generous: the bound tells read_header_timeout from no timeout (the
	// reader gives up after 10 s).
	if took > readHeader+5*time.Second {
		t.Fatalf("the slow client kept its connection %s (read_header_timeout %s)", took, readHeader)
	}
	if strings.Contains(string(answer), " 200 ") {
		t.Fatalf("the slow request was answered: %q", answer)
	}
	if got := h.up.paths(); len(got) != 0 {
		t.Fatalf("the upstream saw %v", got)
	}
	t.Logf("disconnected after %s with %q", took.Round(time.Millisecond), strings.SplitN(string(answer), "\r\n", 2)[0])
}
