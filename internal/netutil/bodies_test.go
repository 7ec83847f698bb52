package netutil

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// TestBoundBodies: the read deadline is set only where a body is announced
// (a length or chunked) on a path under the prefix, timeout from now; other
// paths never get one. Connection: close is added only for an unread path
// with a body, and only on HTTP/1 (HTTP/2 forbids the header). The next
// handler is called in every case.
func TestBoundBodies(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	var served int
	h := BoundBodies(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }),
		"/_reserved/", timeout, "/_reserved/auth")
	for _, tc := range []struct {
		method, path, body string
		chunked            bool
		http2              bool
		deadline, close    bool
	}{
		{"GET", "/_reserved/auth", "", false, false, false, false},
		{"POST", "/_reserved/auth", "x", false, false, true, true},
		{"POST", "/_reserved/auth", "x", true, false, true, true},
		{"POST", "/_reserved/auth", "x", false, true, true, false},
		{"POST", "/_reserved/auth/x", "x", false, false, true, false},
		{"POST", "/_reserved/hook", "{}", false, false, true, false},
		{"POST", "/_reserved/hook", "", false, false, false, false},
		{"POST", "/_reserved", "x", false, false, false, false},
		{"POST", "/upload", "a long upload", false, false, false, false},
		{"POST", "/upload", "a long upload", true, false, false, false},
	} {
		name := fmt.Sprintf("%s %s body=%q chunked=%v http2=%v", tc.method, tc.path, tc.body, tc.chunked, tc.http2)
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.body == "" {
			r = httptest.NewRequest(tc.method, tc.path, nil)
		}
		if tc.chunked {
			r.ContentLength = -1
		}
		if tc.http2 {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		}
		w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
		before := time.Now()
		served = 0
		h.ServeHTTP(w, r)
		after := time.Now()
		if served != 1 {
			t.Errorf("%s: next served %d times", name, served)
		}
		switch {
		case !tc.deadline && len(w.deadlines) != 0:
			t.Errorf("%s: read deadlines %v set, want none", name, w.deadlines)
		case tc.deadline && len(w.deadlines) != 1:
			t.Errorf("%s: %d read deadlines set, want 1", name, len(w.deadlines))
		case tc.deadline:
			if d := w.deadlines[0]; d.Before(before.Add(timeout)) || d.After(after.Add(timeout)) {
				t.Errorf("%s: read deadline %s from now, want %s", name, d.Sub(before), timeout)
			}
		}
		if got := w.Header().Get("Connection") == "close"; got != tc.close {
			t.Errorf("%s: Connection: close %v, want %v", name, got, tc.close)
		}
	}
}
