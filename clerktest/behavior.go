package clerktest

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Behavior is how the JWKS endpoints (both of them, SetJWKSBehavior) or the
// Backend API endpoints (SetAPIBehavior) answer. The zero value is Normal.
type Behavior int

// Behaviors, from a healthy instance to one that cannot be reached.
const (
	// Normal serves the published keys.
	Normal Behavior = iota
	// ServerError answers 500 with a Clerk error body
	// (internal_clerk_error).
	ServerError
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// EmptySet answers 200 {"keys":[]} (after the secret-key check on
	// /v1/jwks).
	EmptySet
	// Slow waits for the delay set with SetDelay, then answers as Normal. The
	// wait ends early, without an answer, when the client goes away or the
	// instance closes.
	Slow
	// Reset closes the connection without answering.
	Reset
	// Down closes the listener: connections are refused on every path until
	// Up. Setting it is the same as calling Down.
	Down
	// RateLimited answers 429 with a Clerk error body (too_many_requests)
	// and the Retry-After set with SetRetryAfter.
	RateLimited
)

var behaviorNames = [...]string{"Normal", "ServerError", "Garbage", "EmptySet", "Slow", "Reset", "Down", "RateLimited"}

// String returns the constant's name.
func (b Behavior) String() string {
	if b >= 0 && int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return fmt.Sprintf("Behavior(%d)", int(b))
}

// SetJWKSBehavior sets how both JWKS endpoints answer from now on. Setting
// Down closes the listener (see Down); leaving Down takes Up, which reports
// whether the address could be reopened, so setting another behavior while
// down only decides how the endpoints answer once up again.
func (i *Instance) SetJWKSBehavior(b Behavior) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.behavior = b
	if b == Down {
		i.downLocked()
	}
}

// JWKSBehavior returns the behavior last set, or Down while the instance is
// down.
func (i *Instance) JWKSBehavior() Behavior {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.down {
		return Down
	}
	return i.behavior
}

// SetDelay sets how long Slow waits before answering.
func (i *Instance) SetDelay(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.delay = d
}

func (i *Instance) jwksBehavior() (Behavior, time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.behavior, i.delay
}

// garbageBody is what a misconfigured CDN or captive portal returns.
const garbageBody = "<!DOCTYPE html><html><head><title>Bad Gateway</title></head><body>upstream unavailable</body></html>\n"

// misbehave applies the failure behaviors. It reports whether the request
// is answered (or abandoned); false means serve normally, with an empty key
// set when empty is true.
func (i *Instance) misbehave(w http.ResponseWriter, r *http.Request) (done, empty bool) {
	b, delay := i.jwksBehavior()
	return i.applyBehavior(b, delay, w, r)
}

// applyBehavior is misbehave for behavior b.
func (i *Instance) applyBehavior(b Behavior, delay time.Duration, w http.ResponseWriter, r *http.Request) (done, empty bool) {
	switch b {
	case RateLimited:
		writeRateLimited(w, i.retryAfter())
		return true, false
	case ServerError:
		writeClerkError(w, http.StatusInternalServerError, "internal_clerk_error",
			"Oops, an unexpected error occurred",
			"There was an internal error on our servers. We've been notified and are working on fixing it.")
		return true, false
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(garbageBody))
		return true, false
	case EmptySet:
		return false, true
	case Slow:
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false, false
		case <-r.Context().Done():
			return true, false
		case <-i.closed:
			return true, false
		}
	case Reset:
		resetConn(w)
		return true, false
	}
	return false, false
}

// resetConn drops the connection without a response, with a TCP RST when it
// can. A writer that cannot be hijacked (HTTP/2, a recorder) gets the
// standard abort panic, which net/http turns into a dropped stream.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
