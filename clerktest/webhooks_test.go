package clerktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/webhook"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// webhookSink verifies deliveries with webhook.NewVerifier and keeps the
// verified bodies.
type webhookSink struct {
	t        *testing.T
	verifier *webhook.Verifier
	mu       sync.Mutex
	bodies   [][]byte
	ids      []string
}

func newWebhookSink(t *testing.T, now func() time.Time) (*webhookSink, string) {
	v, err := webhook.NewVerifier(testWebhookSecret, now)
	if err != nil {
		t.Fatal(err)
	}
	s := &webhookSink{t: t, verifier: v}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/hooks"
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, err := s.verifier.Verify(r.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.ids = append(s.ids, id)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func TestSendWebhook(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	sink, url := newWebhookSink(t, clk.Now)
	sid := inst.CreateSession("user_w")
	if err := inst.SetSessionStatus(sid, "revoked"); err != nil {
		t.Fatal(err)
	}

	resp, err := inst.SendWebhook(t.Context(), url, testWebhookSecret, "session.revoked", sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delivery: %d", resp.StatusCode)
	}
	var ev struct {
		Object     string          `json:"object"`
		Type       string          `json:"type"`
		Timestamp  int64           `json:"timestamp"`
		InstanceID string          `json:"instance_id"`
		Data       json.RawMessage `json:"data"`
	}
	sink.mu.Lock()
	first := sink.bodies[0]
	sink.mu.Unlock()
	if err := json.Unmarshal(first, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Object != "event" || ev.Type != "session.revoked" || ev.Timestamp != clk.Now().UnixMilli() ||
		ev.InstanceID != inst.InstanceID() || len(ev.InstanceID) != len("ins_")+idLen {
		t.Errorf("event %s", first)
	}
	// data is the Session as the Backend API returns it, spec-valid.
	s := spec(t)
	if err := s.visit(s.session, ev.Data); err != nil {
		t.Errorf("data is not a Session: %v\n%s", err, ev.Data)
	}
	var data apiSession
	_ = json.Unmarshal(ev.Data, &data)
	if data.ID != sid || data.UserID != "user_w" || data.Status != "revoked" {
		t.Errorf("data %s", ev.Data)
	}

	// Each delivery has its own message id.
	resp, err = inst.SendWebhook(t.Context(), url, testWebhookSecret, "session.created", sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sink.mu.Lock()
	if len(sink.ids) != 2 || sink.ids[0] == sink.ids[1] {
		t.Errorf("message ids %v", sink.ids)
	}
	sink.mu.Unlock()

	if _, err := inst.SendWebhook(t.Context(), url, testWebhookSecret, "session.ended", "sess_unknown"); err == nil {
		t.Error("webhook for an unknown session")
	}
	if _, err := inst.WebhookRequest(t.Context(), url, testWebhookSecret, "", sid); err == nil {
		t.Error("webhook without a type")
	}
	if _, err := inst.WebhookRequest(t.Context(), url, "not-a-secret", "session.ended", sid); err == nil {
		t.Error("webhook with a malformed secret")
	}
}

func TestWebhookRequestTampering(t *testing.T) {
	clk := newTestClock()
	inst := start(t, Options{Now: clk.Now})
	sid := inst.CreateSession("")
	v, err := webhook.NewVerifier(testWebhookSecret, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	build := func() (*http.Request, []byte) {
		t.Helper()
		req, err := inst.WebhookRequest(t.Context(), "http://127.0.0.1:1/hooks", testWebhookSecret, "session.ended", sid)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %v", req.Method, req.Header)
		}
		body, _ := io.ReadAll(req.Body)
		return req, body
	}

	req, body := build()
	if _, err := v.Verify(req.Header, body); err != nil {
		t.Fatalf("untouched request: %v", err)
	}
	req, body = build()
	if _, err := v.Verify(req.Header, bytes.Replace(body, []byte(`"session.ended"`), []byte(`"session.created"`), 1)); err == nil {
		t.Error("tampered body verified")
	}
	req, body = build()
	req.Header.Set("svix-id", "msg_other")
	if _, err := v.Verify(req.Header, body); err == nil {
		t.Error("tampered id verified")
	}
	req, body = build()
	req.Header.Del("svix-signature")
	if _, err := v.Verify(req.Header, body); err == nil {
		t.Error("unsigned request verified")
	}
	other, _ := webhook.NewVerifier("whsec_"+"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", clk.Now)
	req, body = build()
	if _, err := other.Verify(req.Header, body); err == nil {
		t.Error("verified with another secret")
	}
	req, body = build()
	clk.Advance(webhook.Tolerance + time.Second)
	if _, err := v.Verify(req.Header, body); err == nil {
		t.Error("stale delivery verified")
	}
}

func TestWebhookRevokesThroughHandler(t *testing.T) {
	inst := start(t, Options{})
	sid := inst.CreateSession("")
	v, err := webhook.NewVerifier(testWebhookSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	var revoked []string
	var mu sync.Mutex
	h := &webhook.Handler{Verifier: v, Revoke: func(s string) { mu.Lock(); revoked = append(revoked, s); mu.Unlock() }}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, typ := range []string{"session.created", "session.revoked"} {
		resp, err := inst.SendWebhook(t.Context(), srv.URL, testWebhookSecret, typ, sid)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", typ, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revoked) != 1 || revoked[0] != sid {
		t.Errorf("revoked %v", revoked)
	}
}
