package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/webhook"
)

// stallAfter writes head on a new connection to addr, then sends nothing
// more, and returns what the server answered before it closed the
// connection (nil when it neither answered nor closed within bound), when
// the first byte of the answer came, and when the connection closed.
func stallAfter(t *testing.T, addr, head string, bound time.Duration) (answer []byte, firstByte, closed time.Duration) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(start.Add(bound))
	br := bufio.NewReader(conn)
	if _, err := br.Peek(1); err != nil {
		return nil, 0, time.Since(start)
	}
	firstByte = time.Since(start)
	answer, _ = io.ReadAll(br) // until the server closes the connection or the bound
	return answer, firstByte, time.Since(start)
}

// TestReservedPathsCutOffSlowBodies: the proxy listener has no ReadTimeout
// (uploads and streams pass through it), so each reserved endpoint bounds
// its own body: a client that announces a body and stalls gets its answer
// and is disconnected within the reserved read deadline, on forward-auth
// (which never reads a body), the webhook (with headers that pass the
// offline checks, so the body is awaited) and an unknown reserved path.
// What is refused without reading the body is answered at once.
func TestReservedPathsCutOffSlowBodies(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	h := hzStart(t, hzOptions{config: func(c *config.Config, i *clerktest.Instance) {
		hostileRoutes(c, i)
		c.Clerk.WebhookSecret = webhookSecret
	}, reservedReadTimeout: readTimeout})
	h.waitReady(t, 200)
	now := time.Now()
	sig, err := webhook.Sign(webhookSecret, "msg_slow", now, []byte("not this body"))
	if err != nil {
		t.Fatal(err)
	}
	signed := fmt.Sprintf("svix-id: msg_slow\r\nsvix-timestamp: %d\r\nsvix-signature: %s\r\n", now.Unix(), sig)
	for _, tc := range []struct {
		name, head string
		status     int
		prompt     bool // answered before the deadline
	}{
		{"forward-auth", "POST /_sessiongate/auth HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Uri: /private\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: app\r\n", 401, true},
		{"webhook with signed headers", "POST /_sessiongate/webhooks/clerk HTTP/1.1\r\nHost: gate\r\n" + signed, 408, false},
		{"webhook without svix headers", "POST /_sessiongate/webhooks/clerk HTTP/1.1\r\nHost: gate\r\n", 400, true},
		{"unknown reserved path", "POST /_sessiongate/nothing HTTP/1.1\r\nHost: gate\r\n", 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			answer, first, took := stallAfter(t, h.proxyAddr, tc.head+"Content-Length: 4096\r\n\r\n{\"a\"", readTimeout+5*time.Second)
			if len(answer) == 0 {
				t.Fatalf("no answer and no disconnect within %s", took.Round(time.Millisecond))
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil)
			if err != nil {
				t.Fatalf("answer %q: %v", answer, err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			// Generous: the bound tells the read deadline from no deadline
			// (stallAfter gives up at readTimeout + 5 s).
			if took > readTimeout+4*time.Second {
				t.Errorf("the stalled body held the connection %s (reserved read deadline %s)", took, readTimeout)
			}
			if tc.prompt && first >= readTimeout {
				t.Errorf("answered after %s, want before the read deadline (%s)", first, readTimeout)
			}
			t.Logf("answered %s after %s, disconnected after %s", resp.Status, first.Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
	if got := h.up.paths(); len(got) != 0 {
		t.Fatalf("the upstream saw %v", got)
	}
}

// deadlineRecorder is a ResponseWriter that records the read deadlines a
// handler sets through http.ResponseController.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	mu        sync.Mutex
	deadlines []time.Time
}

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadlines = append(d.deadlines, t)
	return nil
}

// TestReservedReadDeadlineOnlyForBodies: the read deadline is set only
// where a body is announced on a reserved path. A bodiless request gets
// none: its connection is already being watched for the next request, and
// a deadline there would cancel the request's context once it passed.
// Routes to upstreams never get one (long uploads are theirs to bound).
func TestReservedReadDeadlineOnlyForBodies(t *testing.T) {
	t.Parallel()
	h := hzStart(t, hzOptions{config: func(c *config.Config, i *clerktest.Instance) {
		hostileRoutes(c, i)
		c.Clerk.WebhookSecret = webhookSecret
	}})
	h.waitReady(t, 200)
	for _, tc := range []struct {
		method, path, body string
		chunked            bool
		want               bool
	}{
		{"GET", "/_sessiongate/auth", "", false, false},
		{"POST", "/_sessiongate/auth", "x", false, true},
		{"POST", "/_sessiongate/auth", "x", true, true},
		{"POST", "/_sessiongate/webhooks/clerk", "{}", false, true},
		{"POST", "/_sessiongate/webhooks/clerk", "", false, false},
		{"POST", "/_sessiongate/other", "x", false, true},
		{"POST", "/public/upload", "a long upload", false, false},
		{"POST", "/public/upload", "a long upload", true, false},
	} {
		name := fmt.Sprintf("%s %s body=%q chunked=%v", tc.method, tc.path, tc.body, tc.chunked)
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.body == "" {
			r = httptest.NewRequest(tc.method, tc.path, nil)
		}
		if tc.chunked {
			r.ContentLength = -1
		}
		w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
		before := time.Now()
		h.app.Handler().ServeHTTP(w, r)
		switch {
		case !tc.want && len(w.deadlines) != 0:
			t.Errorf("%s: read deadlines %v set, want none", name, w.deadlines)
		case tc.want && len(w.deadlines) == 0:
			t.Errorf("%s: no read deadline set", name)
		case tc.want:
			for _, d := range w.deadlines {
				if !d.After(before) || d.After(before.Add(time.Minute)) {
					t.Errorf("%s: read deadline %s from now", name, d.Sub(before))
				}
			}
		}
	}
}
