package jsonresp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		b          ErrorBody
		body       string
		authReason string
	}{
		{"with a reason", ErrorBody{Error: "bad_request", Reason: "path-not-clean", Message: "m"},
			`{"error":"bad_request","reason":"path-not-clean","message":"m"}` + "\n", "path-not-clean"},
		{"without a reason", ErrorBody{Error: "not_found", Message: "no route"},
			`{"error":"not_found","message":"no route"}` + "\n", ""},
		{"with clerk_error", ErrorBody{Error: "forbidden", Reason: "reverification-required", Message: "m", ClerkError: map[string]string{"type": "forbidden"}},
			`{"error":"forbidden","reason":"reverification-required","message":"m","clerk_error":{"type":"forbidden"}}` + "\n", "reverification-required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, http.StatusTeapot, tc.b)
			if rec.Code != http.StatusTeapot || rec.Body.String() != tc.body {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), http.StatusTeapot, tc.body)
			}
			h := rec.Header()
			for k, want := range map[string]string{
				"Content-Type": "application/json", "Cache-Control": "no-store",
				"X-Content-Type-Options": "nosniff", "X-Clerk-Auth-Reason": tc.authReason,
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, map[string]string{"status": "ok"})
	if rec.Body.String() != `{"status":"ok"}`+"\n" || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "" {
		t.Fatalf("got %q %v", rec.Body.String(), rec.Header())
	}
}
