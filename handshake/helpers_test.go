package handshake_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/internal/testclock"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
)

// Clerk's published test vectors: publishable key, Frontend API, cookie suffix.
const (
	pkLive   = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
	fapiHost = "clerk.inspired.puma-74.lcl.dev"
	issuer   = "https://" + fapiHost
	suffix   = "MqCvchyS"
	appURL   = "https://app.example.com"
)

var (
	keyOnce          sync.Once
	testKey, foreign *clerktest.SigningKey
)

func keys(tb testing.TB) (*clerktest.SigningKey, *clerktest.SigningKey) {
	keyOnce.Do(func() {
		var err error
		if testKey, err = clerktest.NewSigningKey("ins_handshaketest", "RS256"); err != nil {
			panic(err)
		}
		// Same kid, another key: a valid-looking token with a bad signature.
		if foreign, err = clerktest.NewSigningKey("ins_handshaketest", "RS256"); err != nil {
			panic(err)
		}
	})
	return testKey, foreign
}

// clock is a settable clock shared by the fake, the Gate and the test.
type clock = testclock.Clock

// exchanger records nonce exchanges.
type exchanger struct {
	mu     sync.Mutex
	nonces []string
	fn     func(ctx context.Context, nonce string) ([]string, error)
}

func (x *exchanger) GetHandshakePayload(ctx context.Context, nonce string) ([]string, error) {
	x.mu.Lock()
	x.nonces = append(x.nonces, nonce)
	fn := x.fn
	x.mu.Unlock()
	if fn == nil {
		return nil, context.Canceled
	}
	return fn(ctx, nonce)
}

func (x *exchanger) calls() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.nonces...)
}

type env struct {
	inst *clerktest.Instance
	gate *middleware.Gate
	hs   *handshake.Handshaker
	clk  *clock
	exch *exchanger
	logs *observer.ObservedLogs
}

func newEnv(t *testing.T, mutate func(*handshake.Config)) *env {
	t.Helper()
	k, _ := keys(t)
	clk := testclock.New(time.Unix(epoch, 0))
	inst := clerktest.Start(t, clerktest.Options{SigningKey: k, Now: clk.Now, AuthorizedParty: appURL})
	gate, err := middleware.New(middleware.Config{Issuer: issuer, Keys: jwks.NewMemory(inst.PublicKeys()...), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	e := &env{inst: inst, gate: gate, clk: clk, exch: &exchanger{}, logs: logs}
	cfg := handshake.Config{
		Gate:         gate,
		FrontendAPI:  fapiHost,
		CookieSuffix: suffix,
		Production:   true,
		Exchanger:    e.exch,
		Logger:       zap.New(core),
		Now:          clk.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if e.hs, err = handshake.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// mint mints a session token of the note's instance (iss overridden).
func (e *env) mint(t *testing.T, opts ...clerktest.TokenOption) string {
	t.Helper()
	return e.inst.MustMint(t, append([]clerktest.TokenOption{clerktest.WithUser("user_1"), clerktest.WithClaim("iss", issuer)}, opts...)...)
}

// now is the clock's now in Unix seconds.
func (e *env) now() int64 { return e.clk.Now().Unix() }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// nav are the headers of a top-level navigation.
var nav = map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}

// fetchHdr are the headers of a fetch() call.
var fetchHdr = map[string]string{"Sec-Fetch-Dest": "empty", "Accept": "*/*"}

type kv = [2]string

func request(method, target string, hdr map[string]string, cookies ...kv) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c[0], Value: c[1]})
	}
	return r
}

// run authenticates r with the default policy; publicURL is appURL + the
// request URI.
func (e *env) run(r *http.Request) *handshake.Outcome {
	return e.hs.Authenticate(r, middleware.Policy{}, func() string { return appURL + r.URL.RequestURI() }, true)
}

// wantRedirect checks a Redirect outcome with Clerk's reason and returns the
// parsed Location.
func wantRedirect(t *testing.T, o *handshake.Outcome, reason string) *url.URL {
	t.Helper()
	if o.Status != handshake.Redirect {
		t.Fatalf("outcome %v (err %v), want a handshake redirect %s", o.Status, o.Err, reason)
	}
	if o.ClerkReason != reason {
		t.Errorf("reason %q, want %q", o.ClerkReason, reason)
	}
	u, err := url.Parse(o.Location)
	if err != nil {
		t.Fatalf("Location %q: %v", o.Location, err)
	}
	if got := u.Query().Get("__clerk_hs_reason"); got != reason {
		t.Errorf("__clerk_hs_reason = %q, want %q", got, reason)
	}
	if !o.NoStore {
		t.Error("a redirect without no-store")
	}
	return u
}

// wantSignedOut checks a SignedOut outcome with a sessiongate reason, and Clerk's
// reason in the message when given.
func wantSignedOut(t *testing.T, o *handshake.Outcome, reason middleware.Reason, clerkReason string) {
	t.Helper()
	if o.Status != handshake.SignedOut {
		t.Fatalf("outcome %v (Location %q), want signed-out %s", o.Status, o.Location, reason)
	}
	if o.Location != "" {
		t.Errorf("signed-out with a Location %q", o.Location)
	}
	if o.Err == nil || o.Err.Reason != reason {
		t.Fatalf("err %v, want reason %s", o.Err, reason)
	}
	if clerkReason != "" && !strings.Contains(o.Err.Message, clerkReason) {
		t.Errorf("message %q lacks Clerk's reason %q", o.Err.Message, clerkReason)
	}
}

func wantSignedIn(t *testing.T, o *handshake.Outcome, sub string) {
	t.Helper()
	if o.Status != handshake.SignedIn {
		t.Fatalf("outcome %v (err %v, Location %q), want signed-in", o.Status, o.Err, o.Location)
	}
	if o.Claims == nil || o.Claims.Subject != sub {
		t.Fatalf("claims %+v, want sub %s", o.Claims, sub)
	}
}

// epoch is where every test clock starts, in Unix seconds.
const epoch = 1_760_000_000

// omitted, as a claim value for handshakeJWT, leaves the claim out.
type omitted struct{}

// handshakeJWT signs {"handshake": directives} plus extra claims with key
// and header edits: Clerk's format has no other claim. In extra, a nil value
// sends null, omitted{} leaves the claim out.
func handshakeJWT(t *testing.T, key *clerktest.SigningKey, header map[string]any, alg string, directives []string, extra map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": key.Algorithm, "kid": key.ID, "typ": "JWT"}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	if alg == "" {
		alg = key.Algorithm
	}
	p := map[string]any{"handshake": directives}
	for k, v := range extra {
		if _, ok := v.(omitted); ok {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	hb, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return clerktest.Sign(hb, pb, key, alg)
}
