// Package app wires a sessiongate process from its configuration: the key
// source, the Gate, the proxy, the admin listener with metrics, and the
// lifecycle (listen, serve, drain on cancel). cmd/sessiongate only parses
// arguments and calls it; tests build an App in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerkapi"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/handshake"
	"github.com/sessiongate/sessiongate/internal/admin"
	"github.com/sessiongate/sessiongate/internal/certreload"
	"github.com/sessiongate/sessiongate/internal/linewriter"
	"github.com/sessiongate/sessiongate/internal/metrics"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/machine"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/redisstore"
	"github.com/sessiongate/sessiongate/sessioncheck"
	"github.com/sessiongate/sessiongate/templatetoken"
)

// defaultReservedReadTimeout is Options.ReservedReadTimeout's default.
const defaultReservedReadTimeout = 5 * time.Second

// Options are what the configuration does not say.
type Options struct {
	// Logger receives the process's logs. Nil: a zap JSON logger on stderr at
	// the configured level (NewLogger), whose output also takes the access
	// lines directly.
	Logger *zap.Logger
	// AccessLogWriter, with Logger, is where the proxy writes its access
	// lines itself (proxy.Options.AccessLogWriter): the output NewLogger
	// returned with Logger. Nil: access lines go through Logger.
	AccessLogWriter io.Writer
	// Transport reaches the upstreams. Nil: proxy.NewTransport with the
	// configured timeouts.
	Transport http.RoundTripper
	// HTTPClient fetches the JWKS. Nil: the key source's default.
	HTTPClient *http.Client
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// ReservedReadTimeout bounds how long a request to a reserved path of
	// the proxy listener (forward-auth, the webhook) may take to deliver
	// its body, counted from when its handler starts. Zero or negative: 5s.
	ReservedReadTimeout time.Duration
	// Reload re-reads the configuration from where it came from, for
	// Reload (SIGHUP) and watch_config (reload.go). Nil: reloads are
	// refused.
	Reload func() (*config.Config, error)
	// ConfigFile is the file watch_config watches. Empty: watch_config has
	// nothing to watch (a warning is logged).
	ConfigFile string
	// PollInterval is how often watch_config hashes the file and the TLS
	// certificate files are checked for a change. Zero or negative: 2s.
	PollInterval time.Duration
}

// keySource is a key source that can report readiness.
type keySource interface {
	middleware.KeySource
	Ready() bool
}

// App is one configured sessiongate process.
type App struct {
	cfg *config.Config
	log *zap.Logger
	// accessOut takes the proxy's access lines directly (Options.AccessLogWriter).
	accessOut io.Writer
	keys      keySource
	remote    *jwks.Remote // nil with a static key
	gate      *middleware.Gate
	handler   http.Handler // the current proxy (front), reserved paths bounded (netutil.BoundBodies)
	metrics   *metrics.Set // internal/metrics
	admin     http.Handler

	reservedReadTimeout time.Duration

	api         *clerkapi.Client  // nil without clerk.secret_key
	machines    *machine.Verifier // nil without clerk.secret_key
	deny        *sessioncheck.DenyList
	sessions    *sessioncheck.Service
	templates   map[string]*templatetoken.Source // guarded by templatesMu: a reload may add to it
	templatesMu sync.Mutex
	hs          *handshake.Handshaker // nil unless a route has the handshake on
	redis       *redisstore.Store     // nil without Redis (redis.go)
	watcher     *middleware.Watcher   // re-checks long-lived connections (conns.go)
	conns       *proxy.Connections    // the WebSockets and streams, shared by every front
	fapi        *proxy.FrontendAPI    // nil unless sessiongate serves clerk.proxy_url (frontendapi.go)
	satellite   bool                  // clerk.is_satellite: the sign-in redirect asks for a sync

	// What a configuration reload replaces and what it keeps (reload.go).
	front     atomic.Pointer[front] // the proxy of the running configuration
	transport http.RoundTripper     // to the upstreams, shared by every front
	webhooks  http.Handler          // nil without clerk.webhook_secret
	reload    reloader
	certs     *certreload.Reloader     // nil without tls (internal/certreload)
	tp        *sdktrace.TracerProvider // nil: tracing off (tracing.go)

	closeOnce sync.Once
}

// New builds an App from a validated configuration. It starts the key
// source's background refresh; call Close (or Run, which closes on return)
// to stop it.
func New(cfg *config.Config, opts Options) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := unsupported(cfg); err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		var err error
		if log, opts.AccessLogWriter, err = NewLogger(cfg.Log.Level, cfg.Log.Async); err != nil {
			return nil, err
		}
	}
	a := &App{cfg: cfg, log: log, accessOut: opts.AccessLogWriter, templates: map[string]*templatetoken.Source{}, reservedReadTimeout: opts.ReservedReadTimeout}
	if a.reservedReadTimeout <= 0 {
		a.reservedReadTimeout = defaultReservedReadTimeout
	}
	// First: the key source fetches at once, in a span.
	if err := a.setupTracing(cfg, os.Getenv); err != nil { // tracing.go
		return nil, err
	}

	switch kind, u := cfg.KeySource(); kind {
	case "static":
		s, err := jwks.NewStatic(cfg.Clerk.JWTKey)
		if err != nil {
			return nil, fmt.Errorf("clerk.jwt_key: %w", err)
		}
		a.keys = s
	default:
		rc := jwks.RemoteConfig{
			URL:                u,
			HTTPClient:         opts.HTTPClient,
			RefreshInterval:    cfg.JWKS.RefreshInterval.D(),
			MinRefreshInterval: cfg.JWKS.MinRefreshInterval.D(),
			MaxStale:           cfg.JWKS.MaxStale.D(),
			Now:                opts.Now,
			Logger:             log.Named("jwks"),
			TracerProvider:     a.tracerProvider(),
		}
		if cfg.UsesSecretForJWKS() {
			rc.SecretKey = cfg.Clerk.SecretKey.Reveal()
		}
		r, err := jwks.NewRemote(rc)
		if err != nil {
			return nil, fmt.Errorf("clerk.jwks_url: %w", err)
		}
		a.keys, a.remote = r, r
	}

	tokens := cfg.Cache.Tokens
	if tokens == 0 {
		tokens = -1 // cache.tokens: 0 disables the cache
	}
	a.metrics = metrics.New()
	if ks, ok := a.keys.(metrics.KeyStats); ok {
		a.metrics.RegisterKeys(ks, now)
	}
	if err := a.setupSessions(cfg, opts, now); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.setupConnections(cfg); err != nil { // conns.go
		a.Close()
		return nil, err
	}
	if err := a.setupMachines(cfg, opts); err != nil {
		a.Close()
		return nil, err
	}
	// The Gate's own policy (Verify, forward-auth without a matching route)
	// consults the deny list.
	denyOnly, err := a.sessions.Checker(sessioncheck.Off, sessioncheck.Deny, false)
	if err != nil {
		a.Close()
		return nil, err
	}
	gate, err := middleware.New(middleware.Config{
		Issuer:            cfg.Clerk.Issuer,
		Keys:              a.keys,
		AuthorizedParties: cfg.Clerk.AuthorizedParties,
		ClockSkew:         cfg.Clerk.ClockSkew.D(),
		TokenCacheSize:    tokens,
		Sessions:          denyOnly,
		Now:               opts.Now,
		Logger:            log.Named("gate"),
		Machines:          a.machineVerifier(),
		ClientKey:         a.clientKey(), // machine-credential miss budgets
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.gate = gate
	a.metrics.RegisterGate(gate)

	if a.webhooks, err = a.webhookHandler(cfg); err != nil {
		a.Close()
		return nil, err
	}
	a.transport = opts.Transport
	if a.transport == nil {
		a.transport = proxy.NewTransport(proxy.TransportOptions{
			DialTimeout:           cfg.Server.DialTimeout.D(),
			ResponseHeaderTimeout: cfg.Server.UpstreamTimeout.D(),
		})
	}
	if err := a.setupFrontendAPI(cfg); err != nil { // frontendapi.go
		a.Close()
		return nil, err
	}
	p, err := a.buildProxy(cfg)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.front.Store(&front{cfg: cfg, proxy: p})
	// The proxy listener has no ReadTimeout (uploads and streams pass
	// through it); its reserved paths need no long bodies: forward-auth
	// never reads one (front proxies send none) and the webhook reads at
	// most webhook.MaxBody.
	a.handler = netutil.BoundBodies(http.HandlerFunc(a.serveFront), proxy.ReservedPrefix, a.reservedReadTimeout, proxy.ForwardAuthPath)
	if a.certs, err = certreload.New(cfg.TLS, a.pollInterval(opts), log.Named("tls")); err != nil {
		a.Close()
		return nil, err
	}
	a.metrics.RegisterTLS(a.certs)
	a.reload.load, a.reload.file, a.reload.interval = opts.Reload, opts.ConfigFile, a.pollInterval(opts)
	a.reload.initWatch()
	a.admin = a.adminHandler()
	return a, nil
}

// buildProxy builds the proxy of cfg: its routes, headers, upstreams and
// their policies. New calls it, and every configuration reload (reload.go):
// what it reads from cfg is what a reload changes, so each key it reads
// MUST be listed in reloadableKeys. It shares the App's Gate, session
// checks, transport and webhook handler, which a reload keeps.
func (a *App) buildProxy(cfg *config.Config) (*proxy.Proxy, error) {
	routes, err := a.buildRoutes(cfg)
	if err != nil {
		return nil, err
	}
	popts := proxy.Options{
		Gate:         a.gate,
		Routes:       routes,
		HeaderPrefix: cfg.Headers.Prefix,
		ClaimHeaders: cfg.Headers.Claims,
		Transport:    a.transport,
		Observer:     a.metrics,
		Webhooks:     a.webhooks,
		Logger:       a.log.Named("proxy"),
		AccessLog:    cfg.Log.Access == nil || *cfg.Log.Access,
		// The same output as the logger's, without zap's encoding cost.
		AccessLogWriter: a.accessOut,
		Connections:     a.conns,
		// Built once from tracing.* (not reloadable): tracing.go.
		TracerProvider: a.tracerProvider(),
		// Built once from clerk.* (not reloadable): frontendapi.go.
		FrontendAPI: a.fapi,
		SignInSync:  a.satellite,
	}
	if cfg.SignInURL != "" {
		if popts.SignInURL, err = url.Parse(cfg.SignInURL); err != nil {
			return nil, fmt.Errorf("sign_in_url: %w", err)
		}
	}
	if cfg.PublicOrigin != "" {
		if popts.PublicOrigin, err = url.Parse(cfg.PublicOrigin); err != nil {
			return nil, fmt.Errorf("public_origin: %w", err)
		}
	}
	if popts.TrustedProxies, err = parsePrefixes(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	return proxy.New(popts)
}

// unsupported refuses settings this build validates but cannot honour yet:
// starting without them would silently weaken what the operator asked for.
func unsupported(cfg *config.Config) error {
	var problems []string // none today
	if len(problems) > 0 {
		return errors.New("config: " + strings.Join(problems, "\n  "))
	}
	return nil
}

// Check reports settings that validate but that this build refuses to run
// with (sessiongate config check calls it).
func Check(cfg *config.Config) error { return unsupported(cfg) }

func handshakeRoutes(cfg *config.Config) []string {
	var out []string
	for _, r := range cfg.Routes {
		if r.HandshakeEnabled(cfg) {
			out = append(out, r.Host+r.Path)
		}
	}
	return out
}

func (a *App) buildRoutes(cfg *config.Config) ([]proxy.Route, error) {
	out := make([]proxy.Route, 0, len(cfg.Routes))
	for i, r := range cfg.Routes {
		var up *url.URL // nil: the route only decides forward-auth requests
		if r.Upstream != "" {
			var err error
			if up, err = url.Parse(r.Upstream); err != nil {
				return nil, fmt.Errorf("routes[%d].upstream: %w", i, err)
			}
		}
		checker, err := a.sessions.Checker(r.SessionCheckMode(), r.OnSessionCheckErrorPolicy(), r.AllowPending)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].session_check: %w", i, err)
		}
		pr := proxy.Route{
			Path:            r.Path,
			Host:            r.Host,
			Upstream:        up,
			Policy:          middleware.Policy{AllowPending: r.AllowPending, Sessions: checker, Require: r.Require.Requirements(), Accepts: r.TokenTypes()},
			ClaimHeaders:    r.Headers.Claims,
			ForwardToken:    r.ForwardsToken(),
			Name:            r.Host + r.Path,
			CaseInsensitive: r.CaseInsensitive,
		}
		if r.TokenTemplate != "" {
			src, err := a.templateSource(cfg, r.TokenTemplate)
			if err != nil {
				return nil, fmt.Errorf("routes[%d].token_template: %w", i, err)
			}
			pr.UpstreamToken = src
			pr.UpstreamTokenAllowOnError = r.OnSessionCheckErrorPolicy() == sessioncheck.Allow
		}
		if h, err := a.routeHandshake(cfg, i); err != nil {
			return nil, err
		} else if h != nil {
			pr.Handshake = h
		}
		pr.Auth = r.AuthPolicy()
		out = append(out, pr)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Gate is the App's verifier.
func (a *App) Gate() *middleware.Gate { return a.gate }

// Handler is the proxy listener's handler.
func (a *App) Handler() http.Handler { return a.handler }

// AdminHandler is the admin listener's handler.
func (a *App) AdminHandler() http.Handler { return a.admin }

// Ready reports whether the App can verify tokens: keys loaded and not past
// max_stale, and Redis in step when it must be (redis.go).
func (a *App) Ready() bool { ok, _ := a.readiness(); return ok }

// Close stops background work (the key refresh). It is idempotent.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.remote != nil {
			_ = a.remote.Close()
		}
		a.closeRedis()
		a.closeConnections() // conns.go
		a.shutdownTracing()  // the last spans, after every request (tracing.go)
	})
}

// adminHandler is the admin listener's handler (internal/admin), given the
// App's readiness, metrics registry, session API and tokens.
func (a *App) adminHandler() http.Handler {
	return admin.NewHandler(admin.HandlerConfig{
		Ready:        a.readiness,
		Metrics:      a.metrics.Handler(),
		Sessions:     a.adminSessions(),
		AdminToken:   a.cfg.AdminToken.Reveal(),
		MetricsToken: a.cfg.MetricsToken.Reveal(),
		Pprof:        a.cfg.AdminPprof,
	})
}

// readiness is what GET /readyz answers: ready, or why not.
func (a *App) readiness() (bool, string) {
	if !a.keys.Ready() {
		msg := "no usable signing keys"
		if a.remote != nil {
			if st := a.remote.Stats(); st.LastSuccess.IsZero() {
				msg = "signing keys not loaded yet"
			} else {
				msg = "signing keys older than jwks.max_stale"
			}
		}
		return false, msg
	}
	if msg := a.redisNotReady(); msg != "" {
		return false, msg
	}
	return true, ""
}

// Run listens on the configured addresses and serves until ctx is done,
// then drains (see Serve). It closes the App on return.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	pl, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var al net.Listener
	if a.cfg.AdminListen != "" {
		if al, err = net.Listen("tcp", a.cfg.AdminListen); err != nil {
			pl.Close()
			return fmt.Errorf("admin_listen: %w", err)
		}
	}
	return a.Serve(ctx, pl, al)
}

// Serve serves the proxy on pl and the admin handler on al (nil: none) until
// ctx is done. Then it stops accepting, lets in-flight requests finish for up
// to server.shutdown_timeout, and returns nil; a server that fails returns
// its error.
func (a *App) Serve(ctx context.Context, pl, al net.Listener) error {
	errLog := zap.NewStdLog(a.log.Named("http"))
	ps := &http.Server{
		Handler:           a.metrics.Track(a.handler),
		ConnState:         a.metrics.ConnState, // sessiongate_connections_open
		ReadHeaderTimeout: a.cfg.Server.ReadHeaderTimeout.D(),
		IdleTimeout:       a.cfg.Server.IdleTimeout.D(),
		MaxHeaderBytes:    a.cfg.Server.MaxHeaderBytes,
		// No ReadTimeout or WriteTimeout: request bodies may be long uploads
		// and responses long streams (SSE, WebSockets). Slow clients are
		// bounded by ReadHeaderTimeout and IdleTimeout; the reserved paths,
		// which need neither, bound their bodies per request
		// (Options.ReservedReadTimeout).
		ErrorLog: errLog,
	}
	a.configureListener(ps) // tls, h2c (tls.go)
	servers := []*http.Server{ps}
	listeners := []net.Listener{pl}
	if al != nil {
		as := &http.Server{
			Handler:           a.admin,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          errLog,
		}
		servers = append(servers, as)
		listeners = append(listeners, al)
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func(s *http.Server, l net.Listener) {
			if err := serveOn(s, l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}(s, listeners[i])
	}
	fields := []zap.Field{zap.String("listen", pl.Addr().String()), zap.Bool("tls", a.certs != nil), zap.Bool("h2c", a.cfg.H2C)}
	if al != nil {
		fields = append(fields, zap.String("admin_listen", al.Addr().String()))
	}
	a.log.Info("sessiongate serving", fields...)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := a.watchConfig(watchCtx) // watch_config (reload.go)
	defer func() { stopWatch(); <-watched }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.log.Info("shutting down: draining in-flight requests", zap.Duration("bound", a.cfg.Server.ShutdownTimeout.D()))
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Server.ShutdownTimeout.D())
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func(s *http.Server) {
			defer wg.Done()
			if err := s.Shutdown(sctx); err != nil {
				a.log.Warn("drain bound reached; closing remaining connections", zap.Error(err))
				_ = s.Close()
			}
		}(s)
	}
	// Shutdown above does not know hijacked connections (WebSockets), and
	// would wait for server-sent event streams that never end (conns.go).
	wg.Add(1)
	go func() { defer wg.Done(); a.shutdownConnections(sctx) }()
	wg.Wait()
	a.log.Info("stopped")
	_ = a.log.Sync()
	return serveErr
}

// NewLogger builds the process logger: zap JSON on stderr at level. Lines
// go out through a group-commit writer (internal/linewriter): at once when
// the output is idle, batched into one write while a write is in progress.
// With async, writes are instead buffered (256 KiB, flushed every second).
// Either way, call Sync before exiting. The output is returned too, for
// Options.AccessLogWriter: access lines written there directly interleave
// with the logger's lines, one whole line per write, and are flushed by the
// logger's Sync.
func NewLogger(level string, async bool) (*zap.Logger, zapcore.WriteSyncer, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, nil, fmt.Errorf("log.level: %w", err)
		}
	}
	var out zapcore.WriteSyncer = linewriter.New(os.Stderr, 0)
	if async {
		out = &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(os.Stderr), Size: 256 << 10, FlushInterval: time.Second}
	}
	return LoggerTo(out, lvl), out, nil
}

// LoggerTo is the process logger's encoding on out at level: JSON with
// zap's production keys, "ts" in ISO 8601, no caller, no sampling (every
// access-log line is kept). The proxy's hand-written access lines
// (proxy.Options.AccessLogWriter) are byte for byte what this logger
// writes; proxy's TestAccessLogWriterWritesWhatTheBinaryLoggerWould holds
// the two together, so a change here that they do not follow fails it.
func LoggerTo(out zapcore.WriteSyncer, level zapcore.Level) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), out, level), zap.ErrorOutput(zapcore.Lock(os.Stderr)))
}

// machineVerifier is a.machines as the Gate's interface (a nil *Verifier
// must be a nil interface).
func (a *App) machineVerifier() middleware.MachineVerifier {
	if a.machines == nil {
		return nil
	}
	return a.machines
}

// parsePrefixes parses trusted_proxies entries.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, tp := range list {
		pfx, err := parsePrefix(tp)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %w", err)
		}
		out = append(out, pfx)
	}
	return out, nil
}
