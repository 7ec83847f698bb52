package clerkapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is distinctive so a leak is easy to grep for.
const testKey = "sk_test_LEAKCANARY7f3c9e2bQx"

// recorded is one request as the fake server saw it.
type recorded struct {
	Method   string
	Path     string // escaped
	RawQuery string
	Header   http.Header
	Body     string
}

// fakeAPI is an httptest server whose handler is given per test; it records
// every request and never asserts inside the handler goroutine.
type fakeAPI struct {
	srv *httptest.Server

	mu    sync.Mutex // guards following
	reqs  []recorded
	waits []time.Duration
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeAPI) sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// handlerFunc answers attempt n (0-based, counted over the server's life).
type handlerFunc func(w http.ResponseWriter, r *http.Request, n int)

// newFake starts a server and a Client pointed at it. The Client sleeps
// without waiting (recording each wait) and backs off attempt×1ms.
func newFake(t testing.TB, h handlerFunc, mod func(*Config)) (*Client, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		f.mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(f.srv.Close)
	cfg := Config{
		SecretKey: testKey,
		APIURL:    f.srv.URL,
		Backoff:   func(a int) time.Duration { return time.Duration(a) * time.Millisecond },
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.mu.Lock()
			f.waits = append(f.waits, d)
			f.mu.Unlock()
			return ctx.Err()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, f
}

// reply writes status and a JSON body.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// fixed answers every attempt the same.
func fixed(status int, body string) handlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { reply(w, status, body) }
}

const sessionJSON = `{"object":"session","id":"sess_123","user_id":"user_1","client_id":"client_1",` +
	`"actor":null,"status":"active","last_active_organization_id":null,"last_active_at":1700000000000,` +
	`"latest_activity":{"object":"session_activity","id":"sess_activity_1","is_mobile":false,"browser_name":"Chrome"},` +
	`"expire_at":1700604800000,"abandon_at":1702592000000,"updated_at":1700000000001,"created_at":1699999999999,` +
	`"tasks":null,"a_field_clerk_added_later":{"x":1}}`

func sessionsJSON(from, n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.Replace(sessionJSON, `"sess_123"`, `"sess_`+strconv.Itoa(from+i)+`"`, 1))
	}
	b.WriteByte(']')
	return b.String()
}
