package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/internal/tracing"
)

// Defaults applied to zero RemoteConfig fields.
const (
	DefaultHTTPTimeout        = 5 * time.Second
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxStale           = 24 * time.Hour
	DefaultUserAgent          = "sessiongate"
)

const (
	// initialBackoff and maxBackoff bound the retry delay after a failed
	// fetch; the cap is also never above RefreshInterval.
	initialBackoff = 250 * time.Millisecond
	maxBackoff     = time.Minute
	// fetchTimeout is a backstop for an HTTPClient without a Timeout: a hung
	// fetch would otherwise hold every unknown-kid caller's shared refetch.
	fetchTimeout = time.Minute
)

// RemoteConfig configures a Remote. The zero value of every field but URL is
// a usable default.
type RemoteConfig struct {
	// URL is the JWKS endpoint: Clerk's Backend API {api_url}/v1/jwks (with
	// SecretKey) or the Frontend API {issuer}/.well-known/jwks.json. Required.
	// It MUST be https; http is allowed only for a loopback host (tests, a
	// local mock). It MUST NOT carry user info: use SecretKey.
	URL string

	// SecretKey, when set, is sent as "Authorization: Bearer <SecretKey>"
	// (the Backend API requires it). It is never logged nor put in an error.
	SecretKey string

	// HTTPClient makes the requests. Nil means a client with a 5 s timeout
	// that refuses redirects to a URL that would not be accepted as URL.
	HTTPClient *http.Client

	// RefreshInterval is the time between background refreshes after a
	// successful fetch. Zero means 5 minutes.
	RefreshInterval time.Duration

	// MinRefreshInterval is the floor between the start of one fetch and a
	// refetch caused by an unknown kid, whatever the traffic: a kid still
	// unknown is rejected without a fetch until the floor has passed. Zero
	// means 10 seconds.
	MinRefreshInterval time.Duration

	// MaxStale is how long the last good key set is used after it was
	// fetched when refreshes fail. After that Key returns ErrUnavailable and
	// Ready reports false. Zero means 24 hours.
	MaxStale time.Duration

	// Now returns the current time for staleness and the refetch floor. Nil
	// means time.Now. Background timers use real time whatever Now says.
	Now func() time.Time

	// Logger receives key set changes and fetch failures, with the fields
	// "url" (no credentials, no query), "kid" and "error". Nil means
	// zap.NewNop().
	Logger *zap.Logger

	// UserAgent is sent as User-Agent. Empty means "sessiongate".
	UserAgent string

	// TracerProvider, when set, records a client span per fetch, named
	// "GET jwks" (its trace is the one of the request that caused a
	// refetch for an unknown kid, linked, as the fetch is shared; a
	// start-up or background fetch starts its own). The URL's query and
	// the secret key are never recorded. Nil: no spans, no cost.
	TracerProvider trace.TracerProvider
}

// Stats are a key source's counters, for metrics.
type Stats struct {
	// Fetches counts fetch attempts, successful or not.
	Fetches uint64
	// Failures counts failed fetch attempts, a rejected key set included.
	Failures uint64
	// Keys is the number of keys in the current set.
	Keys int
	// LastSuccess is when the current set was fetched; zero if never.
	LastSuccess time.Time
	// LastError describes the most recent fetch failure, or is empty if the
	// most recent fetch succeeded. It never contains the secret key.
	LastError string
}

// Remote is a key source backed by a JWKS endpoint: a key set fetched at
// start, refreshed in the background, and refetched (once, shared, no more
// often than a floor) when asked for an unknown kid. The last good set is
// kept when a fetch fails, until it is older than MaxStale. One Remote serves
// one Clerk instance; there is no process-wide cache.
//
// A Remote is safe for concurrent use. Close stops it.
type Remote struct {
	url        string // validated URL
	logURL     string // URL without credentials or query, for logs and errors
	secret     string
	client     *http.Client
	refresh    time.Duration
	floor      time.Duration
	maxStale   time.Duration
	now        func() time.Time
	log        *zap.Logger
	userAgent  string
	tracer     trace.Tracer    // nil: tracing off
	parsedURL  *url.URL        // for the client span's server.address
	ctx        context.Context // lives until Close; fetches run on it
	cancel     context.CancelFunc
	kick       chan struct{} // asks the loop for a fetch; buffered 1
	ready      chan struct{} // closed on the first successful load
	done       chan struct{} // closed when the loop has returned
	closeOnce  sync.Once
	set        atomic.Pointer[keySet] // nil until the first successful load
	fetches    atomic.Uint64
	failures   atomic.Uint64
	lastErrMsg atomic.Pointer[string]

	mu          sync.Mutex // guards following
	inflight    *fetchCall // the fetch under way or requested, nil if none
	lastAttempt time.Time  // start of the latest fetch attempt, by now()
	closed      bool       // the loop has returned; no fetch will start
}

// keySet is an immutable snapshot: readers load it without a lock.
type keySet struct {
	keys    map[string]*Key
	fetched time.Time
}

// fetchCall is one shared fetch. err is written before done is closed.
type fetchCall struct {
	done chan struct{}
	err  error
	// link is the span of the request whose unknown kid asked for the
	// fetch (tracing on only); written under mu as the fetch is
	// registered, read by the loop after it took the fetch under mu.
	link trace.Link
}

var errClosed = errors.New("jwks: remote key source closed")

// NewRemote validates cfg and starts the Remote's background goroutine, which
// fetches the key set at once. NewRemote does not wait for that fetch: use
// WaitReady, or Ready for a readiness probe.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	u, err := checkURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RefreshInterval", cfg.RefreshInterval},
		{"MinRefreshInterval", cfg.MinRefreshInterval},
		{"MaxStale", cfg.MaxStale},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("jwks: RemoteConfig.%s: negative duration %v", d.name, d.v)
		}
	}
	if maxStale, refresh := orDefault(cfg.MaxStale, DefaultMaxStale), orDefault(cfg.RefreshInterval, DefaultRefreshInterval); maxStale < refresh {
		// The set would go stale between two healthy refreshes.
		return nil, fmt.Errorf("jwks: RemoteConfig.MaxStale: %v is shorter than RefreshInterval %v", maxStale, refresh)
	}
	if strings.ContainsAny(cfg.SecretKey, "\r\n") {
		return nil, errors.New("jwks: RemoteConfig.SecretKey: contains a line break")
	}

	r := &Remote{
		url:       u.String(),
		logURL:    (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		secret:    cfg.SecretKey,
		client:    cfg.HTTPClient,
		refresh:   orDefault(cfg.RefreshInterval, DefaultRefreshInterval),
		floor:     orDefault(cfg.MinRefreshInterval, DefaultMinRefreshInterval),
		maxStale:  orDefault(cfg.MaxStale, DefaultMaxStale),
		now:       cfg.Now,
		log:       cfg.Logger,
		userAgent: cfg.UserAgent,
		tracer:    tracing.Tracer(cfg.TracerProvider, "jwks"),
		parsedURL: u,
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: DefaultHTTPTimeout, CheckRedirect: checkRedirect}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.log = r.log.With(zap.String("url", r.logURL))
	if r.userAgent == "" {
		r.userAgent = DefaultUserAgent
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())

	// The initial fetch is registered before the loop starts, so that Key
	// and WaitReady callers arriving first join it.
	r.inflight = &fetchCall{done: make(chan struct{})}
	r.lastAttempt = r.now()
	r.kick <- struct{}{}
	go r.loop()
	return r, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkURL enforces https, or http to a loopback host.
func checkURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("jwks: RemoteConfig.URL: required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the input, which is the field's own value.
		return nil, fmt.Errorf("jwks: RemoteConfig.URL: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("jwks: RemoteConfig.URL: must not contain user info; use SecretKey")
	}
	if err := checkURLTarget(u); err != nil {
		return nil, fmt.Errorf("jwks: RemoteConfig.URL: %w", err)
	}
	return u, nil
}

func checkURLTarget(u *url.URL) error {
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("no host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if netutil.IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("http is allowed only for a loopback host, not %q; use https", u.Hostname())
	default:
		return fmt.Errorf("scheme %q is not https", u.Scheme)
	}
}

// checkRedirect is the default client's redirect policy: a redirect must
// lead somewhere URL itself could point to (no https→http downgrade).
// net/http already drops Authorization when the host changes.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if err := checkURLTarget(req.URL); err != nil {
		return fmt.Errorf("redirect refused: %w", err)
	}
	return nil
}

// Key returns the key with the given kid.
//
// A kid in the current set is returned without a lock or a network call. An
// unknown kid causes one refetch, shared with every concurrent caller and not
// started sooner than MinRefreshInterval after the previous fetch began;
// a kid still unknown gives an error wrapping ErrKeyNotFound. Key returns an
// error wrapping ErrUnavailable when no set was ever loaded or the current one
// is older than MaxStale, and one wrapping ctx.Err() when ctx ends first.
func (r *Remote) Key(ctx context.Context, kid string) (*Key, error) {
	set := r.set.Load()
	if set != nil {
		if err := r.checkStale(set); err != nil {
			return nil, err
		}
		if k, ok := set.keys[kid]; ok {
			return k, nil
		}
	}

	// Slow path: an unknown kid, or nothing loaded yet. A fetch publishes
	// its set and clears inflight in one critical section, so the set read
	// again under mu is either the newest, or a fetch is in flight.
	r.mu.Lock()
	if cur := r.set.Load(); cur != set {
		set = cur
		if k, ok := set.keys[kid]; ok {
			r.mu.Unlock()
			if err := r.checkStale(set); err != nil {
				return nil, err
			}
			return k, nil
		}
	}
	c := r.inflight
	if c == nil && set != nil {
		if c = r.startFetchLocked(); c != nil && r.tracer != nil {
			c.link, _ = tracing.LinkFrom(ctx)
		}
	}
	r.mu.Unlock()
	if c == nil {
		if set == nil {
			return nil, fmt.Errorf("%w: key set not loaded (%s)", ErrUnavailable, r.lastError())
		}
		return nil, fmt.Errorf("%w (refetch not allowed yet)", ErrKeyNotFound)
	}

	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("jwks: waiting for key set fetch: %w", ctx.Err())
	}

	set = r.set.Load()
	if set == nil {
		return nil, fmt.Errorf("%w: key set not loaded: %v", ErrUnavailable, c.err)
	}
	if err := r.checkStale(set); err != nil {
		return nil, err
	}
	if k, ok := set.keys[kid]; ok {
		return k, nil
	}
	if c.err != nil {
		return nil, fmt.Errorf("%w (refetch failed: %v)", ErrKeyNotFound, c.err)
	}
	return nil, ErrKeyNotFound
}

// startFetchLocked registers a fetch for the loop to run, if the floor
// allows one, and returns it; nil if it may not start now.
func (r *Remote) startFetchLocked() *fetchCall {
	if r.closed {
		return nil
	}
	now := r.now()
	if !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.floor {
		return nil
	}
	r.inflight = &fetchCall{done: make(chan struct{})}
	r.lastAttempt = now
	select {
	case r.kick <- struct{}{}:
	default: // a kick is already pending; the loop will take r.inflight
	}
	return r.inflight
}

func (r *Remote) checkStale(set *keySet) error {
	if age := r.now().Sub(set.fetched); age > r.maxStale {
		return fmt.Errorf("%w: key set is %v old, more than MaxStale %v (%s)",
			ErrUnavailable, age.Round(time.Second), r.maxStale, r.lastError())
	}
	return nil
}

func (r *Remote) lastError() string {
	if p := r.lastErrMsg.Load(); p != nil && *p != "" {
		return "last fetch error: " + *p
	}
	return "no fetch error"
}

// WaitReady blocks until a key set has been loaded, ctx ends, or the Remote
// is closed. It returns nil once a set was loaded, even if it has since
// become stale (Ready tells that).
func (r *Remote) WaitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	default:
	}
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jwks: waiting for key set: %w", ctx.Err())
	case <-r.ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, errClosed)
	}
}

// Ready reports whether a key set is loaded and not older than MaxStale.
func (r *Remote) Ready() bool {
	set := r.set.Load()
	return set != nil && r.checkStale(set) == nil
}

// Stats returns the Remote's counters.
func (r *Remote) Stats() Stats {
	s := Stats{Fetches: r.fetches.Load(), Failures: r.failures.Load()}
	if set := r.set.Load(); set != nil {
		s.Keys = len(set.keys)
		s.LastSuccess = set.fetched
	}
	if p := r.lastErrMsg.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Close stops the background goroutine, cancelling a fetch under way, and
// waits for it to return. Keys already loaded stay available (until they are
// stale); no fetch happens any more. Close is idempotent and returns nil.
func (r *Remote) Close() error {
	r.closeOnce.Do(r.cancel)
	<-r.done
	return nil
}

// loop runs every fetch: the initial one, the periodic refreshes, the retries
// after a failure and the refetches asked for by Key. Running them all here
// keeps one goroutine per Remote and makes fetches naturally exclusive.
func (r *Remote) loop() {
	defer close(r.done)
	defer func() {
		r.mu.Lock()
		r.closed = true
		c := r.inflight
		r.inflight = nil
		r.mu.Unlock()
		if c != nil {
			c.err = errClosed
			close(c.done)
		}
	}()

	timer := time.NewTimer(r.refresh)
	defer timer.Stop()
	failures := 0 // consecutive
	for {
		kicked := false
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
			kicked = true
		case <-timer.C:
		}

		r.mu.Lock()
		c := r.inflight
		if c == nil {
			if kicked {
				// The fetch this kick asked for already ran (the timer
				// fired first and took it).
				r.mu.Unlock()
				continue
			}
			c = &fetchCall{done: make(chan struct{})}
			r.inflight = c
			r.lastAttempt = r.now()
		}
		r.mu.Unlock()

		err := r.fetch(c)

		if r.ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			timer.Reset(r.refresh)
		} else {
			timer.Reset(backoff(failures, r.refresh))
			failures++
		}
	}
}

// backoff returns the delay before retry n (0-based): 250 ms × 2ⁿ, capped at
// min(refresh, 1 minute), with "equal jitter" (uniform in [d/2, d]) so that
// many instances restarted together do not retry in step.
func backoff(n int, refresh time.Duration) time.Duration {
	limit := min(refresh, maxBackoff)
	d := initialBackoff
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	return half + rand.N(d-half+1)
}

// fetch runs one fetch attempt for c, publishes the new set on success,
// and completes c.
func (r *Remote) fetch(c *fetchCall) error {
	r.fetches.Add(1)
	keys, skipped, err := r.download(c)
	switch {
	case err != nil && r.ctx.Err() != nil:
		err = errClosed // closing, not failing
	case err != nil:
		// Counted before waiters wake, so that they see it in Stats.
		r.failures.Add(1)
		msg := err.Error()
		r.lastErrMsg.Store(&msg)
	default:
		empty := ""
		r.lastErrMsg.Store(&empty)
	}

	r.mu.Lock()
	var old *keySet
	var merged map[string]*Key
	var gone []*Key
	if err == nil {
		old = r.set.Load()
		var oldKeys map[string]*Key
		if old != nil {
			oldKeys = old.keys
		}
		merged, gone = mergeKeys(oldKeys, keys)
		r.set.Store(&keySet{keys: merged, fetched: r.now()})
		// Retired before any waiter wakes: whoever sees the new set also
		// sees the old keys retired.
		retireAll(gone)
		if old == nil {
			close(r.ready)
		}
	}
	r.inflight = nil
	r.mu.Unlock()
	c.err = err
	close(c.done)

	switch {
	case errors.Is(err, errClosed):
		return err
	case err != nil:
		r.log.Warn("jwks: fetch failed; keeping the last good key set", zap.Error(err),
			zap.Bool("have_keys", r.set.Load() != nil))
		return err
	}

	var oldKeys map[string]*Key
	if old != nil {
		oldKeys = old.keys
	}
	if old == nil || len(gone) > 0 || len(merged) != len(oldKeys) {
		for id, k := range merged {
			if oldKeys[id] != k {
				r.log.Info("jwks: key added", zap.String("kid", id), zap.String("alg", k.Algorithm))
			}
		}
		for _, k := range gone {
			r.log.Info("jwks: key retired", zap.String("kid", k.ID))
		}
		for _, s := range skipped {
			r.log.Warn("jwks: key skipped", zap.Error(s))
		}
	}
	return nil
}

// download GETs and parses the key set. Errors name the URL without
// credentials or query, and never quote the response body.
func (r *Remote) download(c *fetchCall) (keys []*Key, skipped []error, err error) {
	ctx, cancel := context.WithTimeout(r.ctx, fetchTimeout)
	defer cancel()
	status := 0 // the response's, for the client span
	if r.tracer != nil {
		var links []trace.Link
		if c.link.SpanContext.IsValid() {
			links = append(links, c.link)
		}
		var span trace.Span
		ctx, span = tracing.StartClient(ctx, r.tracer, "GET jwks", http.MethodGet, r.parsedURL, links...)
		defer func() { tracing.EndClient(span, status, err) }()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: GET %s: %w", r.logURL, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", r.userAgent)
	if r.secret != "" {
		req.Header.Set("Authorization", "Bearer "+r.secret)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("jwks: GET %s: %w", r.logURL, err)
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; the body itself
		// is not reported (it may echo request data).
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (check SecretKey)"
		}
		return nil, nil, fmt.Errorf("jwks: GET %s: unexpected status %d%s", r.logURL, resp.StatusCode, hint)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: GET %s: reading body: %w", r.logURL, err)
	}
	if len(body) > maxKeySetBytes {
		return nil, nil, fmt.Errorf("jwks: GET %s: key set larger than %d bytes", r.logURL, maxKeySetBytes)
	}
	keys, skipped, err = parseKeySet(body)
	if err != nil {
		return nil, skipped, fmt.Errorf("jwks: GET %s: %w", r.logURL, err)
	}
	return keys, skipped, nil
}
