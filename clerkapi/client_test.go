package clerkapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"defaults", Config{SecretKey: testKey}, ""},
		{"live key", Config{SecretKey: "sk_live_abc"}, ""},
		{"loopback http", Config{SecretKey: testKey, APIURL: "http://127.0.0.1:8080/"}, ""},
		{"localhost http", Config{SecretKey: testKey, APIURL: "http://localhost:1"}, ""},
		{"https with prefix", Config{SecretKey: testKey, APIURL: "https://proxy.example/clerk"}, ""},
		{"missing key", Config{}, "required"},
		{"publishable key", Config{SecretKey: "pk_test_abc"}, "sk_live_"},
		{"bare prefix", Config{SecretKey: "sk_test_"}, "sk_live_"},
		{"key with newline", Config{SecretKey: testKey + "\nX-Evil: 1"}, "non-printable"},
		{"remote http", Config{SecretKey: testKey, APIURL: "http://api.clerk.com"}, "loopback"},
		{"user info", Config{SecretKey: testKey, APIURL: "https://u:p@api.clerk.com"}, "user info"},
		{"query", Config{SecretKey: testKey, APIURL: "https://api.clerk.com?x=1"}, "query"},
		{"v1 suffix", Config{SecretKey: testKey, APIURL: "https://api.clerk.com/v1/"}, "/v1"},
		{"ftp", Config{SecretKey: testKey, APIURL: "ftp://api.clerk.com"}, "scheme"},
		{"bad version", Config{SecretKey: testKey, APIVersion: "v2"}, "YYYY-MM-DD"},
		{"bad user agent", Config{SecretKey: testKey, UserAgent: "a\r\nb"}, "UserAgent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, %v; want error containing %q", c, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "LEAKCANARY") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	clerkErr := func(code, msg string) string {
		return `{"errors":[{"code":"` + code + `","message":"` + msg + `","long_message":"long ` + msg + `","meta":{"param_name":"x"}}],"clerk_trace_id":"abc"}`
	}
	tests := []struct {
		name      string
		status    int
		body      string
		sentinels []error
		wantMsg   string
	}{
		{"401", 401, clerkErr("authentication_invalid", "Invalid key"), []error{ErrUnauthorized},
			"clerkapi: GET /v1/sessions/{id}: 401 authentication_invalid: Invalid key (trace abc)"},
		{"403", 403, clerkErr("authorization_invalid", "Forbidden"), []error{ErrUnauthorized}, ""},
		{"404", 404, clerkErr("resource_not_found", "Session not found"), []error{ErrNotFound},
			"clerkapi: GET /v1/sessions/{id}: 404 resource_not_found: Session not found (trace abc)"},
		{"410", 410, clerkErr("deprecated_endpoint", "Gone"), []error{ErrEndpointGone}, ""},
		{"422", 422, clerkErr("form_param_invalid", "Bad"), nil,
			"clerkapi: GET /v1/sessions/{id}: 422 form_param_invalid: Bad (trace abc)"},
		{"two errors", 400, `{"errors":[{"code":"a","message":"one"},{"code":"b","message":"two"}]}`, nil,
			"clerkapi: GET /v1/sessions/{id}: 400 a: one (and 1 more)"},
		{"empty body", 404, ``, []error{ErrNotFound}, "clerkapi: GET /v1/sessions/{id}: 404 Not Found"},
		{"redirect is not followed", 302, ``, nil, "clerkapi: GET /v1/sessions/{id}: 302 Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				reply(w, tt.status, tt.body)
			}, nil)
			_, err := c.Get(context.Background(), "sess_1")
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status {
				t.Fatalf("error %v (%T), want *APIError %d", err, err, tt.status)
			}
			for _, s := range []error{ErrNotFound, ErrUnauthorized, ErrRateLimited, ErrEndpointGone, ErrInvalidParams} {
				want := false
				for _, w := range tt.sentinels {
					want = want || w == s
				}
				if errors.Is(err, s) != want {
					t.Errorf("errors.Is(err, %v) = %v", s, !want)
				}
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q\n want %q", err, tt.wantMsg)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d attempts for a %d, want 1", n, tt.status)
			}
		})
	}
}

func TestAPIErrorDecodesClerkErrors(t *testing.T) {
	t.Parallel()
	c, _ := newFake(t, fixed(422, `{"errors":[{"code":"form_param_invalid","message":"m","long_message":"lm","meta":{"param_name":"limit"}}],"clerk_trace_id":"t1","meta":{}}`), nil)
	_, err := c.List(context.Background(), ListParams{UserID: "user_1"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatal(err)
	}
	want := ErrorDetail{Code: "form_param_invalid", Message: "m", LongMessage: "lm", Meta: []byte(`{"param_name":"limit"}`)}
	if len(apiErr.Errors) != 1 || fmt.Sprint(apiErr.Errors[0]) != fmt.Sprint(want) || apiErr.Endpoint != "GET /v1/sessions" {
		t.Errorf("got %+v", apiErr)
	}
}

func TestTraceIDPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, header, cfRay, want string
	}{
		{"body first", `{"errors":[],"clerk_trace_id":"from-body"}`, "from-header", "ray", "from-body"},
		{"then Clerk-Trace-Id", `{"errors":[]}`, "from-header", "ray", "from-header"},
		{"then cf-ray", `not json`, "", "8a1b2c-IAD", "8a1b2c-IAD"},
		{"none", `{"errors":[]}`, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if tt.header != "" {
					w.Header().Set("Clerk-Trace-Id", tt.header)
				}
				if tt.cfRay != "" {
					w.Header().Set("Cf-Ray", tt.cfRay)
				}
				reply(w, 400, tt.body)
			}, nil)
			_, err := c.Get(context.Background(), "sess_1")
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.TraceID != tt.want {
				t.Errorf("trace %q, want %q (%v)", apiErr.TraceID, tt.want, err)
			}
		})
	}
}

func TestNonJSONErrorBodyIsASanitizedSnippet(t *testing.T) {
	t.Parallel()
	body := "<html>\x1b[31mBad\x00 Gateway\r\nFake-Log: line</html>" + strings.Repeat("é", 500)
	c, _ := newFake(t, fixed(502, body), func(cfg *Config) { cfg.MaxRetries = -1 })
	_, err := c.Get(context.Background(), "sess_1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || len(apiErr.Errors) != 1 {
		t.Fatalf("%v", err)
	}
	msg := apiErr.Errors[0].Message
	if len(msg) > 200 || !strings.HasPrefix(msg, "<html>[31mBad Gateway  Fake-Log: line</html>é") {
		t.Errorf("snippet %q (%d bytes)", msg, len(msg))
	}
	for _, r := range err.Error() {
		if !unicode.IsPrint(r) {
			t.Errorf("non-printable %U in %q", r, err)
		}
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)
	status := func(codes ...int) handlerFunc {
		return func(w http.ResponseWriter, _ *http.Request, n int) {
			code := codes[min(n, len(codes)-1)]
			if code == 429 {
				w.Header().Set("Retry-After", "2")
			}
			if code == 200 {
				reply(w, 200, sessionJSON)
				return
			}
			reply(w, code, `{"errors":[{"code":"x","message":"y","long_message":"z"}]}`)
		}
	}
	get := func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, "sess_1"); return err }
	revoke := func(ctx context.Context, c *Client) error { _, err := c.Revoke(ctx, "sess_1"); return err }
	token := func(ctx context.Context, c *Client) error { _, err := c.CreateToken(ctx, "sess_1", "", 0); return err }
	tests := []struct {
		name      string
		h         handlerFunc
		call      func(context.Context, *Client) error
		mod       func(*Config)
		timeout   time.Duration
		wantCalls int
		wantWaits []time.Duration
		wantErr   error // nil means success
		wantCode  int
	}{
		{name: "GET 500 retried then given up", h: status(500), call: get, wantCalls: 4,
			wantWaits: []time.Duration{1 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, wantCode: 500},
		{name: "GET 503 then success", h: status(503, 200), call: get, wantCalls: 2, wantWaits: []time.Duration{time.Millisecond}},
		{name: "GET 501 not retried", h: status(501), call: get, wantCalls: 1, wantCode: 501},
		{name: "GET 404 not retried", h: status(404), call: get, wantCalls: 1, wantErr: ErrNotFound},
		{name: "POST 500 not retried", h: status(500), call: revoke, wantCalls: 1, wantCode: 500},
		{name: "POST 502 not retried", h: status(502), call: token, wantCalls: 1, wantCode: 502},
		{name: "POST 429 retried after Retry-After", h: status(429, 200), call: revoke, wantCalls: 2,
			wantWaits: []time.Duration{2 * time.Second}},
		{name: "GET 429 retried until MaxRetries", h: status(429), call: get, wantCalls: 4, wantErr: ErrRateLimited,
			wantWaits: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}},
		{name: "429 HTTP-date Retry-After", call: token, wantCalls: 2, wantWaits: []time.Duration{3 * time.Second},
			mod: func(c *Config) { c.Now = func() time.Time { return now } },
			h: func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 0 {
					w.Header().Set("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))
					reply(w, 429, `{"errors":[]}`)
					return
				}
				reply(w, 200, `{"object":"token","jwt":"j"}`)
			}},
		{name: "429 without Retry-After backs off", call: get, wantCalls: 2, wantWaits: []time.Duration{time.Millisecond},
			h: func(w http.ResponseWriter, _ *http.Request, n int) {
				if n == 0 {
					reply(w, 429, ``)
					return
				}
				reply(w, 200, sessionJSON)
			}},
		{name: "429 beyond MaxRetryAfter returned at once", call: get, wantCalls: 1, wantErr: ErrRateLimited,
			h: func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Retry-After", "31")
				reply(w, 429, ``)
			}},
		{name: "429 beyond the deadline returned at once", h: status(429), call: get, timeout: time.Second,
			wantCalls: 1, wantErr: ErrRateLimited},
		{name: "negative MaxRetries disables retries", h: status(500), call: get, wantCalls: 1, wantCode: 500,
			mod: func(c *Config) { c.MaxRetries = -1 }},
		{name: "MaxRetries 1", h: status(429), call: get, wantCalls: 2, wantErr: ErrRateLimited,
			wantWaits: []time.Duration{2 * time.Second}, mod: func(c *Config) { c.MaxRetries = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, f := newFake(t, tt.h, tt.mod)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := tt.call(ctx, c)
			var apiErr *APIError
			switch {
			case tt.wantCode != 0:
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.wantCode {
					t.Errorf("error %v, want status %d", err, tt.wantCode)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("error %v, want success", err)
			}
			if n := len(f.requests()); n != tt.wantCalls {
				t.Errorf("%d attempts, want %d", n, tt.wantCalls)
			}
			if got := f.sleeps(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) && !(len(got) == 0 && len(tt.wantWaits) == 0) {
				t.Errorf("waits %v, want %v", got, tt.wantWaits)
			}
		})
	}
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there now: connection refused

	tests := []struct {
		name      string
		call      func(*Client) error
		wantCalls int
	}{
		{"GET retried", func(c *Client) error { _, err := c.GetHandshakePayload(context.Background(), "nonce1"); return err }, 4},
		{"POST not retried", func(c *Client) error { _, err := c.Revoke(context.Background(), "sess_1"); return err }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var statuses []int
			c, err := New(Config{
				SecretKey: testKey, APIURL: deadURL,
				Backoff: func(int) time.Duration { return 0 },
				OnResponse: func(ep string, status int) {
					mu.Lock()
					statuses = append(statuses, status)
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(c)
			if err == nil {
				t.Fatal("no error from a dead server")
			}
			if strings.Contains(err.Error(), "nonce1") || strings.Contains(err.Error(), "http://") {
				t.Errorf("error names the URL: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "clerkapi: ") || !strings.Contains(err.Error(), " /v1/") {
				t.Errorf("error lacks the endpoint: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(statuses) != tt.wantCalls || statuses[0] != 0 {
				t.Errorf("OnResponse statuses %v, want %d zeros", statuses, tt.wantCalls)
			}
		})
	}
}

func TestContextDeadlineIsRespected(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, func(cfg *Config) { cfg.Sleep = nil })
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "sess_1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestCancelDuringBackoffReturnsTheLastError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := newFake(t, fixed(503, `{"errors":[{"code":"unavailable","message":"down"}]}`), func(cfg *Config) {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return context.Canceled }
	})
	_, err := c.JWKS(ctx)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want the 503 and context.Canceled", err)
	}
}

func TestOversizedResponse(t *testing.T) {
	t.Parallel()
	c, _ := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		io.WriteString(w, `{"keys":[`+strings.Repeat(" ", MaxResponseBytes)+`]}`)
	}, nil)
	if _, err := c.JWKS(context.Background()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("error %v, want a size error", err)
	}
}

func TestOnResponseSeesEveryAttempt(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	c, _ := newFake(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 0 {
			reply(w, 500, ``)
			return
		}
		reply(w, 200, sessionJSON)
	}, func(cfg *Config) {
		cfg.OnResponse = func(ep string, status int) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s %d", ep, status))
			mu.Unlock()
		}
	})
	if _, err := c.Get(context.Background(), "sess_abc"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[GET /v1/sessions/{id} 500 GET /v1/sessions/{id} 200]"; fmt.Sprint(got) != want {
		t.Errorf("OnResponse got %v, want %s", got, want)
	}
}

// TestSecretNeverLeaks forces every error path against a server that echoes
// the request's credentials back, and checks errors, logs and formatting.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJSUzI1NiJ9.TOKENCANARY.sig"
	echo := func(status int, jsonBody bool) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, _ int) {
			auth := r.Header.Get("Authorization")
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Clerk-Trace-Id", auth)
			w.Header().Set("Retry-After", "1")
			if jsonBody {
				reply(w, status, `{"errors":[{"code":"`+auth+`","message":"`+auth+` `+strings.ReplaceAll(string(b), `"`, `'`)+`","long_message":"`+auth+`","meta":{"k":"`+auth+`"}}],"clerk_trace_id":"`+auth+`"}`)
				return
			}
			reply(w, status, auth+" "+string(b))
		}
	}
	core, logs := observer.New(zap.DebugLevel)
	var errs []error
	collect := func(_ any, err error) { errs = append(errs, err) }
	for _, status := range []int{400, 401, 403, 404, 410, 422, 429, 500, 503} {
		for _, jsonBody := range []bool{true, false} {
			c, _ := newFake(t, echo(status, jsonBody), func(cfg *Config) { cfg.Logger = zap.New(core) })
			ctx := context.Background()
			collect(c.Get(ctx, "sess_1"))
			collect(c.List(ctx, ListParams{UserID: "user_1"}))
			collect(c.Revoke(ctx, "sess_1"))
			collect(c.Verify(ctx, "sess_1", token))
			collect(c.CreateToken(ctx, "sess_1", "tpl", 60))
			collect(c.GetHandshakePayload(ctx, "n"))
			collect(c.JWKS(ctx))
			for _, err := range c.ListAll(ctx, ListParams{UserID: "user_1"}) {
				errs = append(errs, err)
			}
			collect(c.Get(ctx, testKey)) // a caller mix-up: the key as an ID
			collect(c.CreateToken(ctx, "sess_1", testKey, 0))
			var apiErr *APIError
			if errors.As(errs[0], &apiErr) {
				errs = append(errs, fmt.Errorf("%+v %#v", *apiErr, apiErr.Errors))
				for _, d := range apiErr.Errors {
					errs = append(errs, errors.New(d.Code+d.Message+d.LongMessage+string(d.Meta)))
				}
			}
			errs = append(errs, fmt.Errorf("%v %+v %#v %s", c, c, c, c))
		}
	}
	// Network and decode failures.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c, _ := New(Config{SecretKey: testKey, APIURL: dead.URL, Logger: zap.New(core), Backoff: func(int) time.Duration { return 0 }})
	collect(c.Get(context.Background(), "sess_1"))
	collect(c.Verify(context.Background(), "sess_1", token))
	c2, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) { reply(w, 200, r.Header.Get("Authorization")) }, nil)
	collect(c2.Get(context.Background(), "sess_1"))
	collect(c2.JWKS(context.Background()))
	cfg := Config{SecretKey: testKey}
	errs = append(errs, fmt.Errorf("%v %+v %#v %s", cfg, cfg, cfg, cfg))

	for _, err := range errs {
		if err == nil {
			continue
		}
		if s := err.Error(); strings.Contains(s, "LEAKCANARY") || strings.Contains(s, "TOKENCANARY") {
			t.Errorf("leak in error: %s", s)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no retries were logged: the log path was not exercised")
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		if strings.Contains(line, "LEAKCANARY") || strings.Contains(line, "TOKENCANARY") {
			t.Errorf("leak in log: %s", line)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"7", 7 * time.Second}, {" 7 ", 7 * time.Second}, {"-3", 0}, {"1.5", 0},
		{"99999999999999999999", 0}, {"9223372036854775807", (1 << 20) * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0}, {"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDefaultBackoffIsCappedFullJitter(t *testing.T) {
	t.Parallel()
	for attempt := -1; attempt < 70; attempt++ {
		ceiling := min(backoffBase<<max(min(attempt-1, 20), 0), backoffCap)
		for range 20 {
			if d := defaultBackoff(attempt); d < 0 || d > ceiling {
				t.Fatalf("defaultBackoff(%d) = %v, outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "x"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 {
			t.Errorf("parseRetryAfter(%q) = %v", s, d)
		}
	})
}

func FuzzSanitize(f *testing.F) {
	f.Add("héllo\x00\r\nworld", 10)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = max(n%300, 0)
		out := sanitize(s, n)
		if len(out) > n {
			t.Errorf("len %d > %d", len(out), n)
		}
		for _, r := range out {
			if !unicode.IsPrint(r) && r != ' ' {
				t.Errorf("non-printable %U", r)
			}
		}
	})
}
