package clerktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sessiongate/sessiongate/webhook"
)

// webhookEvent is the envelope of a Clerk webhook event.
type webhookEvent struct {
	Object     string      `json:"object"`
	Type       string      `json:"type"`
	Timestamp  int64       `json:"timestamp"` // Unix ms
	InstanceID string      `json:"instance_id"`
	Data       sessionJSON `json:"data"`
}

// WebhookRequest builds, without sending, the request Clerk (through Svix)
// makes to deliver a session event: POST url with body
// {"object":"event","type":eventType,"timestamp":<ms>,"instance_id":"ins_…",
// "data":<the session as the Backend API returns it>} and the svix-id,
// svix-timestamp and svix-signature headers, signed with secret ("whsec_…")
// at the instance clock's now. Tests that need a tampered delivery change the
// request (its body is r.GetBody-able) before sending it.
func (i *Instance) WebhookRequest(ctx context.Context, url, secret, eventType, sessionID string) (*http.Request, error) {
	s, ok := i.sessions.get(sessionID)
	if !ok {
		return nil, fmt.Errorf("clerktest: webhook: no session %s", sessionID)
	}
	if eventType == "" {
		return nil, fmt.Errorf("clerktest: webhook: empty event type")
	}
	now := i.now()
	body, err := json.Marshal(webhookEvent{
		Object:     "event",
		Type:       eventType,
		Timestamp:  now.UnixMilli(),
		InstanceID: i.InstanceID(),
		Data:       i.effective(s).toJSON(),
	})
	if err != nil {
		return nil, fmt.Errorf("clerktest: webhook: %w", err)
	}
	msgID := newID("msg")
	sig, err := webhook.Sign(secret, msgID, now, body)
	if err != nil {
		return nil, fmt.Errorf("clerktest: webhook: sign: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("clerktest: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Svix-Webhooks/1.0 (clerktest)")
	req.Header.Set("svix-id", msgID)
	req.Header.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("svix-signature", sig)
	return req, nil
}

// SendWebhook sends the request WebhookRequest builds with
// http.DefaultClient and returns the response; the caller closes its body.
func (i *Instance) SendWebhook(ctx context.Context, url, secret, eventType, sessionID string) (*http.Response, error) {
	req, err := i.WebhookRequest(ctx, url, secret, eventType, sessionID)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}
