package jwks

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// keySource is the middleware's KeySource, restated here so that every
// source is checked against its shape.
type keySource interface {
	Key(ctx context.Context, kid string) (*Key, error)
}

var (
	_ keySource = (*Remote)(nil)
	_ keySource = (*Static)(nil)
	_ keySource = (*Memory)(nil)
)

// testKeys are generated once per test binary: RSA generation is the slow
// part of these tests. The slice is never modified.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	return keys
})

var shortKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

// rsaKey returns the i-th shared 2048-bit test key.
func rsaKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	return testKeys()[i]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK hand-writes a public RSA JWK. Empty alg leaves "alg" out.
func rsaJWK(kid, alg string, pub *rsa.PublicKey) map[string]any {
	m := map[string]any{
		"kty": "RSA",
		"use": "sig",
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
	}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// with returns a copy of m with the given members set (nil deletes).
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func jwksJSON(tb testing.TB, keys ...map[string]any) []byte {
	tb.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type fakeClock = testclock.Clock

func newFakeClock() *fakeClock { return testclock.New(time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)) }

// jwksServer serves a mutable JWKS and records what it was asked.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex // guards following
	body    []byte
	status  int
	block   chan struct{} // when non-nil, requests wait for it to close
	started chan struct{} // when non-nil, gets a value per request (non-blocking)
	headers []http.Header
}

func newJWKSServer(tb testing.TB, body []byte) *jwksServer {
	tb.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	body, status, block, started := s.body, s.status, s.block, s.started
	s.mu.Unlock()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// blockRequests makes later requests wait until the returned func is called
// (or the request is cancelled); started receives a value when one arrives.
func (s *jwksServer) blockRequests() (started <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	block := make(chan struct{})
	st := make(chan struct{}, 1)
	s.block, s.started = block, st
	var once sync.Once
	return st, func() {
		once.Do(func() {
			s.mu.Lock()
			s.block, s.started = nil, nil
			s.mu.Unlock()
			close(block)
		})
	}
}

func (s *jwksServer) lastHeader() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.headers) == 0 {
		return nil
	}
	return s.headers[len(s.headers)-1]
}

// newTestRemote starts a Remote on srv with a fake clock and an hour-long
// refresh interval, so that only the test causes fetches.
func newTestRemote(tb testing.TB, srv *jwksServer, mutate func(*RemoteConfig)) (*Remote, *fakeClock) {
	tb.Helper()
	clock := newFakeClock()
	cfg := RemoteConfig{
		URL:             srv.URL,
		RefreshInterval: time.Hour,
		Now:             clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := NewRemote(cfg)
	if err != nil {
		tb.Fatalf("NewRemote: %v", err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r, clock
}

func waitReady(tb testing.TB, r *Remote) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		tb.Fatalf("WaitReady: %v (stats %+v)", err, r.Stats())
	}
}

// await fails the test instead of hanging when ch never delivers.
func await(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	testwait.Receive(tb, ch, what)
}
