package clerktest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
)

// Backend API paths of the Sessions resource and the handshake payload, as
// the fake serves them (Clerk's spec lists them without the /v1 prefix).
const (
	// SessionsPath lists sessions: GET, query client_id, user_id, status,
	// paginated, limit, offset.
	SessionsPath = "/v1/sessions"
	// HandshakePayloadPath returns the directives stored under a handshake
	// nonce: GET, query nonce.
	HandshakePayloadPath = "/v1/clients/handshake_payload"
)

// CurrentAPIVersion is the Clerk-API-Version the fake assumes when a
// request sends none: the version of the spec it follows, the one
// sessiongate implements ("2026-05-12").
const CurrentAPIVersion = clerkwire.APIVersion

// verifyRemovedIn is the first API version without POST
// /sessions/{id}/verify.
const verifyRemovedIn = "2025-04-10"

// Limits of the Backend API endpoints, from the spec.
const (
	defaultListLimit  = 10
	maxListLimit      = 500
	minTokenSeconds   = 30
	maxTokenSeconds   = 315360000
	maxAPIRequestBody = 64 << 10
)

// DefaultTemplateLifetime is exp − iat of a JWT-template token minted by
// POST /v1/sessions/{id}/tokens/{template} without expires_in_seconds:
// Clerk's default template lifetime.
const DefaultTemplateLifetime = 60 * time.Second

// DefaultRetryAfter is the Retry-After a RateLimited answer carries until
// SetRetryAfter.
const DefaultRetryAfter = time.Second

// reservedTemplateClaims are the claims Clerk sets itself in template tokens;
// a JWT template cannot define them.
var reservedTemplateClaims = map[string]bool{
	"azp": true, "exp": true, "iat": true, "iss": true, "jti": true, "nbf": true, "sub": true,
}

// apiState is the Backend API side of an Instance. The zero value is ready.
type apiState struct {
	mu         sync.Mutex // guards following
	behavior   Behavior
	retryAfter time.Duration
	retrySet   bool
	templates  map[string]map[string]json.RawMessage
	nonces     map[string][]string
	instanceID string
}

// apiRoutes registers the Backend API endpoints the fake implements.
func (i *Instance) apiRoutes() {
	i.mux.Handle("GET "+SessionsPath, i.apiHandler(i.serveSessionList))
	i.mux.Handle("GET "+SessionsPath+"/{id}", i.apiHandler(i.serveSessionGet))
	i.mux.Handle("POST "+SessionsPath+"/{id}/revoke", i.apiHandler(i.serveSessionRevoke))
	i.mux.Handle("POST "+SessionsPath+"/{id}/verify", i.apiHandler(i.serveSessionVerify))
	i.mux.Handle("POST "+SessionsPath+"/{id}/tokens", i.apiHandler(i.serveSessionToken))
	i.mux.Handle("POST "+SessionsPath+"/{id}/tokens/{template}", i.apiHandler(i.serveSessionToken))
	i.mux.Handle("GET "+HandshakePayloadPath, i.apiHandler(i.serveHandshakePayload))
}

// apiHandler applies the API behavior, then the secret-key check, then h.
func (i *Instance) apiHandler(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.api.mu.Lock()
		b := i.api.behavior
		i.api.mu.Unlock()
		i.mu.Lock()
		delay := i.delay
		i.mu.Unlock()
		if b == EmptySet {
			b = Normal
		}
		if done, _ := i.applyBehavior(b, delay, w, r); done {
			return
		}
		if !i.authorized(r) {
			writeAuthInvalid(w)
			return
		}
		h(w, r)
	})
}

// SetAPIBehavior sets how the Backend API endpoints the fake implements (the
// /v1/sessions… and /v1/clients/… paths) answer from now on: Normal,
// ServerError (500), Garbage (200, not JSON), Slow (SetDelay, shared with the
// JWKS endpoints), Reset, or RateLimited (429 with Retry-After, see
// SetRetryAfter). EmptySet means Normal here. Down is the same as calling
// Down: it takes every path down and leaves the API behavior unchanged. The
// behaviors apply before the secret-key check, as a gateway's would.
func (i *Instance) SetAPIBehavior(b Behavior) {
	if b == Down {
		i.Down()
		return
	}
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	i.api.behavior = b
}

// APIBehavior returns the behavior last set with SetAPIBehavior, or Down while
// the instance is down.
func (i *Instance) APIBehavior() Behavior {
	i.mu.Lock()
	down := i.down
	i.mu.Unlock()
	if down {
		return Down
	}
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	return i.api.behavior
}

// SetRetryAfter sets the Retry-After of RateLimited answers (JWKS and API),
// rounded up to whole seconds. The default is DefaultRetryAfter; a negative
// d sends no Retry-After header at all.
func (i *Instance) SetRetryAfter(d time.Duration) {
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	i.api.retryAfter, i.api.retrySet = d, true
}

func (i *Instance) retryAfter() time.Duration {
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	if !i.api.retrySet {
		return DefaultRetryAfter
	}
	return i.api.retryAfter
}

// writeRateLimited answers 429 with Retry-After in whole seconds (none when
// d is negative).
func writeRateLimited(w http.ResponseWriter, d time.Duration) {
	if d >= 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	writeClerkError(w, http.StatusTooManyRequests, "too_many_requests",
		"Too many requests", "Too many requests, please retry later")
}

// SetTemplate defines (or replaces) the JWT template name: its tokens, minted
// by POST /v1/sessions/{id}/tokens/{name}, carry claims on top of the
// standard template-token claims (see WithTemplate). The values are
// JSON-encoded now (a json.RawMessage is used verbatim); SetTemplate panics if
// one cannot be encoded, a mistake in the test. The claims Clerk reserves
// (azp, exp, iat, iss, jti, nbf, sub) cannot be set by a template and are
// ignored, as Clerk refuses them when a template is saved.
func (i *Instance) SetTemplate(name string, claims map[string]any) {
	enc := make(map[string]json.RawMessage, len(claims))
	for k, v := range claims {
		if reservedTemplateClaims[k] {
			continue
		}
		if raw, ok := v.(json.RawMessage); ok {
			enc[k] = slices.Clone(raw)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("clerktest: SetTemplate %q: claim %q: %v", name, k, err))
		}
		enc[k] = b
	}
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	if i.api.templates == nil {
		i.api.templates = make(map[string]map[string]json.RawMessage)
	}
	i.api.templates[name] = enc
}

func (i *Instance) template(name string) (map[string]json.RawMessage, bool) {
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	t, ok := i.api.templates[name]
	return t, ok
}

// RegisterHandshakeNonce stores directives (Set-Cookie values, as Clerk's
// handshake sends them) under nonce for GET
// /v1/clients/handshake_payload?nonce=…. A nonce can be fetched any number of
// times; registering it again replaces its directives.
func (i *Instance) RegisterHandshakeNonce(nonce string, directives []string) {
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	if i.api.nonces == nil {
		i.api.nonces = make(map[string][]string)
	}
	i.api.nonces[nonce] = append([]string{}, directives...)
}

// InstanceID returns the instance id (ins_…) the fake puts in webhook
// events. It is fixed for the life of the Instance.
func (i *Instance) InstanceID() string {
	i.api.mu.Lock()
	defer i.api.mu.Unlock()
	if i.api.instanceID == "" {
		i.api.instanceID = newID("ins")
	}
	return i.api.instanceID
}

// SessionInfo is a session as the fake's store holds it, with its status as
// the Backend API reports it: an active or pending session whose ExpireAt has
// passed (by Options.Now) reads as "expired".
type SessionInfo struct {
	ID                       string    // sess_…
	UserID                   string    // user_…
	ClientID                 string    // client_…: the browser the session lives in
	Status                   string    // "active", "revoked", "ended", "expired", …
	Actor                    *Actor    // nil unless an impersonation session
	LastActiveOrganizationID string    // org_…; "" when no organization is active
	CreatedAt                time.Time // when the session was created
	UpdatedAt                time.Time // when it last changed
	LastActiveAt             time.Time // when it was last active
	ExpireAt                 time.Time // end of its lifetime: 7 days after creation by default
	AbandonAt                time.Time // abandon_at: 30 days after creation by default
}

// sessionStatuses are the statuses of the spec's Session schema.
var sessionStatuses = []string{
	statusActive, statusRevoked, statusEnded, statusExpired,
	statusRemoved, statusAbandoned, statusReplaced, statusPending,
}

// CreateSession records a new active session of userID (a new user_… when
// empty), as POST /v1/sessions does on a development instance, and returns
// its id.
func (i *Instance) CreateSession(userID string) string {
	for {
		s := newSession(newID("sess"), cmp.Or(userID, newID("user")), "", i.now())
		if i.sessions.create(s) == nil {
			return s.ID
		}
	}
}

// Session returns the session with this id.
func (i *Instance) Session(id string) (SessionInfo, bool) {
	s, ok := i.sessions.get(id)
	if !ok {
		return SessionInfo{}, false
	}
	s = i.effective(s)
	info := SessionInfo{
		ID:                       s.ID,
		UserID:                   s.UserID,
		ClientID:                 s.ClientID,
		Status:                   s.Status,
		LastActiveOrganizationID: s.LastActiveOrganizationID,
		CreatedAt:                time.UnixMilli(s.CreatedAt),
		UpdatedAt:                time.UnixMilli(s.UpdatedAt),
		LastActiveAt:             time.UnixMilli(s.LastActiveAt),
		ExpireAt:                 time.UnixMilli(s.ExpireAt),
		AbandonAt:                time.UnixMilli(s.AbandonAt),
	}
	if s.Actor != nil {
		a := *s.Actor
		info.Actor = &a
	}
	return info, true
}

// SetSessionStatus sets a session's status, one of the spec's Session
// statuses: active, revoked, ended, expired, removed, abandoned, replaced,
// pending. Setting "active" on a session past its expire_at still reads as
// expired.
func (i *Instance) SetSessionStatus(id, status string) error {
	if !slices.Contains(sessionStatuses, status) {
		return fmt.Errorf("clerktest: unknown session status %q", status)
	}
	if _, ok := i.sessions.setStatus(id, status, i.now()); !ok {
		return fmt.Errorf("clerktest: no session %s", id)
	}
	return nil
}

// effective applies expiry: an active or pending session past expire_at is
// expired.
func (i *Instance) effective(s session) session {
	if (s.Status == statusActive || s.Status == statusPending) && i.now().UnixMilli() >= s.ExpireAt {
		s.Status = statusExpired
	}
	return s
}

// list returns the sessions matching f, newest first.
func (s *sessionStore) list(f func(session) bool) []session {
	s.mu.Lock()
	var out []session
	for _, p := range s.byID {
		if f(*p) {
			out = append(out, *p)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b session) int {
		return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), cmp.Compare(b.seq, a.seq))
	})
	return out
}

// sessionJSON is the spec's Session schema (additionalProperties: false).
// Timestamps are Unix milliseconds.
type sessionJSON struct {
	Object                   string        `json:"object"`
	ID                       string        `json:"id"`
	UserID                   string        `json:"user_id"`
	ClientID                 string        `json:"client_id"`
	Actor                    *actV2        `json:"actor"`
	Status                   string        `json:"status"`
	LastActiveOrganizationID *string       `json:"last_active_organization_id"`
	LastActiveAt             int64         `json:"last_active_at"`
	ExpireAt                 int64         `json:"expire_at"`
	AbandonAt                int64         `json:"abandon_at"`
	UpdatedAt                int64         `json:"updated_at"`
	CreatedAt                int64         `json:"created_at"`
	Tasks                    []sessionTask `json:"tasks"`
}

type sessionTask struct {
	Key string `json:"key"`
}

// toJSON renders s, already passed through effective. A pending session
// has one task left, choosing an organization.
func (s session) toJSON() sessionJSON {
	j := sessionJSON{
		Object:       "session",
		ID:           s.ID,
		UserID:       s.UserID,
		ClientID:     s.ClientID,
		Status:       s.Status,
		LastActiveAt: s.LastActiveAt,
		ExpireAt:     s.ExpireAt,
		AbandonAt:    s.AbandonAt,
		UpdatedAt:    s.UpdatedAt,
		CreatedAt:    s.CreatedAt,
	}
	if s.Actor != nil {
		a := actClaim(*s.Actor)
		j.Actor = &a
	}
	if s.LastActiveOrganizationID != "" {
		org := s.LastActiveOrganizationID
		j.LastActiveOrganizationID = &org
	}
	if s.Status == statusPending {
		j.Tasks = []sessionTask{{Key: "choose-organization"}}
	}
	return j
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeParamError answers 422 for a bad query or body parameter, with
// meta.param_name as Clerk does.
func writeParamError(w http.ResponseWriter, code, param, message string) {
	trace := randomHex(16)
	body, _ := json.Marshal(clerkErrors{
		Errors: []clerkError{{
			Message:     message,
			LongMessage: param + ": " + message,
			Code:        code,
			Meta:        map[string]any{"param_name": param},
		}},
		ClerkTraceID: trace,
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Clerk-Trace-Id", trace)
	w.WriteHeader(http.StatusUnprocessableEntity)
	_, _ = w.Write(body)
}

func writeSessionNotFound(w http.ResponseWriter, long string) {
	writeClerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found", long)
}

// intParam parses an optional integer query parameter within [lo, hi],
// answering 422 when it is malformed or out of range.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	raw, ok := r.URL.Query()[name]
	if !ok {
		return def, true
	}
	n, err := strconv.Atoi(raw[0])
	if err != nil {
		writeParamError(w, "form_param_format_invalid", name, "must be an integer")
		return 0, false
	}
	if n < lo || n > hi {
		writeParamError(w, "form_param_value_invalid", name, fmt.Sprintf("must be between %d and %d", lo, hi))
		return 0, false
	}
	return n, true
}

// serveSessionList is GET /v1/sessions.
func (i *Instance) serveSessionList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, userID, status := q.Get("client_id"), q.Get("user_id"), q.Get("status")
	paginated := false
	if raw, ok := q["paginated"]; ok {
		b, err := strconv.ParseBool(raw[0])
		if err != nil {
			writeParamError(w, "form_param_format_invalid", "paginated", "must be true or false")
			return
		}
		paginated = b
	}
	limit, ok := intParam(w, r, "limit", defaultListLimit, 1, maxListLimit)
	if !ok {
		return
	}
	offset, ok := intParam(w, r, "offset", 0, 0, math.MaxInt32)
	if !ok {
		return
	}
	if status != "" && (status == statusPending || !slices.Contains(sessionStatuses, status)) {
		writeParamError(w, "form_param_value_invalid", "status",
			"must be one of abandoned, active, ended, expired, removed, replaced, revoked")
		return
	}
	if clientID == "" && userID == "" {
		writeParamError(w, "form_param_missing", "user_id", "one of client_id or user_id is required")
		return
	}
	all := i.sessions.list(func(s session) bool {
		return (clientID == "" || s.ClientID == clientID) && (userID == "" || s.UserID == userID)
	})
	matched := make([]sessionJSON, 0, len(all))
	for _, s := range all {
		s = i.effective(s)
		if status == "" || s.Status == status {
			matched = append(matched, s.toJSON())
		}
	}
	page := matched[min(offset, len(matched)):min(offset+limit, len(matched))]
	if paginated {
		writeJSON(w, http.StatusOK, struct {
			Data       []sessionJSON `json:"data"`
			TotalCount int           `json:"total_count"`
		}{page, len(matched)})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// serveSessionGet is GET /v1/sessions/{id}.
func (i *Instance) serveSessionGet(w http.ResponseWriter, r *http.Request) {
	s, ok := i.sessions.get(r.PathValue("id"))
	if !ok {
		writeSessionNotFound(w, "No session was found with id "+strconv.Quote(r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, i.effective(s).toJSON())
}

// serveSessionRevoke is POST /v1/sessions/{id}/revoke: any session becomes
// revoked (again, for a revoked one).
func (i *Instance) serveSessionRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, ok := i.sessions.get(id)
	if !ok {
		writeSessionNotFound(w, "No session was found with id "+strconv.Quote(id))
		return
	}
	if s.Status != statusRevoked {
		s, _ = i.sessions.setStatus(id, statusRevoked, i.now())
	}
	writeJSON(w, http.StatusOK, i.effective(s).toJSON())
}

// readJSONBody decodes an optional JSON object body into v: an empty body and
// "null" leave v as is. It answers 400 on anything else that does not decode.
func readJSONBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIRequestBody+1))
	if err == nil && len(body) > maxAPIRequestBody {
		err = errors.New("body too large")
	}
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeClerkError(w, http.StatusBadRequest, "request_body_invalid",
			"Request body invalid", "The request body is not a valid JSON object of the expected fields: "+err.Error())
		return false
	}
	return true
}

// serveSessionToken is POST /v1/sessions/{id}/tokens[/{template}].
func (i *Instance) serveSessionToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ExpiresInSeconds *int64 `json:"expires_in_seconds"`
	}
	if !readJSONBody(w, r, &req) {
		return
	}
	if n := req.ExpiresInSeconds; n != nil && (*n < minTokenSeconds || *n > maxTokenSeconds) {
		writeParamError(w, "form_param_value_invalid", "expires_in_seconds",
			fmt.Sprintf("must be between %d and %d", minTokenSeconds, maxTokenSeconds))
		return
	}
	id := r.PathValue("id")
	s, ok := i.sessions.get(id)
	if !ok {
		writeSessionNotFound(w, "No session was found with id "+strconv.Quote(id))
		return
	}
	s = i.effective(s)
	if s.Status != statusActive && s.Status != statusPending {
		writeSessionNotFound(w, fmt.Sprintf("Session %s is %s: tokens are only issued for active sessions", id, s.Status))
		return
	}
	var opts []TokenOption
	name := r.PathValue("template")
	if name == "" {
		opts = append(opts, WithSession(id))
		if s.Actor != nil {
			opts = append(opts, WithActor(*s.Actor))
		}
		if req.ExpiresInSeconds != nil {
			opts = append(opts, WithLifetime(time.Duration(*req.ExpiresInSeconds)*time.Second))
		}
	} else {
		claims, ok := i.template(name)
		if !ok {
			writeClerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found",
				"No JWT template was found with name "+strconv.Quote(name))
			return
		}
		lifetime := DefaultTemplateLifetime
		if req.ExpiresInSeconds != nil {
			lifetime = time.Duration(*req.ExpiresInSeconds) * time.Second
		}
		opts = append(opts, WithTemplate(name), WithUser(s.UserID), WithLifetime(lifetime))
		for _, k := range slices.Sorted(maps.Keys(claims)) {
			opts = append(opts, WithClaim(k, claims[k]))
		}
		i.sessions.touch(id, i.now())
	}
	tok, err := i.Mint(opts...)
	if err != nil {
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error", "Something went wrong", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Object string `json:"object"`
		JWT    string `json:"jwt"`
	}{"token", tok})
}

// serveHandshakePayload is GET /v1/clients/handshake_payload?nonce=….
func (i *Instance) serveHandshakePayload(w http.ResponseWriter, r *http.Request) {
	nonce := r.URL.Query().Get("nonce")
	if nonce == "" {
		writeParamError(w, "form_param_missing", "nonce", "is missing")
		return
	}
	i.api.mu.Lock()
	directives, ok := i.api.nonces[nonce]
	directives = slices.Clone(directives)
	i.api.mu.Unlock()
	if !ok {
		writeClerkError(w, http.StatusBadRequest, "invalid_nonce", "Invalid nonce",
			"The handshake nonce is unknown or has expired")
		return
	}
	if directives == nil {
		directives = []string{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Directives []string `json:"directives"`
	}{directives})
}
