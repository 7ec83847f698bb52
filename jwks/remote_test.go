package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/internal/testwait"
)

func TestRemoteInitialLoad(t *testing.T) {
	t.Parallel()
	pub := &rsaKey(t, 0).PublicKey
	srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, pub), rsaJWK("ins_b", RS384, &rsaKey(t, 1).PublicKey)))
	r, clock := newTestRemote(t, srv, nil)
	waitReady(t, r)

	k, err := r.Key(context.Background(), "ins_a")
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	if k.ID != "ins_a" || k.Algorithm != RS256 || k.Public.N.Cmp(pub.N) != 0 {
		t.Fatalf("Key = %s/%s, want ins_a/RS256 with the served modulus", k.ID, k.Algorithm)
	}
	if k2, _ := r.Key(context.Background(), "ins_b"); k2 == nil || k2.Algorithm != RS384 {
		t.Fatalf("ins_b = %v, want an RS384 key", k2)
	}
	if !r.Ready() {
		t.Error("Ready() = false after load")
	}
	st := r.Stats()
	want := Stats{Fetches: 1, Keys: 2, LastSuccess: clock.Now()}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	h := srv.lastHeader()
	if got := h.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	if got := h.Get("User-Agent"); got != "sessiongate" {
		t.Errorf("User-Agent = %q", got)
	}
}

func TestRemoteKeyWaitsForInitialFetch(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
	started, release := srv.blockRequests()
	r, _ := newTestRemote(t, srv, func(c *RemoteConfig) { c.UserAgent = "gate/1" })
	await(t, started, "the server to receive the fetch")
	if r.Ready() {
		t.Fatal("Ready() = true before the first fetch finished")
	}
	result := make(chan error, 1)
	go func() {
		_, err := r.Key(context.Background(), "ins_a")
		result <- err
	}()
	release()
	if err := <-result; err != nil {
		t.Fatalf("Key during the initial fetch: %v", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("server hits = %d, want 1", got)
	}
	if got := srv.lastHeader().Get("User-Agent"); got != "gate/1" {
		t.Errorf("User-Agent = %q", got)
	}
}

func TestRemoteBearerHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret, want string
	}{
		{name: "no secret key sends no Authorization", secret: "", want: ""},
		{name: "secret key is sent as Bearer", secret: "sk_test_abc", want: "Bearer sk_test_abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
			r, _ := newTestRemote(t, srv, func(c *RemoteConfig) { c.SecretKey = tt.secret })
			waitReady(t, r)
			h := srv.lastHeader()
			if got := h.Get("Authorization"); got != tt.want {
				t.Errorf("Authorization = %q, want %q", got, tt.want)
			}
			if _, present := h["Authorization"]; present != (tt.want != "") {
				t.Errorf("Authorization present = %v", present)
			}
		})
	}
}

func TestRemoteRotation(t *testing.T) {
	t.Parallel()
	a := rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)
	b := rsaJWK("ins_b", RS256, &rsaKey(t, 1).PublicKey)
	srv := newJWKSServer(t, jwksJSON(t, a))
	r, clock := newTestRemote(t, srv, nil)
	waitReady(t, r)
	ctx := context.Background()
	keyA, err := r.Key(ctx, "ins_a")
	if err != nil {
		t.Fatal(err)
	}

	// Clerk publishes the next key: an unknown kid refetches once the floor
	// has passed.
	srv.set(http.StatusOK, jwksJSON(t, a, b))
	clock.Advance(DefaultMinRefreshInterval)
	keyB, err := r.Key(ctx, "ins_b")
	if err != nil {
		t.Fatalf("new kid after refetch: %v", err)
	}
	if got, _ := r.Key(ctx, "ins_a"); got != keyA {
		t.Error("unchanged key ins_a got a new *Key after the refetch")
	}
	if keyA.Retired() {
		t.Error("ins_a retired while still published")
	}

	// The old key leaves the set.
	srv.set(http.StatusOK, jwksJSON(t, b))
	clock.Advance(DefaultMinRefreshInterval)
	if _, err := r.Key(ctx, "ins_c"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("unknown kid: err = %v, want ErrKeyNotFound", err)
	}
	if !keyA.Retired() {
		t.Error("ins_a not retired after leaving the set")
	}
	if keyB.Retired() {
		t.Error("ins_b retired while still published")
	}
	if _, err := r.Key(ctx, "ins_a"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("retired kid: err = %v, want ErrKeyNotFound", err)
	}

	// A kid whose key material changes is a new *Key; the old one retires.
	srv.set(http.StatusOK, jwksJSON(t, with(b, "n", a["n"])))
	clock.Advance(DefaultMinRefreshInterval)
	_, _ = r.Key(ctx, "ins_d") // unknown: refetch
	newB, err := r.Key(ctx, "ins_b")
	if err != nil {
		t.Fatal(err)
	}
	if newB == keyB || !keyB.Retired() || newB.Retired() {
		t.Errorf("changed key: same pointer %v, old retired %v, new retired %v", newB == keyB, keyB.Retired(), newB.Retired())
	}
	if got := srv.hits.Load(); got != 4 {
		t.Errorf("server hits = %d, want 4", got)
	}
}

func TestRemoteUnknownKidBurst(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
	r, clock := newTestRemote(t, srv, nil)
	waitReady(t, r)
	clock.Advance(DefaultMinRefreshInterval)

	burst := func() (hits int64) {
		before := srv.hits.Load()
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 1000)
		for i := range 1000 {
			wg.Go(func() {
				<-start
				_, err := r.Key(context.Background(), fmt.Sprintf("ins_unknown_%d", i))
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("err = %v, want ErrKeyNotFound", err)
			}
		}
		return srv.hits.Load() - before
	}

	if got := burst(); got > 1 {
		t.Errorf("first burst: %d fetches, want at most 1", got)
	}
	if got := burst(); got != 0 {
		t.Errorf("second burst within the floor: %d fetches, want 0", got)
	}
	if got := r.Stats().Fetches; got > 2 {
		t.Errorf("Stats.Fetches = %d, want at most 2", got)
	}
	// Known kids are unaffected.
	if _, err := r.Key(context.Background(), "ins_a"); err != nil {
		t.Errorf("known kid after bursts: %v", err)
	}
}

func TestRemoteCallerCancel(t *testing.T) {
	t.Parallel()
	t.Run("during a slow refetch", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
		r, clock := newTestRemote(t, srv, nil)
		waitReady(t, r)
		started, release := srv.blockRequests()
		defer release()
		clock.Advance(DefaultMinRefreshInterval)

		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() {
			_, err := r.Key(ctx, "ins_new")
			result <- err
		}()
		await(t, started, "the server to receive the fetch")
		cancel()
		select {
		case err := <-result:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Key did not return after its context was cancelled")
		}
		// The shared fetch carries on for others; known kids never wait.
		if _, err := r.Key(context.Background(), "ins_a"); err != nil {
			t.Errorf("known kid during a slow fetch: %v", err)
		}
	})
	t.Run("during a slow initial fetch", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
		started, release := srv.blockRequests()
		defer release()
		r, _ := newTestRemote(t, srv, nil)
		await(t, started, "the server to receive the fetch")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := r.Key(ctx, "ins_a"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Key: err = %v, want DeadlineExceeded", err)
		}
		if err := r.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitReady: err = %v, want DeadlineExceeded", err)
		}
	})
}

func TestRemoteFailureKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	good := rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)
	tests := []struct {
		name    string
		status  int
		body    []byte
		wantErr string // in Stats.LastError
	}{
		{name: "server error", status: http.StatusBadGateway, body: []byte(`upstream down`), wantErr: "unexpected status 502"},
		{name: "rate limited", status: http.StatusTooManyRequests, body: nil, wantErr: "unexpected status 429"},
		{name: "garbage body", status: http.StatusOK, body: []byte(`<html>oops</html>`), wantErr: "not a JSON object"},
		{name: "empty key set", status: http.StatusOK, body: []byte(`{"keys":[]}`), wantErr: "empty"},
		{name: "no usable key", status: http.StatusOK, body: jwksJSON(t, with(good, "alg", nil)), wantErr: "no usable key"},
		{name: "oversize body", status: http.StatusOK,
			body: append([]byte(`{"keys":[`), []byte(strings.Repeat(" ", maxKeySetBytes))...), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newJWKSServer(t, jwksJSON(t, good))
			r, clock := newTestRemote(t, srv, nil)
			waitReady(t, r)
			ctx := context.Background()
			keyA, _ := r.Key(ctx, "ins_a")

			srv.set(tt.status, tt.body)
			clock.Advance(DefaultMinRefreshInterval)
			if _, err := r.Key(ctx, "ins_new"); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("unknown kid during outage: err = %v, want ErrKeyNotFound", err)
			}
			if got, err := r.Key(ctx, "ins_a"); err != nil || got != keyA || got.Retired() {
				t.Fatalf("known kid during outage: %v, %v (same pointer %v)", got, err, got == keyA)
			}
			st := r.Stats()
			if st.Failures < 1 || st.Keys != 1 || !r.Ready() {
				t.Errorf("Stats = %+v, Ready = %v; want a failure counted and the set kept", st, r.Ready())
			}
			if !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("LastError = %q, want it to contain %q", st.LastError, tt.wantErr)
			}
			if strings.Contains(st.LastError, "oops") || strings.Contains(st.LastError, "upstream down") {
				t.Errorf("LastError quotes the response body: %q", st.LastError)
			}

			// Recovery: the next good fetch clears LastError.
			srv.set(http.StatusOK, jwksJSON(t, good))
			clock.Advance(DefaultMinRefreshInterval)
			_, _ = r.Key(ctx, "ins_new2")
			if st := r.Stats(); st.LastError != "" {
				t.Errorf("LastError after recovery = %q", st.LastError)
			}
			if got, _ := r.Key(ctx, "ins_a"); got != keyA {
				t.Error("recovery replaced an unchanged key")
			}
		})
	}
}

func TestRemoteRetriesAfterFailedStart(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusServiceUnavailable, nil)
	r, _ := newTestRemote(t, srv, nil)
	testwait.Eventually(t, "a failed first fetch", func() bool { return r.Stats().Failures >= 1 })
	if _, err := r.Key(context.Background(), "ins_a"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Key before any load: err = %v, want ErrUnavailable", err)
	}
	if r.Ready() {
		t.Error("Ready() = true with no key set")
	}
	// The backoff retry (about 250 ms) picks the set up without any caller.
	srv.set(http.StatusOK, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
	waitReady(t, r)
	if _, err := r.Key(context.Background(), "ins_a"); err != nil {
		t.Errorf("Key after recovery: %v", err)
	}
}

func TestRemoteNeverLoadedIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusInternalServerError, nil)
	r, _ := newTestRemote(t, srv, func(c *RemoteConfig) { c.HTTPClient = &http.Client{} })
	ctx := context.Background()
	// The first call joins the initial fetch (or finds it failed).
	if _, err := r.Key(ctx, "ins_a"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Key(ctx, "ins_a"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Close: err = %v, want ErrUnavailable", err)
	}
	if err := r.WaitReady(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("WaitReady after Close: err = %v, want ErrUnavailable", err)
	}
}

func TestRemoteMaxStale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxStale  time.Duration
		age       time.Duration
		wantReady bool
	}{
		{name: "default 24h, just inside", age: 24 * time.Hour, wantReady: true},
		{name: "default 24h, exceeded", age: 24*time.Hour + time.Second, wantReady: false},
		{name: "configured 2h, exceeded", maxStale: 2 * time.Hour, age: 2*time.Hour + time.Second, wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
			r, clock := newTestRemote(t, srv, func(c *RemoteConfig) { c.MaxStale = tt.maxStale })
			waitReady(t, r)
			srv.set(http.StatusInternalServerError, nil)
			clock.Advance(tt.age)
			_, err := r.Key(context.Background(), "ins_a")
			if got := r.Ready(); got != tt.wantReady {
				t.Errorf("Ready() = %v, want %v", got, tt.wantReady)
			}
			if tt.wantReady && err != nil {
				t.Errorf("Key: %v", err)
			}
			if !tt.wantReady && !errors.Is(err, ErrUnavailable) {
				t.Errorf("Key: err = %v, want ErrUnavailable", err)
			}
			if !tt.wantReady {
				if _, err := r.Key(context.Background(), "ins_unknown"); !errors.Is(err, ErrUnavailable) {
					t.Errorf("unknown kid on a stale set: err = %v, want ErrUnavailable", err)
				}
			}
		})
	}
}

func TestRemoteBackgroundRefresh(t *testing.T) {
	t.Parallel()
	a := rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)
	b := rsaJWK("ins_b", RS256, &rsaKey(t, 1).PublicKey)
	srv := newJWKSServer(t, jwksJSON(t, a))
	r, _ := newTestRemote(t, srv, func(c *RemoteConfig) { c.RefreshInterval = 20 * time.Millisecond; c.MaxStale = time.Hour })
	waitReady(t, r)
	keyA, _ := r.Key(context.Background(), "ins_a")
	srv.set(http.StatusOK, jwksJSON(t, b))
	testwait.Eventually(t, "the background refresh to retire ins_a", keyA.Retired)
	if r.Stats().Fetches < 2 {
		t.Errorf("Fetches = %d", r.Stats().Fetches)
	}
}

func TestRemoteSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	const secret = "sk_test_TOPSECRETvalue"
	srv := newJWKSServer(t, nil)
	// A hostile or verbose server echoing the credential back.
	srv.set(http.StatusUnauthorized, []byte(`{"errors":[{"code":"clerk_key_invalid","message":"bad key Bearer `+secret+`"}]}`))
	core, logs := observer.New(zap.DebugLevel)
	r, _ := newTestRemote(t, srv, func(c *RemoteConfig) {
		c.SecretKey = secret
		c.Logger = zap.New(core)
		c.URL = srv.URL + "/v1/jwks?token=" + secret
	})
	_, err := r.Key(context.Background(), "ins_a")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	testwait.Eventually(t, "a logged failure", func() bool { return logs.Len() > 0 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	texts := []string{err.Error(), r.Stats().LastError}
	for _, e := range logs.All() {
		texts = append(texts, e.Message)
		for k, v := range e.ContextMap() {
			texts = append(texts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	for _, s := range texts {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("secret leaked: %q", s)
		}
	}
	if !strings.Contains(r.Stats().LastError, "401") {
		t.Errorf("LastError = %q, want the status", r.Stats().LastError)
	}
	if got := srv.lastHeader().Get("Authorization"); got != "Bearer "+secret {
		t.Errorf("Authorization = %q", got)
	}
}

func TestRemoteRedirectDowngradeRefused(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusOK, nil)
	redir := newJWKSServer(t, nil)
	redir.Config.Handler = http.RedirectHandler("http://jwks.example.invalid/jwks", http.StatusFound)
	r, _ := newTestRemote(t, redir, nil)
	testwait.Eventually(t, "a failed fetch", func() bool { return r.Stats().Failures >= 1 })
	if got := r.Stats().LastError; !strings.Contains(got, "redirect refused") {
		t.Errorf("LastError = %q, want a refused redirect", got)
	}
}

func TestNewRemoteConfigErrors(t *testing.T) {
	t.Parallel()
	offline := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("offline")
	})}
	tests := []struct {
		name    string
		cfg     RemoteConfig
		wantErr string // "" means accepted
	}{
		{name: "URL is required", cfg: RemoteConfig{}, wantErr: "RemoteConfig.URL"},
		{name: "http to a public host is refused", cfg: RemoteConfig{URL: "http://api.clerk.com/v1/jwks"}, wantErr: "RemoteConfig.URL"},
		{name: "http to a private address is refused", cfg: RemoteConfig{URL: "http://10.0.0.1/jwks"}, wantErr: "RemoteConfig.URL"},
		{name: "other schemes are refused", cfg: RemoteConfig{URL: "ftp://127.0.0.1/jwks"}, wantErr: "RemoteConfig.URL"},
		{name: "relative URL is refused", cfg: RemoteConfig{URL: "/v1/jwks"}, wantErr: "RemoteConfig.URL"},
		{name: "user info is refused", cfg: RemoteConfig{URL: "https://u:p@api.clerk.com/v1/jwks"}, wantErr: "RemoteConfig.URL"},
		{name: "negative RefreshInterval", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", RefreshInterval: -1}, wantErr: "RemoteConfig.RefreshInterval"},
		{name: "negative MinRefreshInterval", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", MinRefreshInterval: -time.Second}, wantErr: "RemoteConfig.MinRefreshInterval"},
		{name: "negative MaxStale", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", MaxStale: -time.Hour}, wantErr: "RemoteConfig.MaxStale"},
		{name: "MaxStale shorter than RefreshInterval", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", MaxStale: time.Minute}, wantErr: "RemoteConfig.MaxStale"},
		{name: "secret key with a line break", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", SecretKey: "sk_x\r\nX-Evil: 1"}, wantErr: "RemoteConfig.SecretKey"},

		{name: "https is accepted", cfg: RemoteConfig{URL: "https://api.clerk.com/v1/jwks", HTTPClient: offline}},
		{name: "http to 127.0.0.1 is accepted", cfg: RemoteConfig{URL: "http://127.0.0.1:1/jwks", HTTPClient: offline}},
		{name: "http to localhost is accepted", cfg: RemoteConfig{URL: "http://localhost:1/jwks", HTTPClient: offline}},
		{name: "http to ::1 is accepted", cfg: RemoteConfig{URL: "http://[::1]:1/jwks", HTTPClient: offline}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewRemote(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewRemote: %v", err)
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = r.Close()
				t.Fatalf("NewRemote accepted the config, want an error naming %s", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to name %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "sk_x") {
				t.Errorf("err quotes the secret: %v", err)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRemoteClose(t *testing.T) {
	t.Parallel()
	t.Run("stops the loop and is idempotent", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
		r, clock := newTestRemote(t, srv, nil)
		waitReady(t, r)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.done:
		default:
			t.Fatal("loop still running after Close")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		hits := srv.hits.Load()
		clock.Advance(DefaultMinRefreshInterval)
		if _, err := r.Key(context.Background(), "ins_other"); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("unknown kid after Close: err = %v, want ErrKeyNotFound", err)
		}
		if _, err := r.Key(context.Background(), "ins_a"); err != nil {
			t.Errorf("known kid after Close: %v", err)
		}
		if got := srv.hits.Load(); got != hits {
			t.Errorf("fetch after Close")
		}
	})
	t.Run("cancels a hung fetch and releases its waiters", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, jwksJSON(t, rsaJWK("ins_a", RS256, &rsaKey(t, 0).PublicKey)))
		started, release := srv.blockRequests()
		defer release()
		r, _ := newTestRemote(t, srv, func(c *RemoteConfig) { c.HTTPClient = &http.Client{} })
		await(t, started, "the server to receive the fetch")
		result := make(chan error, 1)
		go func() {
			_, err := r.Key(context.Background(), "ins_a")
			result <- err
		}()
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		for _, ch := range []chan error{closed, result} {
			select {
			case err := <-ch:
				if ch == result && !errors.Is(err, ErrUnavailable) {
					t.Errorf("waiter: err = %v, want ErrUnavailable", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close or a waiter hung on an in-flight fetch")
			}
		}
		if r.Stats().Failures != 0 {
			t.Errorf("a fetch cancelled by Close counted as a failure: %+v", r.Stats())
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n        int
		refresh  time.Duration
		min, max time.Duration
	}{
		{0, 5 * time.Minute, 125 * time.Millisecond, 250 * time.Millisecond},
		{1, 5 * time.Minute, 250 * time.Millisecond, 500 * time.Millisecond},
		{3, 5 * time.Minute, time.Second, 2 * time.Second},
		{20, 5 * time.Minute, 30 * time.Second, time.Minute},
		{200, 5 * time.Minute, 30 * time.Second, time.Minute},
		{20, 10 * time.Second, 5 * time.Second, 10 * time.Second},
		{0, 100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		for range 50 {
			if d := backoff(tt.n, tt.refresh); d < tt.min || d > tt.max {
				t.Errorf("backoff(%d, %v) = %v, want in [%v, %v]", tt.n, tt.refresh, d, tt.min, tt.max)
			}
		}
	}
}

func BenchmarkRemoteKeyHit(b *testing.B) {
	srv := newJWKSServer(b, jwksJSON(b, rsaJWK("ins_a", RS256, &rsaKey(b, 0).PublicKey)))
	r, _ := newTestRemote(b, srv, func(c *RemoteConfig) { c.Now = time.Now })
	waitReady(b, r)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Key(ctx, "ins_a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
