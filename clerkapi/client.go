package clerkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/internal/clerkwire"
	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/internal/tracing"
)

// Defaults applied to zero Config fields, and fixed limits.
const (
	DefaultAPIURL      = "https://api.clerk.com"
	DefaultAPIVersion  = clerkwire.APIVersion // "2026-05-12"
	DefaultUserAgent   = "sessiongate"
	DefaultHTTPTimeout = 10 * time.Second
	DefaultMaxRetries  = 3

	// MaxRetryAfter is the longest Retry-After the client waits out. A 429
	// asking for more is returned at once: retrying sooner than Clerk asked
	// would only earn another 429.
	MaxRetryAfter = 30 * time.Second

	// MaxResponseBytes caps the body read from any response. A larger
	// success body is an error; a larger error body is cut.
	MaxResponseBytes = 1 << 20

	backoffBase = 200 * time.Millisecond
	backoffCap  = 5 * time.Second
)

// Config configures a Client. Every field but SecretKey has a usable zero
// value.
type Config struct {
	// SecretKey is the instance's Backend API key, "sk_live_…" or
	// "sk_test_…", or a machine secret key "ak_…" (for VerifyM2MToken
	// only). Required. It is sent only as "Authorization: Bearer …"
	// and MUST NOT appear in errors or logs.
	SecretKey string

	// APIURL is the Backend API origin, without "/v1": the client appends
	// "/v1/…". Empty means "https://api.clerk.com". It MUST be https; http
	// is allowed only for a loopback host (tests, a local fake). It must
	// not carry user info, a query or a fragment.
	APIURL string

	// HTTPClient makes the requests. Nil means a client with a 10 s timeout
	// that does not follow redirects (a redirect is returned as an
	// *APIError with its 3xx status).
	HTTPClient *http.Client

	// APIVersion is sent as Clerk-API-Version. Empty means
	// DefaultAPIVersion, the spec this package follows. Format YYYY-MM-DD.
	APIVersion string

	// UserAgent is sent as User-Agent. Empty means "sessiongate".
	UserAgent string

	// MaxRetries is the number of retries after the first attempt. Zero
	// means 3; negative disables retries.
	MaxRetries int

	// Backoff returns the wait before retry number attempt (1 for the first
	// retry) of a 5xx, a network error, or a 429 without Retry-After. Nil
	// means capped exponential backoff with full jitter: a uniform random
	// duration in [0, min(5s, 200ms·2^(attempt-1))].
	Backoff func(attempt int) time.Duration

	// Now returns the current time, used to read an HTTP-date Retry-After.
	// Nil means time.Now. Context deadlines are always real time.
	Now func() time.Time

	// Sleep waits d or until ctx is done, returning ctx.Err() in the latter
	// case. Nil means a timer. Tests inject one that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error

	// Logger receives retries, with the fields "endpoint" (a route
	// template), "attempt", "wait" and "error". Nil means zap.NewNop().
	Logger *zap.Logger

	// OnResponse, when set, is called after every attempt (retries
	// included) with the route template, e.g. "GET /v1/sessions/{id}", and
	// the HTTP status, or 0 for a network error. It must be quick and safe
	// for concurrent use; it suits a metrics counter.
	OnResponse func(endpoint string, status int)

	// TracerProvider, when set, records a client span per attempt (retries
	// included), named by the route template ("GET /v1/sessions/{id}"),
	// a child of the span in the call's context. No id from the path, no
	// query, no body and no secret is recorded, and no trace header is
	// sent to Clerk. Nil: no spans, no cost.
	TracerProvider trace.TracerProvider
}

// String formats the Config without its secret key.
func (c Config) String() string {
	return fmt.Sprintf("clerkapi.Config{APIURL: %q, APIVersion: %q, SecretKey: [REDACTED]}", c.APIURL, c.APIVersion)
}

// GoString is String, so %#v does not print the secret key either.
func (c Config) GoString() string { return c.String() }

// Client calls Clerk's Backend API. It is safe for concurrent use.
type Client struct {
	secretKey  string
	baseURL    string // scheme://host[/prefix], no trailing slash
	hc         *http.Client
	apiVersion string
	userAgent  string
	maxRetries int
	backoff    func(int) time.Duration
	now        func() time.Time
	sleep      func(context.Context, time.Duration) error
	log        *zap.Logger
	onResponse func(string, int)
	tracer     trace.Tracer // nil: tracing off
	host       *url.URL     // scheme and host of baseURL, for client spans
}

// String formats the Client without its secret key.
func (c *Client) String() string {
	return fmt.Sprintf("clerkapi.Client{APIURL: %q, APIVersion: %q}", c.baseURL, c.apiVersion)
}

// GoString is String, so %#v does not print the secret key either.
func (c *Client) GoString() string { return c.String() }

var apiVersionRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// New validates cfg once and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := checkSecretKey(cfg.SecretKey); err != nil {
		return nil, err
	}
	base, err := checkAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		secretKey:  cfg.SecretKey,
		baseURL:    base,
		hc:         cfg.HTTPClient,
		apiVersion: cfg.APIVersion,
		userAgent:  cfg.UserAgent,
		maxRetries: cfg.MaxRetries,
		backoff:    cfg.Backoff,
		now:        cfg.Now,
		sleep:      cfg.Sleep,
		log:        cfg.Logger,
		onResponse: cfg.OnResponse,
		tracer:     tracing.Tracer(cfg.TracerProvider, "clerkapi"),
	}
	if u, err := url.Parse(base); err == nil {
		c.host = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	if c.apiVersion == "" {
		c.apiVersion = DefaultAPIVersion
	} else if !apiVersionRE.MatchString(c.apiVersion) {
		return nil, fmt.Errorf("clerkapi: Config.APIVersion %q: want YYYY-MM-DD", c.apiVersion)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	} else if !printableASCII(c.userAgent, true) {
		return nil, errors.New("clerkapi: Config.UserAgent: must be printable ASCII")
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.hc == nil {
		c.hc = &http.Client{
			Timeout: DefaultHTTPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if c.backoff == nil {
		c.backoff = defaultBackoff
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	return c, nil
}

// checkSecretKey never puts the key, or any part of it, in its error.
func checkSecretKey(k string) error {
	if k == "" {
		return errors.New("clerkapi: Config.SecretKey: required")
	}
	if strings.HasPrefix(k, "ak_") && len(k) > len("ak_") && printableASCII(k, false) {
		// A machine secret key: it authenticates VerifyM2MToken (and the
		// machine's own M2M calls); other endpoints refuse it.
		return nil
	}
	if !(strings.HasPrefix(k, "sk_live_") || strings.HasPrefix(k, "sk_test_")) || len(k) == len("sk_test_") {
		return errors.New(`clerkapi: Config.SecretKey: want "sk_live_…" or "sk_test_…" (is this a publishable key?)`)
	}
	if !printableASCII(k, false) {
		return errors.New("clerkapi: Config.SecretKey: contains whitespace or non-printable characters")
	}
	return nil
}

func printableASCII(s string, spaceOK bool) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b > '~' || b < ' ' || (b == ' ' && !spaceOK) {
			return false
		}
	}
	return true
}

func checkAPIURL(raw string) (string, error) {
	if raw == "" {
		return DefaultAPIURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("clerkapi: Config.APIURL: %w", err)
	}
	switch {
	case u.User != nil:
		return "", errors.New("clerkapi: Config.APIURL: must not contain user info; use SecretKey")
	case u.Hostname() == "":
		return "", errors.New("clerkapi: Config.APIURL: no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("clerkapi: Config.APIURL: must not have a query or fragment")
	case u.Scheme == "http" && !netutil.IsLoopbackHost(u.Hostname()):
		return "", fmt.Errorf("clerkapi: Config.APIURL: http is allowed only for a loopback host, not %q; use https", u.Hostname())
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("clerkapi: Config.APIURL: scheme %q is not https", u.Scheme)
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	if p == "/v1" || strings.HasSuffix(p, "/v1") {
		return "", errors.New(`clerkapi: Config.APIURL: leave out "/v1"; the client appends it`)
	}
	return u.Scheme + "://" + u.Host + p, nil
}

func defaultBackoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 16 {
		if b := backoffBase << (attempt - 1); b < d {
			d = b
		}
	}
	return rand.N(d + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// endpoint is an operation's method and route template; the template, never
// the URL, names the call in errors, logs and OnResponse.
type endpoint struct {
	method string
	route  string
}

func (e endpoint) String() string { return e.method + " " + e.route }

// idempotent calls may be retried on 5xx and network errors.
func (e endpoint) idempotent() bool { return e.method == http.MethodGet }

// request is one call: path is already escaped.
type request struct {
	ep     endpoint
	path   string
	query  url.Values
	body   []byte   // nil: no body
	redact []string // call secrets (besides the key) to scrub from responses
}

// failure classifies a failed attempt for the retry decision.
type failure int

const (
	failFatal   failure = iota // decode errors, oversized bodies: never retried
	failNetwork                // no complete response
	failStatus                 // an *APIError
)

// do runs r, retrying per the package rules, and returns the success body.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		body, kind, err := c.attempt(ctx, r)
		if err == nil {
			return body, nil
		}
		wait, ok := c.retryWait(ctx, r.ep, attempt, err, kind)
		if !ok {
			return nil, err
		}
		if ce := c.log.Check(zap.WarnLevel, "clerkapi: retrying"); ce != nil {
			ce.Write(zap.Stringer("endpoint", r.ep), zap.Int("attempt", attempt+1),
				zap.Duration("wait", wait), zap.Error(err), logctx.Field(ctx))
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("%w (retry abandoned: %w)", err, serr)
		}
	}
}

// retryWait says whether attempt's failure is retried and after how long.
func (c *Client) retryWait(ctx context.Context, ep endpoint, attempt int, err error, kind failure) (time.Duration, bool) {
	if attempt >= c.maxRetries || ctx.Err() != nil {
		return 0, false
	}
	var wait time.Duration
	var apiErr *APIError
	switch {
	case kind == failStatus && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
		// Clerk did not process the request: safe for POST too.
		wait = apiErr.RetryAfter
		if wait > MaxRetryAfter {
			return 0, false
		}
		if wait <= 0 {
			wait = c.backoff(attempt + 1)
		}
	case !ep.idempotent():
		return 0, false
	case kind == failStatus && errors.As(err, &apiErr) && apiErr.StatusCode >= 500 && apiErr.StatusCode != http.StatusNotImplemented:
		wait = max(c.backoff(attempt+1), min(apiErr.RetryAfter, MaxRetryAfter))
	case kind == failNetwork:
		wait = c.backoff(attempt + 1)
	default:
		return 0, false
	}
	wait = max(wait, 0)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, false // the wait would outlive the caller: give the last error now
	}
	return wait, true
}

func (c *Client) attempt(ctx context.Context, r request) (_ []byte, _ failure, err error) {
	status := 0 // the response's, for the client span
	if c.tracer != nil {
		var span trace.Span
		ctx, span = tracing.StartClient(ctx, c.tracer, r.ep.String(), r.ep.method, c.host)
		defer func() { tracing.EndClient(span, status, err) }()
	}
	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.ep.method, u, body)
	if err != nil {
		return nil, failFatal, fmt.Errorf("clerkapi: %s: building request: %w", r.ep, unwrapURLError(err))
	}
	req.Header.Set("Authorization", "Bearer "+c.secretKey)
	req.Header.Set("Clerk-API-Version", c.apiVersion)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.report(r.ep, 0)
		// *url.Error quotes the full URL, query included: keep only its cause.
		return nil, failNetwork, fmt.Errorf("clerkapi: %s: %w", r.ep, unwrapURLError(err))
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	c.report(r.ep, resp.StatusCode)
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			return nil, failNetwork, fmt.Errorf("clerkapi: %s: reading response: %w", r.ep, unwrapURLError(readErr))
		}
		if len(data) > MaxResponseBytes {
			return nil, failFatal, fmt.Errorf("clerkapi: %s: response body exceeds %d bytes", r.ep, MaxResponseBytes)
		}
		return data, 0, nil
	}
	if len(data) > MaxResponseBytes {
		data = data[:MaxResponseBytes]
	}
	return nil, failStatus, c.apiError(r, resp, data)
}

func (c *Client) report(ep endpoint, status int) {
	if c.onResponse != nil {
		c.onResponse(ep.String(), status)
	}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

const redacted = "[REDACTED]"

// scrub removes the secret key and the call's own secrets from server text
// before anything else reads it: a misbehaving server or proxy may echo the
// request.
func (c *Client) scrub(b []byte, extra []string) []byte {
	b = bytes.ReplaceAll(b, []byte(c.secretKey), []byte(redacted))
	for _, s := range extra {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte(redacted))
		}
	}
	return b
}

func (c *Client) apiError(r request, resp *http.Response, body []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, Endpoint: r.ep.String()}
	body = c.scrub(body, r.redact)
	var payload struct {
		Errors  []ErrorDetail `json:"errors"`
		TraceID string        `json:"clerk_trace_id"`
	}
	if err := json.Unmarshal(body, &payload); err == nil && payload.Errors != nil {
		for _, d := range payload.Errors {
			d.Code = sanitize(d.Code, 128)
			d.Message = sanitize(d.Message, 1024)
			d.LongMessage = sanitize(d.LongMessage, 1024)
			if string(d.Meta) == "null" {
				d.Meta = nil
			}
			e.Errors = append(e.Errors, d)
		}
		e.TraceID = sanitize(payload.TraceID, 128)
	} else if s := sanitize(string(body), 200); s != "" {
		e.Errors = []ErrorDetail{{Message: s}}
	}
	for _, h := range []string{"Clerk-Trace-Id", "Cf-Ray"} {
		if e.TraceID != "" {
			break
		}
		e.TraceID = sanitize(string(c.scrub([]byte(resp.Header.Get(h)), r.redact)), 128)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP-date; 0 when unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		const maxSecs = 1 << 20 // far beyond MaxRetryAfter, far from overflow
		return time.Duration(min(max(n, 0), maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now).Round(time.Second), 0)
	}
	return 0
}

// decode unmarshals a success body.
func decode(ep endpoint, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("clerkapi: %s: decoding response: %w", ep, err)
	}
	return nil
}
