package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/webhook"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestSvixDocumentedVector checks against the example in Svix's
// "verifying webhooks manually" documentation.
func TestSvixDocumentedVector(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1614265330, 0)
	v, err := webhook.NewVerifier(secret, func() time.Time { return ts })
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("svix-timestamp", "1614265330")
	h.Set("svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	if _, err := v.Verify(h, []byte(`{"test": 2432232314}`)); err != nil {
		t.Fatalf("documented vector: %v", err)
	}
}

// sign computes a signature independently of the package.
func sign(t *testing.T, sec, id string, ts int64, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	body := `{"type":"session.revoked","data":{"id":"sess_1"}}`
	good := sign(t, secret, "msg_1", now.Unix(), body)
	other := sign(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), "msg_1", now.Unix(), body)
	cases := []struct {
		name      string
		id, ts    string
		sig, body string
		want      error
	}{
		{"valid", "msg_1", fmt.Sprint(now.Unix()), good, body, nil},
		{"wrong secret", "msg_1", fmt.Sprint(now.Unix()), other, body, webhook.ErrNoValidSignature},
		{"body changed", "msg_1", fmt.Sprint(now.Unix()), good, body + " ", webhook.ErrNoValidSignature},
		{"id changed", "msg_2", fmt.Sprint(now.Unix()), good, body, webhook.ErrNoValidSignature},
		{"stale timestamp", "msg_1", fmt.Sprint(now.Add(-6 * time.Minute).Unix()), sign(t, secret, "msg_1", now.Add(-6*time.Minute).Unix(), body), body, webhook.ErrTimestampTooOld},
		{"future timestamp", "msg_1", fmt.Sprint(now.Add(6 * time.Minute).Unix()), sign(t, secret, "msg_1", now.Add(6*time.Minute).Unix(), body), body, webhook.ErrTimestampTooNew},
		{"4 minutes old", "msg_1", fmt.Sprint(now.Add(-4 * time.Minute).Unix()), sign(t, secret, "msg_1", now.Add(-4*time.Minute).Unix(), body), body, nil},
		{"malformed timestamp", "msg_1", "12a", good, body, webhook.ErrBadTimestamp},
		{"malformed signature header", "msg_1", fmt.Sprint(now.Unix()), "garbage", body, webhook.ErrNoValidSignature},
		{"not base64", "msg_1", fmt.Sprint(now.Unix()), "v1,@@@", body, webhook.ErrNoValidSignature},
		{"wrong version", "msg_1", fmt.Sprint(now.Unix()), strings.Replace(good, "v1,", "v2,", 1), body, webhook.ErrNoValidSignature},
		{"several, one valid", "msg_1", fmt.Sprint(now.Unix()), other + " v1a,xyz " + good, body, nil},
		{"missing id", "", fmt.Sprint(now.Unix()), good, body, webhook.ErrMissingHeaders},
		{"missing signature", "msg_1", fmt.Sprint(now.Unix()), "", body, webhook.ErrMissingHeaders},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.id != "" {
			h.Set("svix-id", tc.id)
		}
		h.Set("svix-timestamp", tc.ts)
		if tc.sig != "" {
			h.Set("svix-signature", tc.sig)
		}
		_, err := v.Verify(h, []byte(tc.body))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestNewVerifierRefusesBadSecrets(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_***"} {
		if _, err := webhook.NewVerifier(s, nil); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

type recorder struct {
	mu   sync.Mutex
	sids []string
}

func (r *recorder) revoke(sid string) { r.mu.Lock(); r.sids = append(r.sids, sid); r.mu.Unlock() }

func TestHandler(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	rec := &recorder{}
	h := &webhook.Handler{Verifier: v, Revoke: rec.revoke}
	post := func(id, body string, mutate func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", strings.NewReader(body))
		r.Header.Set("svix-id", id)
		r.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
		r.Header.Set("svix-signature", sign(t, secret, id, now.Unix(), body))
		if mutate != nil {
			mutate(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	ev := func(typ, sid string) string {
		b, _ := json.Marshal(map[string]any{"type": typ, "object": "event", "data": map[string]any{"object": "session", "id": sid, "status": "revoked"}})
		return string(b)
	}
	for i, typ := range []string{"session.revoked", "session.ended", "session.removed"} {
		if w := post(fmt.Sprintf("msg_r%d", i), ev(typ, fmt.Sprintf("sess_%d", i)), nil); w.Code != 200 {
			t.Fatalf("%s: %d %s", typ, w.Code, w.Body)
		}
	}
	if w := post("msg_c", ev("session.created", "sess_new"), nil); w.Code != 200 {
		t.Fatalf("session.created: %d", w.Code)
	}
	// A replay of an applied message is acknowledged and ignored.
	if w := post("msg_r0", ev("session.revoked", "sess_0"), nil); w.Code != 200 || !strings.Contains(w.Body.String(), "duplicate") {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
	// A bad signature changes nothing.
	w := post("msg_bad", ev("session.revoked", "sess_bad"), func(r *http.Request) { r.Header.Set("svix-signature", "v1,AAAA") })
	if w.Code != 400 || !strings.Contains(w.Body.String(), "webhook-signature-invalid") {
		t.Fatalf("bad signature: %d %s", w.Code, w.Body)
	}
	if w := post("msg_x", `{"type":"session.revoked","data":{"id":"not-a-session"}}`, nil); w.Code != 400 {
		t.Fatalf("bad payload: %d", w.Code)
	}
	if w := post("msg_big", strings.Repeat("a", webhook.MaxBody+1), nil); w.Code != 413 {
		t.Fatalf("oversized body: %d", w.Code)
	}
	r := httptest.NewRequest("GET", "/_sessiongate/webhooks/clerk", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Fatalf("GET: %d", w.Code)
	}
	want := []string{"sess_0", "sess_1", "sess_2"}
	if fmt.Sprint(rec.sids) != fmt.Sprint(want) {
		t.Fatalf("revoked %v, want %v", rec.sids, want)
	}
}

func TestSignRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sig, err := webhook.Sign(secret, "msg_9", now, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	h := http.Header{"Webhook-Id": {"msg_9"}, "Webhook-Timestamp": {fmt.Sprint(now.Unix())}, "Webhook-Signature": {sig}}
	if _, err := v.Verify(h, []byte("{}")); err != nil {
		t.Fatalf("Standard Webhooks header names: %v", err)
	}
}

// TestHandlerRevokeContext: RevokeContext, when set, is called instead of
// Revoke, with the request's context (what it carries, such as the request
// id, reaches the revocation's log lines).
func TestHandlerRevokeContext(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	var got []string
	h := &webhook.Handler{Verifier: v,
		Revoke: func(sid string) { t.Errorf("Revoke(%s) called with RevokeContext set", sid) },
		RevokeContext: func(ctx context.Context, sid string) {
			got = append(got, logctx.RequestID(ctx)+" "+sid)
		}}
	body := `{"type":"session.revoked","object":"event","data":{"object":"session","id":"sess_1"}}`
	r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", strings.NewReader(body))
	r = r.WithContext(logctx.WithRequestID(r.Context(), "req-5"))
	r.Header.Set("svix-id", "msg_1")
	r.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
	r.Header.Set("svix-signature", sign(t, secret, "msg_1", now.Unix(), body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || len(got) != 1 || got[0] != "req-5 sess_1" {
		t.Fatalf("%d %s; RevokeContext calls %q, want [\"req-5 sess_1\"]", w.Code, w.Body, got)
	}
}

// ctxSeen is a ContextSeen that records the request ids it is given.
type ctxSeen struct{ ids []string }

func (s *ctxSeen) Claim(string, time.Duration) bool { s.ids = append(s.ids, "Claim"); return true }
func (s *ctxSeen) ClaimContext(ctx context.Context, _ string, _ time.Duration) bool {
	s.ids = append(s.ids, logctx.RequestID(ctx))
	return true
}

// TestHandlerGivesAContextSeenTheRequest: a Seen that takes a context
// (a shared one, which logs when Redis fails) gets the webhook request's.
func TestHandlerGivesAContextSeenTheRequest(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v, _ := webhook.NewVerifier(secret, func() time.Time { return now })
	seen := &ctxSeen{}
	h := &webhook.Handler{Verifier: v, Seen: seen, Revoke: func(string) {}}
	body := `{"type":"session.created","object":"event","data":{"object":"session","id":"sess_1"}}`
	r := httptest.NewRequest("POST", "/_sessiongate/webhooks/clerk", strings.NewReader(body))
	r = r.WithContext(logctx.WithRequestID(r.Context(), "req-6"))
	r.Header.Set("svix-id", "msg_1")
	r.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
	r.Header.Set("svix-signature", sign(t, secret, "msg_1", now.Unix(), body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || len(seen.ids) != 1 || seen.ids[0] != "req-6" {
		t.Fatalf("%d %s; claims %q, want [\"req-6\"]", w.Code, w.Body, seen.ids)
	}
}
