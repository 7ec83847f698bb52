package clerktest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

type jwksDoc struct {
	Keys []struct {
		Kty, Kid, Alg, Use, N, E string
	} `json:"keys"`
}

func decodeJWKS(tb testing.TB, body []byte) jwksDoc {
	tb.Helper()
	var doc jwksDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		tb.Fatalf("JWKS %s: %v", body, err)
	}
	return doc
}

func kids(doc jwksDoc) []string {
	var out []string
	for _, k := range doc.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// checkClerkError checks a ClerkErrors body with one error of this code and
// the trace id echoed in the Clerk-Trace-Id header.
func checkClerkError(tb testing.TB, resp *http.Response, body []byte, status int, code string) {
	tb.Helper()
	if resp.StatusCode != status {
		tb.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e struct {
		Errors []struct {
			Message     *string         `json:"message"`
			LongMessage *string         `json:"long_message"`
			Code        string          `json:"code"`
			Meta        json.RawMessage `json:"meta"`
		} `json:"errors"`
		ClerkTraceID string `json:"clerk_trace_id"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		tb.Fatalf("error body %s: %v", body, err)
	}
	if len(e.Errors) != 1 || e.Errors[0].Code != code || e.Errors[0].Message == nil ||
		e.Errors[0].LongMessage == nil || string(e.Errors[0].Meta) != "{}" {
		tb.Fatalf("error body %s, want one error with code %q, messages and meta {}", body, code)
	}
	if e.ClerkTraceID == "" || resp.Header.Get("Clerk-Trace-Id") != e.ClerkTraceID {
		tb.Fatalf("trace id body %q header %q", e.ClerkTraceID, resp.Header.Get("Clerk-Trace-Id"))
	}
}

func TestJWKSIsServedOnBothPaths(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	key := inst.SigningKey()
	for _, url := range []string{inst.FrontendJWKSURL(), inst.BackendJWKSURL()} {
		resp, body := mustGet(t, url, "Bearer "+inst.SecretKey())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		doc := decodeJWKS(t, body)
		if len(doc.Keys) != 1 {
			t.Fatalf("%s: %d keys", url, len(doc.Keys))
		}
		k := doc.Keys[0]
		if k.Kty != "RSA" || k.Kid != key.ID || k.Alg != "RS256" || k.Use != "sig" {
			t.Fatalf("%s: key %+v", url, k)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("n/e not base64url: %v %v", err1, err2)
		}
		pub := key.Private.PublicKey
		if new(big.Int).SetBytes(n).Cmp(pub.N) != 0 || new(big.Int).SetBytes(e).Int64() != int64(pub.E) {
			t.Fatalf("%s: n/e do not match the signing key", url)
		}
	}
	if !strings.HasPrefix(inst.URL(), "http://127.0.0.1:") || inst.Issuer() != inst.URL() || inst.APIURL() != inst.URL() {
		t.Fatalf("URL %q Issuer %q APIURL %q", inst.URL(), inst.Issuer(), inst.APIURL())
	}
	if !strings.HasPrefix(inst.SecretKey(), "sk_test_") {
		t.Fatalf("secret key %q", inst.SecretKey())
	}
}

func TestBackendAPIRequiresSecretKey(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{SecretKey: "sk_test_fixed"})
	tests := []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"jwks without Authorization", BackendJWKSPath, "", 401, "authentication_invalid"},
		{"jwks with a wrong key", BackendJWKSPath, "Bearer sk_test_wrong", 401, "authentication_invalid"},
		{"jwks with a key prefix", BackendJWKSPath, "Bearer sk_test_fixe", 401, "authentication_invalid"},
		{"jwks with another scheme", BackendJWKSPath, "Basic sk_test_fixed", 401, "authentication_invalid"},
		{"jwks with the key", BackendJWKSPath, "Bearer sk_test_fixed", 200, ""},
		{"jwks with a lower-case scheme", BackendJWKSPath, "bearer sk_test_fixed", 200, ""},
		{"unknown v1 path without key", "/v1/nope", "", 401, "authentication_invalid"},
		{"unknown v1 path with key", "/v1/nope", "Bearer sk_test_fixed", 404, "resource_not_found"},
		{"path below jwks", "/v1/jwks/extra", "Bearer sk_test_fixed", 404, "resource_not_found"},
		{"unknown frontend path", "/nope", "", 404, "resource_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := mustGet(t, inst.URL()+tt.path, tt.auth)
			if tt.code == "" {
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
				}
				decodeJWKS(t, body)
				return
			}
			checkClerkError(t, resp, body, tt.status, tt.code)
		})
	}
}

func TestRotateRemoveAndPublishKeys(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	old := inst.SigningKey()
	foreign := sharedKey(t, 1)

	rotated, err := inst.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if inst.SigningKey() != rotated || rotated.ID == old.ID || !strings.HasPrefix(rotated.ID, "ins_") {
		t.Fatalf("after rotation signing key %q, rotated %q, old %q", inst.SigningKey().ID, rotated.ID, old.ID)
	}
	assertKids := func(want ...string) {
		t.Helper()
		_, body := mustGet(t, inst.FrontendJWKSURL(), "")
		if got := kids(decodeJWKS(t, body)); !slices.Equal(got, want) {
			t.Fatalf("published kids %v, want %v", got, want)
		}
		var pub []string
		for _, k := range inst.PublicKeys() {
			pub = append(pub, k.ID)
		}
		if !slices.Equal(pub, want) {
			t.Fatalf("PublicKeys %v, want %v", pub, want)
		}
	}
	assertKids(old.ID, rotated.ID)
	if p := parseToken(t, inst.MustMint(t)); p.str(t, p.header, "kid") != rotated.ID || p.verifyRS256(&rotated.Private.PublicKey) != nil {
		t.Fatalf("token not signed by the rotated key: kid %s", p.header["kid"])
	}

	inst.RemoveKey(old.ID)
	assertKids(rotated.ID)
	inst.PublishKey(foreign)
	assertKids(rotated.ID, foreign.ID)
	inst.PublishKey(foreign) // same kid: replaced, not duplicated
	assertKids(rotated.ID, foreign.ID)
	inst.RemoveKey(rotated.ID) // the signing key: unpublished but still used
	assertKids(foreign.ID)
	if p := parseToken(t, inst.MustMint(t)); p.str(t, p.header, "kid") != rotated.ID {
		t.Fatalf("kid %s, want the unpublished signing key %s", p.header["kid"], rotated.ID)
	}
	inst.RemoveKey("ins_unknown") // no-op
	assertKids(foreign.ID)
}

func TestJWKSBehaviors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		behavior Behavior
		check    func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{Normal, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || len(decodeJWKS(t, body).Keys) != 1 {
				t.Fatalf("err %v, body %s", err, body)
			}
		}},
		{ServerError, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil {
				t.Fatal(err)
			}
			checkClerkError(t, resp, body, 500, "internal_clerk_error")
		}},
		{Garbage, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid(body) {
				t.Fatalf("err %v, status %v, body %s", err, resp, body)
			}
		}},
		{EmptySet, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || string(body) != `{"keys":[]}` {
				t.Fatalf("err %v, body %s", err, body)
			}
		}},
		{Slow, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || len(decodeJWKS(t, body).Keys) != 1 {
				t.Fatalf("err %v, body %s", err, body)
			}
		}},
		{Reset, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err == nil {
				t.Fatalf("got a response %d %s", resp.StatusCode, body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.behavior.String(), func(t *testing.T) {
			t.Parallel()
			inst := start(t, Options{})
			inst.SetDelay(20 * time.Millisecond)
			inst.SetJWKSBehavior(tt.behavior)
			if got := inst.JWKSBehavior(); got != tt.behavior {
				t.Fatalf("JWKSBehavior %v", got)
			}
			for _, url := range []string{inst.FrontendJWKSURL(), inst.BackendJWKSURL()} {
				began := time.Now()
				resp, body, err := get(t, nil, url, "Bearer "+inst.SecretKey())
				tt.check(t, resp, body, err)
				if tt.behavior == Slow && time.Since(began) < 20*time.Millisecond {
					t.Fatalf("Slow answered after %v", time.Since(began))
				}
			}
			// Misbehaving JWKS endpoints leave the rest of the instance alone.
			resp, body := mustGet(t, inst.URL()+"/v1/other", "Bearer "+inst.SecretKey())
			checkClerkError(t, resp, body, 404, "resource_not_found")
		})
	}
}

func TestBackendJWKSChecksKeyUnderEmptySet(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	inst.SetJWKSBehavior(EmptySet)
	resp, body := mustGet(t, inst.BackendJWKSURL(), "")
	checkClerkError(t, resp, body, 401, "authentication_invalid")
}

func TestSlowStopsWaiting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stop func(cancel context.CancelFunc, inst *Instance)
	}{
		{"when the client goes away", func(cancel context.CancelFunc, _ *Instance) { cancel() }},
		{"when the instance closes", func(_ context.CancelFunc, inst *Instance) { inst.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inst := start(t, Options{})
			inst.SetJWKSBehavior(Slow)
			inst.SetDelay(time.Hour)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, FrontendJWKSPath, nil)
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				inst.Handler().ServeHTTP(rec, req)
				close(done)
			}()
			tt.stop(cancel, inst)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Slow handler still waiting")
			}
			if rec.Body.Len() != 0 {
				t.Fatalf("abandoned request got a body: %s", rec.Body)
			}
		})
	}
}

func TestSlowClientTimeout(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	inst.SetJWKSBehavior(Slow)
	inst.SetDelay(time.Hour)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, _, err := get(t, client, inst.FrontendJWKSURL(), ""); err == nil {
		t.Fatal("Slow answered before the client timeout")
	}
}

func TestDownRefusesConnectionsUntilUp(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	client := &http.Client{} // keep-alive: Down must sever pooled connections too
	defer client.CloseIdleConnections()
	url := inst.FrontendJWKSURL()
	if resp, _, err := get(t, client, url, ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("before Down: %v", err)
	}

	inst.SetJWKSBehavior(Down)
	if inst.JWKSBehavior() != Down {
		t.Fatalf("JWKSBehavior %v, want Down", inst.JWKSBehavior())
	}
	for _, c := range []*http.Client{client, nil} {
		_, _, err := get(t, c, url, "")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("while down: err %v, want connection refused", err)
		}
	}
	inst.Down() // idempotent

	if err := inst.Up(); err != nil {
		t.Fatal(err)
	}
	if inst.URL()+FrontendJWKSPath != url || inst.JWKSBehavior() != Normal {
		t.Fatalf("after Up: URL %s, behavior %v", inst.URL(), inst.JWKSBehavior())
	}
	resp, body, err := get(t, client, url, "")
	if err != nil || resp.StatusCode != 200 || len(decodeJWKS(t, body).Keys) != 1 {
		t.Fatalf("after Up: %v", err)
	}
	if err := inst.Up(); err != nil {
		t.Fatalf("Up while up: %v", err)
	}
	inst.Close()
	if err := inst.Up(); err == nil {
		t.Fatal("Up after Close succeeded")
	}
}

func TestBehaviorSetWhileDownAppliesAfterUp(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	inst.Down()
	inst.SetJWKSBehavior(ServerError)
	if inst.JWKSBehavior() != Down {
		t.Fatalf("JWKSBehavior %v while down", inst.JWKSBehavior())
	}
	if err := inst.Up(); err != nil {
		t.Fatal(err)
	}
	resp, body := mustGet(t, inst.FrontendJWKSURL(), "")
	checkClerkError(t, resp, body, 500, "internal_clerk_error")
}

func TestCounters(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	key := "Bearer " + inst.SecretKey()
	for range 3 {
		mustGet(t, inst.FrontendJWKSURL(), "")
	}
	mustGet(t, inst.BackendJWKSURL(), key)
	mustGet(t, inst.BackendJWKSURL(), "") // 401s count too
	mustGet(t, inst.URL()+"/v1/sessions", key)
	inst.SetJWKSBehavior(ServerError)
	mustGet(t, inst.FrontendJWKSURL(), "")

	for path, want := range map[string]int{FrontendJWKSPath: 4, BackendJWKSPath: 2, "/v1/sessions": 1, "/never": 0} {
		if got := inst.Requests(path); got != want {
			t.Errorf("Requests(%q) = %d, want %d", path, got, want)
		}
	}
	if got := inst.JWKSRequests(); got != 6 {
		t.Errorf("JWKSRequests = %d, want 6", got)
	}
	inst.ResetCounters()
	if inst.JWKSRequests() != 0 || inst.Requests("/v1/sessions") != 0 {
		t.Errorf("counters not reset")
	}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, 0)
	tests := []struct {
		name string
		opts Options
	}{
		{"all interfaces", Options{Addr: "0.0.0.0:0"}},
		{"empty host", Options{Addr: ":0"}},
		{"a host name", Options{Addr: "example.com:0"}},
		{"no port", Options{Addr: "127.0.0.1"}},
		{"negative lifetime", Options{TokenLifetime: -time.Second}},
		{"signing key without private key", Options{SigningKey: &SigningKey{ID: "ins_x", Algorithm: "RS256"}}},
		{"signing key with HS256", Options{SigningKey: &SigningKey{ID: "ins_x", Algorithm: "HS256", Private: key.Private}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.opts.SigningKey == nil {
				tt.opts.SigningKey = key
			}
			if inst, err := New(tt.opts); err == nil {
				inst.Close()
				t.Fatalf("New(%+v) succeeded", tt.opts)
			}
		})
	}
}

func TestNewListensOnLocalhostAndClosesIdempotently(t *testing.T) {
	t.Parallel()
	inst, err := New(Options{Addr: "localhost:0", SigningKey: sharedKey(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := mustGet(t, inst.FrontendJWKSURL(), "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	inst.Close()
	inst.Close()
	if _, _, err := get(t, nil, inst.FrontendJWKSURL(), ""); err == nil {
		t.Fatal("closed instance answered")
	}
}
