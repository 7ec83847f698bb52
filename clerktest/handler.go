package clerktest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// routes registers the fake's endpoints on i.mux.
func (i *Instance) routes() {
	i.mux.HandleFunc("GET "+FrontendJWKSPath, i.serveFrontendJWKS)
	i.mux.HandleFunc("GET "+BackendJWKSPath, i.serveBackendJWKS)
	i.signInRoutes()
	i.apiRoutes()
	i.machineRoutes()
	i.mux.Handle("/v1/", i.requireSecretKey(http.HandlerFunc(notFound)))
	i.mux.HandleFunc("/", notFound)
}

func (i *Instance) serveFrontendJWKS(w http.ResponseWriter, r *http.Request) {
	done, empty := i.misbehave(w, r)
	if !done {
		i.writeJWKS(w, empty)
	}
}

func (i *Instance) serveBackendJWKS(w http.ResponseWriter, r *http.Request) {
	done, empty := i.misbehave(w, r)
	if done {
		return
	}
	if !i.authorized(r) {
		writeAuthInvalid(w)
		return
	}
	i.writeJWKS(w, empty)
}

func (i *Instance) writeJWKS(w http.ResponseWriter, empty bool) {
	var keys []*SigningKey
	if !empty {
		keys = i.keys.snapshot()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jwksJSON(keys))
}

// requireSecretKey answers 401 unless the request carries the secret key.
func (i *Instance) requireSecretKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !i.authorized(r) {
			writeAuthInvalid(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries "Authorization: Bearer <secret key>".
// Both sides are hashed so the comparison takes the same time whatever the
// length of the guess.
func (i *Instance) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	want := sha256.Sum256([]byte(i.secretKey))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// clerkErrors is Clerk's ClerkErrors response schema.
type clerkErrors struct {
	Errors       []clerkError `json:"errors"`
	ClerkTraceID string       `json:"clerk_trace_id"`
}

// clerkError is one entry of ClerkErrors.errors.
type clerkError struct {
	Message     string         `json:"message"`
	LongMessage string         `json:"long_message"`
	Code        string         `json:"code"`
	Meta        map[string]any `json:"meta"`
}

// writeClerkError writes a ClerkErrors body with a fresh trace id, also sent
// as the Clerk-Trace-Id header.
func writeClerkError(w http.ResponseWriter, status int, code, message, longMessage string) {
	trace := randomHex(16)
	body, _ := json.Marshal(clerkErrors{
		Errors:       []clerkError{{Message: message, LongMessage: longMessage, Code: code, Meta: map[string]any{}}},
		ClerkTraceID: trace,
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Clerk-Trace-Id", trace)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeAuthInvalid(w http.ResponseWriter) {
	writeClerkError(w, http.StatusUnauthorized, "authentication_invalid",
		"Invalid authentication",
		"Unable to authenticate the request, you need to supply an active secret key")
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeClerkError(w, http.StatusNotFound, "resource_not_found",
		"Resource not found",
		"The requested resource could not be found")
}

// counters counts requests by URL path.
type counters struct {
	mu     sync.Mutex // guards following
	byPath map[string]int
}

func (c *counters) init() { c.byPath = make(map[string]int) }

func (c *counters) add(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byPath[path]++
}

func (c *counters) get(paths ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range paths {
		n += c.byPath[p]
	}
	return n
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byPath)
}

// counting counts every request that reaches the handler, before any
// behavior applies (a Reset request counts; a refused connection does not).
func (i *Instance) counting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.counters.add(r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

// Requests returns how many requests for this URL path the instance has
// received since it started or since ResetCounters.
func (i *Instance) Requests(path string) int { return i.counters.get(path) }

// JWKSRequests returns Requests for both JWKS paths together.
func (i *Instance) JWKSRequests() int { return i.counters.get(FrontendJWKSPath, BackendJWKSPath) }

// ResetCounters sets every request counter to zero.
func (i *Instance) ResetCounters() { i.counters.reset() }
