// Package webhook verifies Clerk's Svix-signed webhooks and turns session
// events into deny-list entries.
//
// The signature scheme is Svix's (Standard Webhooks): the secret is
// "whsec_" + base64(key); the signed content is "{id}.{timestamp}.{body}";
// the signature header holds space-separated "v1,<base64 HMAC-SHA256>"
// entries, any one of which may match (secret rotation); timestamps more
// than 5 minutes from now either way are refused; comparisons are constant
// time. A message id seen before (within the tolerance window) is ignored.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Verification errors. The handler answers each with 400 and the error's
// reason; nothing is applied.
var (
	ErrMissingHeaders   = errors.New("webhook: missing svix-id, svix-timestamp or svix-signature")
	ErrBadTimestamp     = errors.New("webhook: malformed timestamp")
	ErrTimestampTooOld  = errors.New("webhook: timestamp too old")
	ErrTimestampTooNew  = errors.New("webhook: timestamp too new")
	ErrNoValidSignature = errors.New("webhook: no matching signature")
)

// Tolerance is how far a timestamp may be from now, either way.
const Tolerance = 5 * time.Minute

// Verifier checks signatures with one secret.
type Verifier struct {
	key []byte
	now func() time.Time
}

// NewVerifier parses a "whsec_…" secret. now nil means time.Now.
func NewVerifier(secret string, now func() time.Time) (*Verifier, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("webhook: the signing secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook: the signing secret is not base64 after whsec_")
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{key: key, now: now}, nil
}

// Verify checks the headers against body and returns the message id.
// It accepts the svix-* headers and their webhook-* (Standard Webhooks)
// equivalents.
func (v *Verifier) Verify(h http.Header, body []byte) (string, error) {
	id, ts, sigs := header(h, "svix-id", "webhook-id"), header(h, "svix-timestamp", "webhook-timestamp"), header(h, "svix-signature", "webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "", ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", ErrBadTimestamp
	}
	now := v.now()
	t := time.Unix(sec, 0)
	if now.Sub(t) > Tolerance {
		return "", ErrTimestampTooOld
	}
	if t.Sub(now) > Tolerance {
		return "", ErrTimestampTooNew
	}
	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, …) are not HMAC
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return id, nil
		}
	}
	return "", ErrNoValidSignature
}

func header(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// Sign returns the svix-signature value for a message: for tests and for
// the fake Clerk instance, which sends signed webhooks.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	v, err := NewVerifier(secret, nil)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, v.key)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Seen records processed message ids. Claim reports whether id is new and
// marks it; a shared implementation de-duplicates across replicas.
type Seen interface {
	Claim(id string, ttl time.Duration) bool
}

// MemorySeen is a bounded in-process Seen.
type MemorySeen struct {
	now func() time.Time
	max int

	mu  sync.Mutex // guards following
	ids map[string]time.Time
}

// NewMemorySeen returns a Seen holding at most max ids (0: 100,000).
func NewMemorySeen(max int, now func() time.Time) *MemorySeen {
	if max <= 0 {
		max = 100_000
	}
	if now == nil {
		now = time.Now
	}
	return &MemorySeen{now: now, max: max, ids: make(map[string]time.Time)}
}

// Claim implements Seen.
func (m *MemorySeen) Claim(id string, ttl time.Duration) bool {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.ids[id]; ok && now.Before(until) {
		return false
	}
	if len(m.ids) >= m.max {
		for k, until := range m.ids {
			if !now.Before(until) {
				delete(m.ids, k)
			}
		}
		if len(m.ids) >= m.max {
			// Still full of live ids: forget an arbitrary one rather than
			// refuse events. A replay of it would be re-applied, which is
			// harmless for deny-list events (idempotent).
			for k := range m.ids {
				delete(m.ids, k)
				break
			}
		}
	}
	m.ids[id] = now.Add(ttl)
	return true
}

// Events that revoke a session.
var revokingEvents = map[string]bool{"session.revoked": true, "session.ended": true, "session.removed": true}

// Handler serves POST /_sessiongate/webhooks/clerk.
type Handler struct {
	// Verifier checks signatures. Required.
	Verifier *Verifier
	// Seen de-duplicates message ids. Nil: a MemorySeen.
	Seen Seen
	// Revoke is called with the session id of every revoking event.
	Revoke func(sid string)
	// Logger. Nil: nop.
	Logger *zap.Logger

	once sync.Once
	seen Seen
}

// MaxBody is the largest webhook body accepted.
const MaxBody = 1 << 20

type event struct {
	Type string `json:"type"`
	Data struct {
		Object string `json:"object"`
		ID     string `json:"id"`
	} `json:"data"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, "method_not_allowed", "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		reply(w, http.StatusBadRequest, "bad_request", "webhook-body-unreadable")
		return
	}
	if len(body) > MaxBody {
		reply(w, http.StatusRequestEntityTooLarge, "bad_request", "webhook-body-too-large")
		return
	}
	id, err := h.Verifier.Verify(r.Header, body)
	if err != nil {
		reason := "webhook-signature-invalid"
		switch {
		case errors.Is(err, ErrMissingHeaders):
			reason = "webhook-headers-missing"
		case errors.Is(err, ErrBadTimestamp), errors.Is(err, ErrTimestampTooOld), errors.Is(err, ErrTimestampTooNew):
			reason = "webhook-timestamp-invalid"
		}
		log.Warn("webhook refused", zap.String("reason", reason), zap.Error(err))
		reply(w, http.StatusBadRequest, "bad_request", reason)
		return
	}
	h.once.Do(func() {
		h.seen = h.Seen
		if h.seen == nil {
			h.seen = NewMemorySeen(0, nil)
		}
	})
	// Ids are kept for twice the tolerance: a replay older than that fails
	// the timestamp check anyway.
	if !h.seen.Claim(id, 2*Tolerance) {
		log.Info("webhook replay ignored", zap.String("svix_id", sanitize(id)))
		reply(w, http.StatusOK, "", "duplicate")
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		reply(w, http.StatusBadRequest, "bad_request", "webhook-payload-invalid")
		return
	}
	if revokingEvents[ev.Type] {
		if !strings.HasPrefix(ev.Data.ID, "sess_") {
			reply(w, http.StatusBadRequest, "bad_request", "webhook-payload-invalid")
			return
		}
		h.Revoke(ev.Data.ID)
		log.Info("session revoked by webhook", zap.String("event", ev.Type), zap.String("sid", sanitize(ev.Data.ID)))
	}
	reply(w, http.StatusOK, "", "")
}

func reply(w http.ResponseWriter, status int, code, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	body := map[string]any{"ok": status == http.StatusOK}
	if code != "" {
		body["error"] = code
	}
	if reason != "" {
		body["reason"] = reason
	}
	b, _ := json.Marshal(body)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
