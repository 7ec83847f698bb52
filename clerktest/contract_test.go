package clerktest

import (
	"net/http"
	"strings"
	"testing"
)

// The checks themselves must catch what they are for.

func TestContractCheckerCatchesBadResponses(t *testing.T) {
	s := spec(t)
	const sess = `{"object":"session","id":"sess_1","user_id":"user_1","client_id":"client_1","actor":null,"status":"active","last_active_organization_id":null,"last_active_at":1,"expire_at":2,"abandon_at":3,"updated_at":4,"created_at":5,"tasks":null}`
	const errs = `{"errors":[{"message":"m","long_message":"l","code":"c","meta":{}}],"clerk_trace_id":"t"}`
	json := http.Header{"Content-Type": {"application/json"}}
	cases := []struct {
		method, path string
		status       int
		body         string
		ok           bool
	}{
		{"GET", "/v1/sessions/sess_1", 200, sess, true},
		{"GET", "/v1/sessions/sess_1", 200, strings.Replace(sess, `"tasks":null`, `"tasks":null,"extra":1`, 1), false},
		{"GET", "/v1/sessions/sess_1", 200, strings.Replace(sess, `"status":"active"`, `"status":"gone"`, 1), false},
		{"GET", "/v1/sessions/sess_1", 200, strings.Replace(sess, `"expire_at":2,`, ``, 1), false},
		{"GET", "/v1/sessions/sess_1", 404, errs, true},
		{"GET", "/v1/sessions/sess_1", 404, `{"error":"not found"}`, false},
		{"GET", "/v1/sessions/sess_1", 401, `{"errors":[{"message":"m"}]}`, false},
		{"GET", "/v1/sessions?user_id=u", 200, "[" + sess + "]", true},
		{"GET", "/v1/sessions?user_id=u", 200, `{"data":[],"total_count":0}`, false},
		{"GET", "/v1/sessions?user_id=u&paginated=true", 200, `{"data":[` + sess + `],"total_count":1}`, true},
		{"GET", "/v1/sessions?user_id=u&paginated=true", 200, `{"data":null,"total_count":1}`, false},
		{"GET", "/v1/sessions?user_id=u&paginated=true", 200, `[` + sess + `]`, false},
		{"GET", "/v1/sessions?user_id=u", 422, errs, true},
		{"POST", "/v1/sessions/sess_1/tokens", 200, `{"object":"token","jwt":"x"}`, true},
		{"POST", "/v1/sessions/sess_1/tokens", 200, `{"object":"jwt","jwt":"x"}`, false},
		{"POST", "/v1/sessions/sess_1/tokens", 429, `<html>`, false},
		{"POST", "/v1/sessions/sess_1/verify", 410, errs, true},
		{"POST", "/v1/sessions/sess_1/verify", 410, `{}`, false},
		{"GET", HandshakePayloadPath + "?nonce=n", 200, `{"directives":["a"]}`, true},
		{"GET", HandshakePayloadPath + "?nonce=n", 200, `{"directives":"a"}`, false},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(tc.method, "http://127.0.0.1"+tc.path, nil)
		_, err := s.checkResponse(r, nil, tc.status, json, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s %d %s: err %v, want ok=%v", tc.method, tc.path, tc.status, tc.body, err, tc.ok)
		}
	}
}

func TestContractCheckerCatchesBadRequests(t *testing.T) {
	chk := &requestChecker{tb: t, spec: spec(t)}
	const key = "Bearer sk_test_abc"
	cases := []struct {
		method, path, auth, body string
		ok                       bool
	}{
		{"GET", "/v1/sessions?user_id=u&paginated=true&limit=10", key, "", true},
		{"GET", "/v1/sessions?user_id=u", "", "", false},
		{"GET", "/v1/sessions?user_id=u", "Basic abc", "", false},
		{"GET", "/v1/sessions?user_id=u&limit=0", key, "", false},
		{"GET", "/v1/sessions?user_id=u&limit=501", key, "", false},
		{"GET", "/v1/sessions?user_id=u&status=pending", key, "", false},
		{"GET", "/v1/sessions?user_id=u&paginated=yes", key, "", false},
		{"GET", "/v1/sessions?user_id=u&page=2", key, "", false},
		{"GET", "/v1/sessions?user_id=u", key, `{}`, false},
		{"POST", "/v1/sessions/sess_1/tokens", key, `{"expires_in_seconds":60}`, true},
		{"POST", "/v1/sessions/sess_1/tokens/tpl", key, `{"expires_in_seconds":null}`, true},
		{"POST", "/v1/sessions/sess_1/tokens", key, `{"expires_in_seconds":5}`, false},
		{"POST", "/v1/sessions/sess_1/tokens", key, `{"expires_in_seconds":"60"}`, false},
		{"POST", "/v1/sessions/sess_1/revoke", key, "", true},
		{"POST", "/v1/sessions/sess_1/revoke", key, `{"x":1}`, false},
		{"POST", "/v1/sessions/sess_1/verify", key, `{"token":"t"}`, true},
		{"POST", "/v1/sessions/sess_1/verify", key, `null`, false},
		{"POST", "/v1/sessions/sess_1/verify", key, `{"token":"t","x":1}`, false},
		{"GET", HandshakePayloadPath + "?nonce=n", key, "", true},
		{"GET", HandshakePayloadPath, key, "", false},
		{"DELETE", "/v1/sessions/sess_1", key, "", false},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(tc.method, "http://127.0.0.1"+tc.path, strings.NewReader(tc.body))
		r.Header.Set("Clerk-API-Version", "2026-05-12")
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if tc.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if _, err := chk.check(r, []byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("%s %s %q: err %v, want ok=%v", tc.method, tc.path, tc.body, err, tc.ok)
		}
	}
}
