// Package webhook verifies Clerk's Svix-signed webhooks and turns session
// events into deny-list entries.
//
// The signature scheme is Svix's (Standard Webhooks): the secret is
// "whsec_" + base64(key); the signed content is "{id}.{timestamp}.{body}";
// the signature header holds space-separated "v1,<base64 HMAC-SHA256>"
// entries, any one of which may match (secret rotation); timestamps more
// than 5 minutes from now either way are refused; comparisons are constant
// time. A message id seen before (within the tolerance window) is ignored.
//
// The Handler checks everything the headers decide before it reads the
// body, then reads at most MaxBody bytes within its ReadTimeout: a sender
// without the secret can hold little, for little time.
//
// Stability: this package's API follows the semantic versioning of the
// module github.com/sessiongate/sessiongate: from v1.0.0 on, an incompatible
// change to it comes only with a new major version. Minor releases may add
// identifiers, methods and struct fields.
package webhook

import (
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/jsonresp"
	"github.com/sessiongate/sessiongate/internal/logctx"
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
	d, err := v.parse(h)
	if err != nil {
		return "", err
	}
	if err := v.check(d, body); err != nil {
		return "", err
	}
	return d.id, nil
}

// delivery is what the headers of a delivery say, checked offline.
type delivery struct {
	id, ts string
	sigs   [][]byte // the v1 signatures, decoded, each sha256.Size long
}

// parse checks everything the headers alone decide: all three present, the
// timestamp well-formed and within Tolerance, at least one v1 signature of
// the right length. It is cheap (linear in the headers) and runs before
// the body is read.
func (v *Verifier) parse(h http.Header) (delivery, error) {
	d := delivery{id: header(h, "svix-id", "webhook-id"), ts: header(h, "svix-timestamp", "webhook-timestamp")}
	sigs := header(h, "svix-signature", "webhook-signature")
	if d.id == "" || d.ts == "" || sigs == "" {
		return d, ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(d.ts, 10, 64)
	if err != nil {
		return d, ErrBadTimestamp
	}
	now := v.now()
	t := time.Unix(sec, 0)
	if now.Sub(t) > Tolerance {
		return d, ErrTimestampTooOld
	}
	if t.Sub(now) > Tolerance {
		return d, ErrTimestampTooNew
	}
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a, …) are not HMAC
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(got) != sha256.Size {
			continue // could never match
		}
		d.sigs = append(d.sigs, got)
	}
	if len(d.sigs) == 0 {
		return d, ErrNoValidSignature
	}
	return d, nil
}

// check verifies d's signatures over body in constant time.
func (v *Verifier) check(d delivery, body []byte) error {
	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(d.id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(d.ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	for _, got := range d.sigs {
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoValidSignature
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
	// Claim reports whether id is new and, if it is, marks it seen for
	// ttl.
	Claim(id string, ttl time.Duration) bool
}

// ContextSeen is a Seen that the Handler also gives the webhook request's
// context (for what it carries, such as the request id of the lines it
// logs; the Handler calls ClaimContext instead of Claim).
type ContextSeen interface {
	Seen
	// ClaimContext is Claim with the webhook request's context, for the
	// values it carries.
	ClaimContext(ctx context.Context, id string, ttl time.Duration) bool
}

// claim is s.Claim, or ClaimContext with ctx when s takes one.
func claim(ctx context.Context, s Seen, id string, ttl time.Duration) bool {
	if cs, ok := s.(ContextSeen); ok {
		return cs.ClaimContext(ctx, id, ttl)
	}
	return s.Claim(id, ttl)
}

// MemorySeen is a bounded in-process Seen. Each Claim costs O(log n) in
// the number of ids held: ids are kept in a map and in a heap ordered by
// expiry, so expired ids are dropped from the top of the heap as they come
// due, and a full set of live ids forgets the one that expires first (with
// the Handler's constant TTL, the oldest) instead of refusing the claim.
type MemorySeen struct {
	now func() time.Time
	max int

	mu       sync.Mutex // guards following
	ids      map[string]*seenID
	byExpiry expiryHeap
}

// seenID is one claimed id.
type seenID struct {
	id    string
	until int64 // Unix nanoseconds; expired once now reaches it
	index int   // in MemorySeen.byExpiry
}

// NewMemorySeen returns a Seen holding at most max ids (0: 100,000).
func NewMemorySeen(max int, now func() time.Time) *MemorySeen {
	if max <= 0 {
		max = 100_000
	}
	if now == nil {
		now = time.Now
	}
	return &MemorySeen{now: now, max: max, ids: make(map[string]*seenID)}
}

var _ Seen = (*MemorySeen)(nil)

// Claim implements Seen.
func (m *MemorySeen) Claim(id string, ttl time.Duration) bool {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropExpiredLocked(now)
	if _, ok := m.ids[id]; ok {
		return false // live: expired ids were just dropped
	}
	if len(m.ids) >= m.max {
		// Full of live ids: forget the one that expires first rather than
		// refuse events. A replay of it would be re-applied, which is
		// harmless for deny-list events (idempotent).
		m.removeLocked(m.byExpiry[0])
	}
	e := &seenID{id: id, until: now + int64(ttl)}
	m.ids[id] = e
	heap.Push(&m.byExpiry, e)
	return true
}

// Len reports how many ids are held. Expired ids count until the next
// Claim drops them.
func (m *MemorySeen) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

// dropExpiredLocked forgets every id whose TTL has run out. Each id is
// dropped once, so the cost is amortised over the claims that added them.
func (m *MemorySeen) dropExpiredLocked(now int64) {
	for len(m.byExpiry) > 0 && m.byExpiry[0].until <= now {
		m.removeLocked(m.byExpiry[0])
	}
}

func (m *MemorySeen) removeLocked(e *seenID) {
	heap.Remove(&m.byExpiry, e.index)
	delete(m.ids, e.id)
}

// expiryHeap is a min-heap of ids by expiry (container/heap).
type expiryHeap []*seenID

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*seenID)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// Events that revoke a session.
var revokingEvents = map[string]bool{"session.revoked": true, "session.ended": true, "session.removed": true}

// Handler serves POST /_sessiongate/webhooks/clerk.
//
// Nothing a sender controls costs more than the headers before they pass
// the offline checks: missing svix headers, a malformed or out-of-tolerance
// timestamp, no well-formed v1 signature, or a Content-Length over MaxBody
// are answered before a byte of the body is read. The body is then read
// under a deadline (ReadTimeout) and a size cap (MaxBody), so a sender that
// passes those checks (they need no secret) can hold at most MaxBody bytes
// for at most ReadTimeout.
type Handler struct {
	// Verifier checks signatures. Required.
	Verifier *Verifier
	// Seen de-duplicates message ids. Nil: a MemorySeen.
	Seen Seen
	// Revoke is called with the session id of every revoking event.
	Revoke func(sid string)
	// RevokeContext, when set, is called instead of Revoke, with the
	// webhook request's context as well (for what it carries, such as the
	// request id of log lines; it is not a deadline for the revocation).
	RevokeContext func(ctx context.Context, sid string)
	// Logger. Nil: nop.
	Logger *zap.Logger
	// ReadTimeout bounds the reading of the body, from the moment the
	// handler starts, through http.ResponseController: the proxy listener
	// has no server-wide ReadTimeout. It also bounds net/http's draining of
	// a body left unread after a refusal. Zero: DefaultReadTimeout.
	// Negative: none (the server's own ReadTimeout, if any, applies).
	ReadTimeout time.Duration

	once sync.Once
	seen Seen
}

// MaxBody is the largest webhook body accepted: 64 KiB. Clerk's session
// events are about 1 KiB; user and organization events, which this
// handler ignores, stay well under it too. Subscribe the endpoint to the
// session events only.
const MaxBody = 64 << 10

// DefaultReadTimeout is the Handler's ReadTimeout when none is set: ample
// for MaxBody from Svix's senders, short enough that a flood of stalled
// bodies holds little.
const DefaultReadTimeout = 5 * time.Second

type event struct {
	Type string `json:"type"`
	Data struct {
		Object string `json:"object"`
		ID     string `json:"id"`
	} `json:"data"`
}

// ServeHTTP verifies one delivery and acts on it: a POST only, its svix
// headers and signature checked before the body is read, at most MaxBody
// bytes within ReadTimeout, and each message id acted on once.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Logger
	if log == nil {
		log = zap.NewNop()
	} else if id := logctx.RequestID(r.Context()); id != "" {
		log = log.With(zap.String(logctx.FieldName, id))
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, "method_not_allowed", "")
		return
	}
	// Only when a body is announced: for a bodiless request net/http is
	// already reading ahead on the connection, and a deadline reached there
	// would cancel the request's context. Errors (a ResponseWriter without
	// deadlines) leave the server's own timeouts in charge.
	if d := h.readTimeout(); d > 0 && r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
	}
	d, err := h.Verifier.parse(r.Header)
	if err != nil {
		refuseUnread(w, r, log, http.StatusBadRequest, verifyReason(err), err)
		return
	}
	if r.ContentLength > MaxBody {
		refuseUnread(w, r, log, http.StatusRequestEntityTooLarge, "webhook-body-too-large", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			log.Warn("webhook refused", zap.String("reason", "webhook-body-too-large"))
			reply(w, http.StatusRequestEntityTooLarge, "bad_request", "webhook-body-too-large")
		case errors.Is(err, os.ErrDeadlineExceeded):
			log.Warn("webhook refused", zap.String("reason", "webhook-body-timeout"))
			reply(w, http.StatusRequestTimeout, "request_timeout", "webhook-body-timeout")
		default:
			reply(w, http.StatusBadRequest, "bad_request", "webhook-body-unreadable")
		}
		return
	}
	if err := h.Verifier.check(d, body); err != nil {
		log.Warn("webhook refused", zap.String("reason", verifyReason(err)), zap.Error(err))
		reply(w, http.StatusBadRequest, "bad_request", verifyReason(err))
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
	if !claim(r.Context(), h.seen, d.id, 2*Tolerance) {
		log.Info("webhook replay ignored", zap.String("svix_id", sanitize(d.id)))
		reply(w, http.StatusOK, "", "duplicate")
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		reply(w, http.StatusBadRequest, "bad_request", "webhook-payload-invalid")
		return
	}
	if revokingEvents[ev.Type] {
		if !clerkwire.ValidSessionID(ev.Data.ID) {
			reply(w, http.StatusBadRequest, "bad_request", "webhook-payload-invalid")
			return
		}
		if h.RevokeContext != nil {
			h.RevokeContext(r.Context(), ev.Data.ID)
		} else {
			h.Revoke(ev.Data.ID)
		}
		log.Info("session revoked by webhook", zap.String("event", ev.Type), zap.String("sid", sanitize(ev.Data.ID)))
	}
	reply(w, http.StatusOK, "", "")
}

func (h *Handler) readTimeout() time.Duration {
	if h.ReadTimeout == 0 {
		return DefaultReadTimeout
	}
	return h.ReadTimeout
}

// refuseUnread answers a delivery refused before its body was read. The
// connection is closed after the answer: net/http would otherwise drain
// the unread body (up to the read deadline) before answering, to keep the
// connection for a sender it has just refused.
func refuseUnread(w http.ResponseWriter, r *http.Request, log *zap.Logger, status int, reason string, err error) {
	log.Warn("webhook refused", zap.String("reason", reason), zap.Error(err))
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	reply(w, status, "bad_request", reason)
}

// verifyReason is the reason code of a Verifier error.
func verifyReason(err error) string {
	switch {
	case errors.Is(err, ErrMissingHeaders):
		return "webhook-headers-missing"
	case errors.Is(err, ErrBadTimestamp), errors.Is(err, ErrTimestampTooOld), errors.Is(err, ErrTimestampTooNew):
		return "webhook-timestamp-invalid"
	default:
		return "webhook-signature-invalid"
	}
}

// reply acknowledges a delivery, {"ok":true}, or refuses it,
// {"ok":false,"error":…,"reason":…}: error and reason as in sessiongate's
// other errors, beside the documented "ok" member (docs/sessions.md).
func reply(w http.ResponseWriter, status int, code, reason string) {
	body := map[string]any{"ok": status == http.StatusOK}
	if code != "" {
		body["error"] = code
	}
	if reason != "" {
		body["reason"] = reason
	}
	jsonresp.Write(w, status, body)
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
