package clerktest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/internal/netutil"
)

// Options configures an Instance. The zero value is ready to use.
type Options struct {
	// SecretKey is the Backend API secret key the fake expects as
	// "Authorization: Bearer <key>". Empty: "sk_test_" and 42 random base62
	// characters.
	SecretKey string
	// Now is the clock for the iat, nbf and exp of minted tokens and the
	// timestamps of sessions. Nil: time.Now.
	Now func() time.Time
	// Addr is the loopback address to listen on. Empty: "127.0.0.1:0" (a free
	// port). A host that is not a loopback IP or "localhost" is an error: the
	// fake MUST NOT listen where other hosts can reach it.
	Addr string
	// TokenLifetime is exp − iat for minted tokens. Zero: 60 s, Clerk's
	// default.
	TokenLifetime time.Duration
	// AuthorizedParty is the azp put in minted tokens. Empty:
	// "http://localhost:3000".
	AuthorizedParty string
	// SigningKey is the first signing key. Nil: a new RSA-2048 RS256 key
	// with kid "ins_…". Tests that start many instances share one key here
	// to avoid the cost of RSA key generation.
	SigningKey *SigningKey
	// Development makes the fake a development instance (devbrowser.go): a
	// pk_test_ publishable key, dev-browser tokens (__clerk_db_jwt)
	// instead of the __client cookie, handshake payloads in the URL, and
	// sign-in that sets no application cookie. Default: production.
	Development bool
}

// Default values of Options fields.
const (
	// DefaultTokenLifetime is the default exp − iat: Clerk's 60 s.
	DefaultTokenLifetime = 60 * time.Second
	// DefaultAuthorizedParty is the default azp: a local dev server origin.
	DefaultAuthorizedParty = "http://localhost:3000"
	defaultAddr            = "127.0.0.1:0"
)

// Paths the fake serves.
const (
	// FrontendJWKSPath is the Frontend API JWKS, served without
	// authentication.
	FrontendJWKSPath = "/.well-known/jwks.json"
	// BackendJWKSPath is the Backend API JWKS, served only with the secret
	// key.
	BackendJWKSPath = "/v1/jwks"
)

// Instance is a fake Clerk instance listening on loopback. Its methods are
// safe for concurrent use.
type Instance struct {
	secretKey string
	now       func() time.Time
	lifetime  time.Duration
	azp       string
	addr      string // host:port, fixed by the first listen so Up reuses it
	url       string

	srv      *http.Server
	handler  http.Handler
	mux      *http.ServeMux
	closed   chan struct{} // closed by Close
	serving  sync.WaitGroup
	keys     keyRing
	sessions sessionStore
	// machineCreds holds machines, API keys, M2M and OAuth tokens.
	machineCreds machineStore
	counters     counters
	api          apiState      // Backend API endpoints: behaviors, templates, nonces
	frontend     frontendState // Frontend API: browser clients, handshake format

	mu       sync.Mutex // guards following
	ln       net.Listener
	conns    map[net.Conn]struct{}
	down     bool
	shut     bool
	behavior Behavior
	delay    time.Duration
}

// New starts a fake Clerk instance. Call Close when done (Start does it for
// tests).
func New(opts Options) (*Instance, error) {
	i := &Instance{
		secretKey: opts.SecretKey,
		now:       opts.Now,
		lifetime:  opts.TokenLifetime,
		azp:       opts.AuthorizedParty,
		closed:    make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	if i.secretKey == "" {
		i.secretKey = "sk_test_" + randomBase62(42)
	}
	if i.now == nil {
		i.now = time.Now
	}
	switch {
	case i.lifetime < 0:
		return nil, fmt.Errorf("clerktest: TokenLifetime %v is negative", i.lifetime)
	case i.lifetime == 0:
		i.lifetime = DefaultTokenLifetime
	}
	if i.azp == "" {
		i.azp = DefaultAuthorizedParty
	}
	addr := opts.Addr
	if addr == "" {
		addr = defaultAddr
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	key := opts.SigningKey
	if key == nil {
		var err error
		if key, err = NewSigningKey("", ""); err != nil {
			return nil, err
		}
	} else if key.Private == nil || !isRSAAlg(key.Algorithm) || key.ID == "" {
		return nil, errors.New("clerktest: Options.SigningKey needs an ID, an RS256/RS384/RS512 Algorithm and a Private key")
	}
	i.keys.rotate(key)
	i.sessions.init()
	i.frontend.development = opts.Development
	i.machineCreds.init()
	i.counters.init()
	i.mux = http.NewServeMux()
	i.routes()
	i.handler = i.counting(i.mux)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("clerktest: listen: %w", err)
	}
	i.addr = ln.Addr().String()
	i.url = "http://" + i.addr
	i.srv = &http.Server{
		Handler:           i.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         i.trackConn,
		// Resets and refused connections are the point of the fake: keep
		// the server's complaints about them out of test output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	i.mu.Lock()
	i.serveLocked(ln)
	i.mu.Unlock()
	return i, nil
}

// TB is what Start, StartSatellite and MustMint need of a test: a
// *testing.T, *testing.B or *testing.F satisfies it. The package does not
// import "testing", so the sessiongate binary (whose dev mode runs this
// fake) does not link the test framework.
type TB interface {
	// Helper marks the caller as a test helper, as testing.TB's does.
	Helper()
	// Fatalf fails the test with a message and stops it.
	Fatalf(format string, args ...any)
	// Cleanup registers a function to run when the test ends.
	Cleanup(func())
}

// Start is New for tests: it fails tb at once on error and closes the
// instance in tb.Cleanup.
func Start(tb TB, opts Options) *Instance {
	tb.Helper()
	i, err := New(opts)
	if err != nil {
		tb.Fatalf("clerktest: %v", err)
	}
	tb.Cleanup(i.Close)
	return i
}

// checkLoopback rejects listen addresses other hosts could reach.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("clerktest: Addr %q: %w", addr, err)
	}
	if !netutil.IsLoopbackHost(host) {
		return fmt.Errorf("clerktest: Addr %q: the fake only listens on a loopback address (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// serveLocked serves ln in the background.
func (i *Instance) serveLocked(ln net.Listener) {
	i.ln = ln
	i.down = false
	i.serving.Add(1)
	go func() {
		defer i.serving.Done()
		_ = i.srv.Serve(ln) // returns when ln is closed (Down) or on Close
	}()
}

// trackConn records open connections so that Down can sever them: a client
// with a pooled keep-alive connection must see the outage too.
func (i *Instance) trackConn(c net.Conn, state http.ConnState) {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch state {
	case http.StateNew:
		if i.down {
			// Accepted just before the listener closed.
			c.Close()
			return
		}
		i.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(i.conns, c)
	}
}

// Close stops the server, severs every connection and ends any Slow wait. It
// is idempotent.
func (i *Instance) Close() {
	i.mu.Lock()
	if i.shut {
		i.mu.Unlock()
		return
	}
	i.shut = true
	close(i.closed)
	i.mu.Unlock()
	_ = i.srv.Close()
	i.serving.Wait()
}

// Down closes the listener and every open connection: new connections are
// refused until Up. It is what SetJWKSBehavior(Down) does, and it takes down
// every path, not only the JWKS ones (a Handler mounted elsewhere keeps
// answering). Down on a down or closed instance does nothing.
func (i *Instance) Down() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.downLocked()
}

func (i *Instance) downLocked() {
	if i.down || i.shut {
		return
	}
	i.down = true
	_ = i.ln.Close()
	i.ln = nil
	for c := range i.conns {
		_ = c.Close()
		delete(i.conns, c)
	}
}

// Up listens again on the same address after Down; if the behavior was Down
// it becomes Normal. Up on an instance that is up does nothing. It fails if
// the instance is closed or the address was taken meanwhile.
func (i *Instance) Up() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.shut {
		return errors.New("clerktest: Up on a closed instance")
	}
	if i.behavior == Down {
		i.behavior = Normal
	}
	if !i.down {
		return nil
	}
	ln, err := net.Listen("tcp", i.addr)
	if err != nil {
		return fmt.Errorf("clerktest: listen again on %s: %w", i.addr, err)
	}
	i.serveLocked(ln)
	return nil
}

// URL returns the base URL the instance listens on, http://127.0.0.1:port.
// It does not change across Down and Up.
func (i *Instance) URL() string { return i.url }

// Issuer returns the Frontend API URL, the exact "iss" of minted tokens. It
// equals URL.
func (i *Instance) Issuer() string { return i.url }

// APIURL returns the Backend API base URL (its paths start with /v1/). It
// equals URL, so the Backend API client appends "/v1/…" itself, as with
// https://api.clerk.com.
func (i *Instance) APIURL() string { return i.url }

// FrontendJWKSURL returns the public Frontend API JWKS URL.
func (i *Instance) FrontendJWKSURL() string { return i.url + FrontendJWKSPath }

// BackendJWKSURL returns the Backend API JWKS URL, which requires
// "Authorization: Bearer <SecretKey>".
func (i *Instance) BackendJWKSURL() string { return i.url + BackendJWKSPath }

// SecretKey returns the Backend API secret key.
func (i *Instance) SecretKey() string { return i.secretKey }

// Handler returns the instance's HTTP handler (the one its server runs), for
// mounting in another server. Counters and behaviors apply to it too.
func (i *Instance) Handler() http.Handler { return i.handler }
