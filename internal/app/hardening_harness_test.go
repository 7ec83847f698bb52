package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
)

// The harness of the hardening tests (hostile_http_test.go, faults_test.go,
// secrets_test.go): an upstream that records what reaches it, Clerk and
// transport faults, and raw HTTP/1.1 exchanges, on the shared pieces of
// harness_test.go.

// hzRecorder is an upstream that records the requests it receives.
type hzRecorder struct {
	mu   sync.Mutex
	reqs []hzSeen
}

type hzSeen struct {
	Method, Path string
	Header       http.Header
	Body         string
	BodyErr      error
}

func (u *hzRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, hzSeen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(b), BodyErr: err})
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "user": r.Header.Get("X-Sessiongate-User-Id")})
}

func (u *hzRecorder) seen() []hzSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]hzSeen(nil), u.reqs...)
}

func (u *hzRecorder) paths() []string {
	var out []string
	for _, s := range u.seen() {
		out = append(out, s.Path)
	}
	return out
}

type hzOptions struct {
	// config changes the configuration (after the harness defaults).
	config func(*config.Config, *clerktest.Instance)
	// beforeStart runs before app.New: a JWKS failing at start-up.
	beforeStart func(*clerktest.Instance)
	// upstream is the default upstream's handler; nil records (hzApp.up).
	upstream http.Handler
	// transport replaces the upstream transport.
	transport http.RoundTripper
	// clerk, when set, is used instead of a new instance.
	clerk *clerktest.Instance
	// httpClient reaches Clerk (JWKS and Backend API); its Timeout is the
	// bound the fault tests measure against. Nil: the defaults.
	httpClient *http.Client
	// logger replaces the observer logger (the secrets test tees to it).
	logger *zap.Logger
	// reservedReadTimeout is app.Options.ReservedReadTimeout.
	reservedReadTimeout time.Duration
	// now is app.Options.Now. Nil: real time.
	now func() time.Time
}

type hzApp struct {
	*serving
	inst  *clerktest.Instance
	app   *app.App
	up    *hzRecorder
	upURL string
	logs  *observer.ObservedLogs
}

func hzStart(t *testing.T, o hzOptions) *hzApp {
	t.Helper()
	inst := o.clerk
	if inst == nil {
		inst = clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	}
	h := &hzApp{inst: inst, up: &hzRecorder{}}
	var handler http.Handler = h.up
	if o.upstream != nil {
		handler = o.upstream
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // upstream panics are part of some tests
	srv.Start()
	t.Cleanup(srv.Close)
	h.upURL = srv.URL
	if o.beforeStart != nil {
		o.beforeStart(inst)
	}
	cfg := baseConfig(inst)
	cfg.Upstream = srv.URL
	if o.config != nil {
		o.config(&cfg, inst)
	}
	cfg.Normalize()
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	logger := zap.New(core)
	if o.logger != nil {
		logger = o.logger
	}
	a, err := app.New(&cfg, app.Options{Logger: logger, Transport: o.transport, HTTPClient: o.httpClient, ReservedReadTimeout: o.reservedReadTimeout, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	h.app = a
	h.serving = serve(t, a)
	return h
}

func (h *hzApp) waitReady(t *testing.T, want int) {
	t.Helper()
	waitReady(t, h.adminURL, want)
}

// hzResult is a response read whole.
type hzResult struct {
	Status int
	Header http.Header
	Body   string
	Err    error
}

func (r hzResult) reason() string { return r.Header.Get("X-Clerk-Auth-Reason") }

// do sends a GET with an optional bearer token and reads the whole answer.
func (h *hzApp) do(t *testing.T, client *http.Client, method, path, token string) hzResult {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequest(method, h.proxyURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return hzResult{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return hzResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Err: err}
}

// raw writes a raw HTTP/1.1 exchange on a new connection and reads every
// response the server sends until it closes the connection or goes quiet.
func (h *hzApp) raw(t *testing.T, request string) []*http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
}

func statuses(rs []*http.Response) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprint(r.StatusCode))
	}
	return "[" + strings.Join(s, " ") + "]"
}
