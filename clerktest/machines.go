package clerktest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Machine credentials: machines and their secret keys, API keys, M2M tokens
// (opaque and JWT) and OAuth access tokens (opaque and JWT), with the
// Backend API's three verify endpoints, in the shapes of Clerk's spec.

// Paths of the verify endpoints.
const (
	APIKeysVerifyPath     = "/v1/api_keys/verify"
	M2MTokensVerifyPath   = "/v1/m2m_tokens/verify"
	OAuthTokensVerifyPath = "/v1/oauth_applications/access_tokens/verify"
)

// Machine is a machine of the instance, with its secret key ("ak_…"), which
// authenticates M2M-token verification for tokens granted to it.
type Machine struct {
	ID        string // mch_…
	Name      string // the name given to CreateMachine
	SecretKey string // ak_…: authenticates M2M-token verification for this machine
}

// APIKeyOptions describe an API key to create.
type APIKeyOptions struct {
	// Subject is who the key acts for: user_…, org_… or mch_…. Empty: a new
	// user id.
	Subject string
	Name    string         // the key's name; empty: "api_key"
	Scopes  []string       // the scopes the verify answer lists
	Claims  map[string]any // the verify answer's claims; nil: null
	// ExpiresIn, when positive, makes the key expire that long from now.
	ExpiresIn time.Duration
}

// M2MTokenOptions describe an M2M token to create for a machine.
type M2MTokenOptions struct {
	// Scopes are the machine ids the token may call.
	Scopes []string
	// Claims are custom claims: the verify answer's claims for an opaque
	// token, claims of the JWT otherwise.
	Claims map[string]any
	// ExpiresIn, when positive, makes the token expire that long from now;
	// zero: one hour for a JWT, never for an opaque token.
	ExpiresIn time.Duration
	// JWT mints a JWT (cat machine, sub the machine) instead of mt_….
	JWT bool
}

// OAuthTokenOptions describe an OAuth access token to create.
type OAuthTokenOptions struct {
	// UserID is the subject; empty: a new user id.
	UserID   string
	ClientID string   // the OAuth application's client id; empty: a random one
	Scopes   []string // the scopes granted (the JWT's scope claim)
	// ExpiresIn: as for M2M tokens (one hour for a JWT, never for opaque).
	ExpiresIn time.Duration
	// JWT mints an RFC 9068 JWT (typ at+jwt) instead of oat_….
	JWT bool
}

// machineStore holds the machine credentials; each is found by the SHA-256
// of its secret (the fake stores no secret in the clear but machines').
type machineStore struct {
	mu       sync.Mutex // guards following
	machines map[string]*Machine
	bySecret map[[32]byte]*credential
	byID     map[string]*credential
}

type credential struct {
	kind       string // "api_key", "m2m_token", "oauth_token"
	id         string
	subject    string
	name       string
	clientID   string
	scopes     []string
	claims     map[string]any
	revoked    bool
	reason     *string
	expiration time.Time // zero: never
	created    time.Time
}

func (s *machineStore) init() {
	s.machines = map[string]*Machine{}
	s.bySecret = map[[32]byte]*credential{}
	s.byID = map[string]*credential{}
}

func (s *machineStore) put(secret string, c *credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySecret[sha256.Sum256([]byte(secret))] = c
	s.byID[c.id] = c
}

func (s *machineStore) lookup(secret string) (credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.bySecret[sha256.Sum256([]byte(secret))]
	if !ok {
		return credential{}, false
	}
	return *c, true
}

func (s *machineStore) update(id string, f func(*credential)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("clerktest: no credential %q", id)
	}
	f(c)
	return nil
}

// CreateMachine adds a machine and returns it with its secret key.
func (i *Instance) CreateMachine(name string) Machine {
	m := &Machine{ID: newID("mch"), Name: name, SecretKey: "ak_" + randomHex(24)}
	i.machineCreds.mu.Lock()
	i.machineCreds.machines[m.ID] = m
	i.machineCreds.mu.Unlock()
	return *m
}

// CreateAPIKey creates an API key and returns its id (ak_…, safe to log)
// and its secret (what a client sends as Bearer).
func (i *Instance) CreateAPIKey(o APIKeyOptions) (id, secret string) {
	c := &credential{kind: "api_key", id: "ak_" + randomHex(16), subject: o.Subject, name: o.Name,
		scopes: append([]string{}, o.Scopes...), claims: o.Claims, created: i.now()}
	if c.subject == "" {
		c.subject = newID("user")
	}
	if c.name == "" {
		c.name = "api_key"
	}
	if o.ExpiresIn > 0 {
		c.expiration = i.now().Add(o.ExpiresIn)
	}
	secret = "ak_" + randomBase62(40)
	i.machineCreds.put(secret, c)
	return c.id, secret
}

// CreateM2MToken creates an M2M token for machine machineID and returns
// its id (mt_… or the JWT's jti) and the token.
func (i *Instance) CreateM2MToken(machineID string, o M2MTokenOptions) (id, token string, err error) {
	now := i.now()
	c := &credential{kind: "m2m_token", subject: machineID, scopes: append([]string{}, o.Scopes...), claims: o.Claims, created: now}
	if o.ExpiresIn > 0 {
		c.expiration = now.Add(o.ExpiresIn)
	}
	if !o.JWT {
		c.id = "mt_" + randomHex(16)
		token = "mt_" + randomBase62(40)
		i.machineCreds.put(token, c)
		return c.id, token, nil
	}
	if c.expiration.IsZero() {
		c.expiration = now.Add(time.Hour)
	}
	c.id = randomHex(10)
	opts := []TokenOption{WithMachine(), WithUser(machineID), WithIssuedAt(now), WithExpiry(c.expiration), WithClaim("jti", c.id)}
	if len(o.Scopes) > 0 {
		opts = append(opts, WithClaim("scopes", strings.Join(o.Scopes, " ")))
	}
	for k, v := range o.Claims {
		opts = append(opts, WithClaim(k, v))
	}
	token, err = i.Mint(opts...)
	return c.id, token, err
}

// CreateOAuthAccessToken creates an OAuth access token and returns its id
// (oat_… or the JWT's jti) and the token.
func (i *Instance) CreateOAuthAccessToken(o OAuthTokenOptions) (id, token string, err error) {
	now := i.now()
	c := &credential{kind: "oauth_token", subject: o.UserID, clientID: o.ClientID, scopes: append([]string{}, o.Scopes...), created: now}
	if c.subject == "" {
		c.subject = newID("user")
	}
	if c.clientID == "" {
		c.clientID = randomBase62(16)
	}
	if o.ExpiresIn > 0 {
		c.expiration = now.Add(o.ExpiresIn)
	}
	if !o.JWT {
		c.id = "oat_" + randomHex(16)
		token = "oat_" + randomBase62(40)
		i.machineCreds.put(token, c)
		return c.id, token, nil
	}
	if c.expiration.IsZero() {
		c.expiration = now.Add(time.Hour)
	}
	c.id = randomHex(10)
	token, err = i.Mint(WithMachine(), WithUser(c.subject), WithIssuedAt(now), WithExpiry(c.expiration),
		WithHeader("typ", "at+jwt"), WithoutHeader("cat"), WithClaim("jti", c.id), WithClaim("client_id", c.clientID),
		WithClaim("scope", strings.Join(c.scopes, " ")))
	if err == nil {
		i.machineCreds.put(token, c)
	}
	return c.id, token, err
}

// RevokeMachineCredential revokes an API key, M2M token or OAuth access
// token by id: its verify answers revoked from now on.
func (i *Instance) RevokeMachineCredential(id, reason string) error {
	return i.machineCreds.update(id, func(c *credential) { c.revoked, c.reason = true, &reason })
}

// ExpireMachineCredential makes a credential expire now.
func (i *Instance) ExpireMachineCredential(id string) error {
	now := i.now()
	return i.machineCreds.update(id, func(c *credential) { c.expiration = now.Add(-time.Second) })
}

func (i *Instance) machineRoutes() {
	i.mux.Handle("POST "+APIKeysVerifyPath, i.apiHandler(i.serveVerifyAPIKey))
	i.mux.Handle("POST "+OAuthTokensVerifyPath, i.apiHandler(i.serveVerifyOAuthToken))
	// M2M verification also takes a machine's secret key.
	i.mux.Handle("POST "+M2MTokensVerifyPath, i.behaving(http.HandlerFunc(i.serveVerifyM2MToken)))
}

// behaving applies the API behavior (failures injected by tests) to h,
// without the secret-key check.
func (i *Instance) behaving(h http.Handler) http.Handler {
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
		h.ServeHTTP(w, r)
	})
}

// verifyBody reads {"<field>": string} with no other member (the spec's
// additionalProperties: false); alias is an accepted deprecated name.
func verifyBody(w http.ResponseWriter, r *http.Request, field, alias string) (string, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxTokenRequestBytes))
	if err != nil {
		writeClerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", "The request body could not be read")
		return "", false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		writeClerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", "The request body is not a JSON object")
		return "", false
	}
	var v string
	for k, raw := range m {
		if k != field && k != alias {
			writeClerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", "Unknown field "+k)
			return "", false
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			writeClerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", k+" must be a string")
			return "", false
		}
	}
	if v == "" {
		writeClerkError(w, http.StatusUnprocessableEntity, "form_param_missing", field+" is missing", field+" is missing")
		return "", false
	}
	return v, true
}

func notFoundCredential(w http.ResponseWriter, what string) {
	writeClerkError(w, http.StatusNotFound, "resource_not_found", what+" not found", "The "+what+" could not be found")
}

func (c *credential) common(now time.Time) (expired bool, expiration any) {
	if c.expiration.IsZero() {
		return false, nil
	}
	return !now.Before(c.expiration), c.expiration.UnixMilli()
}

func (i *Instance) serveVerifyAPIKey(w http.ResponseWriter, r *http.Request) {
	secret, ok := verifyBody(w, r, "secret", "")
	if !ok {
		return
	}
	c, found := i.machineCreds.lookup(secret)
	if !found || c.kind != "api_key" {
		notFoundCredential(w, "API key")
		return
	}
	expired, expiration := c.common(i.now())
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "api_key", "id": c.id, "type": "api_key", "subject": c.subject, "name": c.name,
		"description": nil, "claims": c.claims, "scopes": nonNilStrings(c.scopes),
		"revoked": c.revoked, "revocation_reason": c.reason, "expired": expired, "expiration": expiration,
		"created_by": nil, "last_used_at": nil,
		"created_at": c.created.UnixMilli(), "updated_at": c.created.UnixMilli(),
	})
}

func (i *Instance) serveVerifyM2MToken(w http.ResponseWriter, r *http.Request) {
	machine, ok := i.m2mAuthorized(r)
	if !ok {
		writeAuthInvalid(w)
		return
	}
	token, ok := verifyBody(w, r, "token", "")
	if !ok {
		return
	}
	c, found := i.machineCreds.lookup(token)
	if !found || c.kind != "m2m_token" {
		notFoundCredential(w, "M2M token")
		return
	}
	if machine != "" && !contains(c.scopes, machine) {
		// A machine key verifies only tokens granted to its machine.
		notFoundCredential(w, "M2M token")
		return
	}
	expired, expiration := c.common(i.now())
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "machine_to_machine_token", "id": c.id, "subject": c.subject, "claims": c.claims,
		"scopes": nonNilStrings(c.scopes), "revoked": c.revoked, "revocation_reason": c.reason,
		"expired": expired, "expiration": expiration, "last_used_at": nil,
		"created_at": c.created.UnixMilli(), "updated_at": c.created.UnixMilli(),
	})
}

// m2mAuthorized accepts the instance's secret key (machine "") or a
// machine's secret key (its id).
func (i *Instance) m2mAuthorized(r *http.Request) (machine string, ok bool) {
	if i.authorized(r) {
		return "", true
	}
	scheme, key, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	i.machineCreds.mu.Lock()
	defer i.machineCreds.mu.Unlock()
	for _, m := range i.machineCreds.machines {
		want := sha256.Sum256([]byte(m.SecretKey))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			return m.ID, true
		}
	}
	return "", false
}

func (i *Instance) serveVerifyOAuthToken(w http.ResponseWriter, r *http.Request) {
	token, ok := verifyBody(w, r, "access_token", "secret")
	if !ok {
		return
	}
	c, found := i.machineCreds.lookup(token)
	if !found || c.kind != "oauth_token" {
		notFoundCredential(w, "OAuth access token")
		return
	}
	expired, expiration := c.common(i.now())
	if expired && strings.Count(token, ".") == 2 {
		// A JWT access token that is no longer active.
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "clerk_idp_oauth_access_token", "id": c.id, "client_id": c.clientID, "subject": c.subject,
		"scopes": nonNilStrings(c.scopes), "revoked": c.revoked, "revocation_reason": c.reason,
		"expired": expired, "expiration": expiration,
		"created_at": c.created.UnixMilli(), "updated_at": c.created.UnixMilli(),
	})
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
