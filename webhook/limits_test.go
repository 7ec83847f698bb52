package webhook_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/webhook"
)

// stalledBody is a request body that never yields a byte: it records that
// a read was attempted and blocks until the test ends.
type stalledBody struct {
	read    atomic.Bool
	release chan struct{}
}

func newStalledBody(t *testing.T) *stalledBody {
	t.Helper()
	b := &stalledBody{release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	return b
}

func (b *stalledBody) Read([]byte) (int, error) {
	b.read.Store(true)
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

func (b *stalledBody) Close() error { return nil }

// serveWithin runs h on r and returns its response, or nil when h has not
// returned within limit (it is then left blocked until the test ends).
func serveWithin(h http.Handler, r *http.Request, limit time.Duration) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, r)
	}()
	select {
	case <-done:
		return w
	case <-time.After(limit):
		return nil
	}
}

// wellFormedSignature is a v1 signature of the right length that does not
// match any body the tests send.
func wellFormedSignature(t *testing.T, id string, ts time.Time) string {
	t.Helper()
	sig, err := webhook.Sign(secret, id, ts, []byte("some other body"))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestHandlerRefusesBeforeReadingTheBody: what the headers alone decide —
// svix headers missing, a malformed or out-of-tolerance timestamp, no
// well-formed v1 signature, a Content-Length over MaxBody — is answered at
// once, without reading a byte of the body (here, one that never arrives).
func TestHandlerRefusesBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	var revoked atomic.Int32
	h := &webhook.Handler{Verifier: v, Revoke: func(string) { revoked.Add(1) }}
	t.Cleanup(func() {
		if n := revoked.Load(); n != 0 {
			t.Errorf("%d sessions revoked by refused deliveries", n)
		}
	})
	ts := fmt.Sprint(now.Unix())
	good := wellFormedSignature(t, "msg_1", now)
	cases := []struct {
		name          string
		id, ts, sig   string
		contentLength int64
		status        int
		reason        string
	}{
		{"no svix headers", "", "", "", 100, 400, "webhook-headers-missing"},
		{"no signature", "msg_1", ts, "", 100, 400, "webhook-headers-missing"},
		{"no timestamp", "msg_1", "", good, 100, 400, "webhook-headers-missing"},
		{"malformed timestamp", "msg_1", "12a", good, 100, 400, "webhook-timestamp-invalid"},
		{"stale timestamp", "msg_1", fmt.Sprint(now.Add(-6 * time.Minute).Unix()), good, 100, 400, "webhook-timestamp-invalid"},
		{"future timestamp", "msg_1", fmt.Sprint(now.Add(6 * time.Minute).Unix()), good, 100, 400, "webhook-timestamp-invalid"},
		{"only other schemes", "msg_1", ts, "v1a,AAAA v2," + strings.TrimPrefix(good, "v1,"), 100, 400, "webhook-signature-invalid"},
		{"v1 signature not base64", "msg_1", ts, "v1,@@@", 100, 400, "webhook-signature-invalid"},
		{"v1 signature of the wrong length", "msg_1", ts, "v1,AAAA", 100, 400, "webhook-signature-invalid"},
		{"Content-Length over MaxBody", "msg_1", ts, good, webhook.MaxBody + 1, 413, "webhook-body-too-large"},
		{"Content-Length far over MaxBody", "msg_1", ts, good, 1 << 40, 413, "webhook-body-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := newStalledBody(t)
			r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", nil)
			r.Body, r.ContentLength = body, tc.contentLength
			for name, val := range map[string]string{"svix-id": tc.id, "svix-timestamp": tc.ts, "svix-signature": tc.sig} {
				if val != "" {
					r.Header.Set(name, val)
				}
			}
			w := serveWithin(h, r, 5*time.Second)
			if w == nil {
				t.Fatalf("the handler was still waiting for the body after 5 s (read attempted: %v)", body.read.Load())
			}
			if body.read.Load() {
				t.Errorf("the body was read")
			}
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.reason) {
				t.Errorf("answered %d %s, want %d %s", w.Code, strings.TrimSpace(w.Body.String()), tc.status, tc.reason)
			}
		})
	}
}

// TestHandlerAcceptsABodyAtMaxBody: a signed revoking event padded to
// exactly MaxBody is applied; one byte more, sent chunked (no
// Content-Length to refuse up front), is refused with 413 once read.
func TestHandlerAcceptsABodyAtMaxBody(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	rec := &recorder{}
	h := &webhook.Handler{Verifier: v, Revoke: rec.revoke}
	event := func(size int) string {
		head := `{"type":"session.revoked","data":{"id":"sess_cap"},"pad":"`
		return head + strings.Repeat("a", size-len(head)-2) + `"}`
	}
	post := func(id, body string, chunked bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", strings.NewReader(body))
		if chunked {
			r.ContentLength = -1
		}
		r.Header.Set("svix-id", id)
		r.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
		r.Header.Set("svix-signature", sign(t, secret, id, now.Unix(), body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := post("msg_over", event(webhook.MaxBody+1), true); w.Code != 413 {
		t.Fatalf("MaxBody+1 bytes, chunked: %d %s", w.Code, w.Body)
	}
	if w := post("msg_cap", event(webhook.MaxBody), false); w.Code != 200 {
		t.Fatalf("MaxBody bytes: %d %s", w.Code, w.Body)
	}
	if fmt.Sprint(rec.sids) != "[sess_cap]" {
		t.Fatalf("revoked %v, want [sess_cap]", rec.sids)
	}
}

// TestHandlerSlowBodyIsCutOff runs the handler behind a real server with
// no ReadTimeout of its own, as the proxy listener is: a sender that passes
// the header checks and then stalls, or trickles its body a byte at a time,
// is answered 408 and disconnected once the handler's read deadline has
// passed, however it paces its bytes.
func TestHandlerSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	v, _ := webhook.NewVerifier(secret, nil)
	var revoked atomic.Int32
	h := &webhook.Handler{Verifier: v, Revoke: func(string) { revoked.Add(1) }, ReadTimeout: readTimeout}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if n := revoked.Load(); n != 0 {
			t.Errorf("%d sessions revoked by refused deliveries", n)
		}
	})
	for _, tc := range []struct {
		name  string
		every time.Duration // 0: stall
	}{
		{"stalled", 0},
		{"trickled", 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			now := time.Now()
			start := now
			answered := make(chan []byte, 1)
			go func() {
				_ = conn.SetReadDeadline(time.Now().Add(readTimeout + 5*time.Second))
				b, _ := io.ReadAll(conn) // until the server closes the connection
				answered <- b
			}()
			head := "POST /_sessiongate/webhooks/clerk HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n" +
				"svix-id: msg_slow\r\nsvix-timestamp: " + fmt.Sprint(now.Unix()) + "\r\n" +
				"svix-signature: " + wellFormedSignature(t, "msg_slow", now) + "\r\nContent-Length: 4096\r\n\r\n{\"type\""
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			var answer []byte
			if tc.every == 0 {
				answer = <-answered
			} else {
				ticker := time.NewTicker(tc.every)
				defer ticker.Stop()
			loop:
				for {
					select {
					case answer = <-answered:
						break loop
					case <-ticker.C:
						if _, err := io.WriteString(conn, " "); err != nil {
							answer = <-answered
							break loop
						}
					}
				}
			}
			took := time.Since(start)
			if len(answer) == 0 {
				t.Fatalf("no answer and no disconnect within %s", took.Round(time.Millisecond))
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil)
			if err != nil {
				t.Fatalf("answer %q: %v", answer, err)
			}
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", resp.StatusCode)
			}
			// Generous: the bound tells the read deadline from no deadline
			// (the reader gives up at readTimeout + 5 s).
			if took > readTimeout+4*time.Second {
				t.Errorf("the slow sender held the handler %s (read deadline %s)", took, readTimeout)
			}
			t.Logf("%s body: answered %s and disconnected after %s", tc.name, resp.Status, took.Round(time.Millisecond))
		})
	}
}
