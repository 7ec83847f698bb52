// Package devmode is `sessiongate dev`: a fake Clerk instance (clerktest),
// a demo upstream and the gate (internal/app) in front of it, all on
// loopback, with a banner that prints a working curl, a browser sign-in URL
// and the settings that point `sessiongate serve` at the fake; and Token,
// the client of `sessiongate dev token`. cmd/sessiongate parses the flags
// and maps errors to exit codes; everything else lives here.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/netutil"
)

// DevSecretKey is the Backend API secret key of the fake Clerk instance that
// `sessiongate dev` starts. It is fixed and public so that `sessiongate dev
// token` works without flags; it protects nothing but a fake that listens on
// loopback only. Never use it, or anything like it, for a real instance. It
// is an sk_live_ key because the fake plays a production instance (its
// publishable key is pk_live_, which the handshake needs, and sessiongate
// refuses keys of two instance types).
const DevSecretKey = "sk_live_sessiongate_dev_not_a_secret"

// DevTestSecretKey is DevSecretKey for `sessiongate dev --instance
// development`, where the fake plays a development instance (pk_test_): the
// same warning applies.
const DevTestSecretKey = "sk_test_sessiongate_dev_not_a_secret"

// Kinds of fake instance (Options.Instance, --instance).
const (
	InstanceProduction  = "production"
	InstanceDevelopment = "development"
)

// Dev mode defaults and bounds.
const (
	DefaultListen        = "127.0.0.1:8080"        // the gate
	DefaultClerkListen   = "127.0.0.1:8081"        // the fake Clerk instance
	DefaultAdminListen   = "127.0.0.1:9090"        // the admin listener
	DefaultClerkURL      = "http://127.0.0.1:8081" // the fake at DefaultClerkListen
	DefaultTokenLifetime = time.Hour               // of minted dev tokens
	MaxTokenLifetime     = 24 * time.Hour          // the fake's token endpoint bound

	shutdownTimeout = 5 * time.Second
	proxyPath       = "/__clerk" // Options.FrontendAPIProxy
	readyTimeout    = 10 * time.Second
)

// Options configure Run.
type Options struct {
	// Listen, ClerkListen and AdminListen are the loopback addresses of the
	// gate, the fake Clerk instance and the admin listener (--listen,
	// --clerk-listen, --admin-listen); ":0" ports pick free ones.
	Listen, ClerkListen, AdminListen string
	// TokenLifetime is the lifetime of minted dev tokens (--token-lifetime),
	// between 1s and MaxTokenLifetime.
	TokenLifetime time.Duration
	// LogLevel is the level of the logs (--log-level); the zero value is
	// info.
	LogLevel zapcore.Level
	// Instance is the kind of the fake Clerk instance (--instance):
	// InstanceProduction (the default, also for "") or InstanceDevelopment,
	// which runs Clerk's dev-browser handshake.
	Instance string
	// Now, when set, is the clock of the fake and the gate (for tests).
	Now func() time.Time
	// FrontendAPIProxy serves the fake's Frontend API under the gate's
	// /__clerk (clerk.proxy_url as a path) instead of sending browsers to
	// the fake's own URL (for tests).
	FrontendAPIProxy bool
	// Ready, when set, receives the gate's origin once everything listens
	// (for tests; the banner is printed just before).
	Ready func(gateOrigin string)
	// OnFake, when set, receives the fake Clerk instance as soon as it runs
	// (for tests: request counters, session status).
	OnFake func(*clerktest.Instance)
}

// UsageError is a mistake in the Options (a command-line mistake: exit
// code 2).
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Check validates the options: loopback addresses and a sane lifetime. Its
// errors are *UsageError.
func (o *Options) Check() error {
	for _, f := range []struct{ flag, addr string }{
		{"--listen", o.Listen}, {"--clerk-listen", o.ClerkListen}, {"--admin-listen", o.AdminListen},
	} {
		if err := checkLoopbackAddr(f.addr); err != nil {
			return &UsageError{fmt.Sprintf("%s %q: %v", f.flag, f.addr, err)}
		}
	}
	if o.TokenLifetime < time.Second || o.TokenLifetime > MaxTokenLifetime {
		return &UsageError{fmt.Sprintf("--token-lifetime %v: must be between 1s and %v", o.TokenLifetime, MaxTokenLifetime)}
	}
	switch o.Instance {
	case "", InstanceProduction, InstanceDevelopment:
	default:
		return &UsageError{fmt.Sprintf("--instance %q: must be production or development", o.Instance)}
	}
	return nil
}

// development reports --instance development.
func (o *Options) development() bool { return o.Instance == InstanceDevelopment }

// secretKey is the fake's fixed secret key: sk_test_ for a development
// instance (sessiongate refuses keys of two instance types).
func (o *Options) secretKey() string {
	if o.development() {
		return DevTestSecretKey
	}
	return DevSecretKey
}

// checkLoopbackAddr accepts host:port with a loopback IP or "localhost":
// dev mode's fake mints tokens for anyone who can reach it.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if !netutil.IsLoopbackHost(host) {
		return errors.New("dev mode listens on loopback only (127.0.0.1, ::1 or localhost)")
	}
	return nil
}

// newLogger is a zap console logger at level on w.
func newLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

// origin is "http://" + the listener's address, keeping the host as the
// flag named it ("localhost" stays "localhost": cookies are per host name).
func origin(flagAddr string, ln net.Listener) string {
	host, _, _ := net.SplitHostPort(flagAddr)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://" + net.JoinHostPort(host, port)
}

func listenFlag(flagName, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: cannot listen (is another process, or another `sessiongate dev`, using it? pick another with %s): %w", flagName, addr, flagName, err)
	}
	return ln, nil
}

func addrOrEmpty(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func hostOf(originURL string) string {
	h, _, _ := net.SplitHostPort(strings.TrimPrefix(originURL, "http://"))
	return h
}

// Run runs dev mode until ctx is done: it logs on stderr and prints the
// banner on stdout. Invalid options are a *UsageError.
func Run(ctx context.Context, opts Options, stdout, stderr io.Writer) (err error) {
	if err := opts.Check(); err != nil {
		return err
	}
	log := newLogger(stderr, opts.LogLevel)
	defer func() { _ = log.Sync() }()

	// The gate's listener first: its origin is the azp of every dev token.
	gateLn, err := listenFlag("--listen", opts.Listen)
	if err != nil {
		return err
	}
	defer func() {
		if gateLn != nil {
			gateLn.Close()
		}
	}()
	var adminLn net.Listener
	if opts.AdminListen != "" {
		if adminLn, err = listenFlag("--admin-listen", opts.AdminListen); err != nil {
			return err
		}
		defer func() {
			if adminLn != nil {
				adminLn.Close()
			}
		}()
	}
	gateOrigin := origin(opts.Listen, gateLn)

	fake, err := clerktest.New(clerktest.Options{
		Addr:            opts.ClerkListen,
		SecretKey:       opts.secretKey(),
		TokenLifetime:   opts.TokenLifetime,
		AuthorizedParty: gateOrigin,
		Development:     opts.development(),
		Now:             opts.Now,
	})
	if err != nil {
		return fmt.Errorf("--clerk-listen %s: %w", opts.ClerkListen, err)
	}
	defer fake.Close()
	if opts.OnFake != nil {
		opts.OnFake(fake)
	}
	if fh, _, _ := net.SplitHostPort(opts.ClerkListen); fh != hostOf(gateOrigin) {
		log.Warn("the fake Clerk instance and the gate use different host names: the browser sign-in cookie will not reach the gate",
			zap.String("clerk_host", fh), zap.String("gate_host", hostOf(gateOrigin)))
	}

	// The demo upstream.
	demoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	cfgDefaults := config.Defaults()
	demo := &http.Server{
		Handler: &DemoUpstream{
			Prefix:     cfgDefaults.Headers.Prefix,
			SignInURL:  fake.SignInURL(gateOrigin + "/"),
			SignOutURL: fake.SignOutURL(gateOrigin + "/public"),
		},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("demo")),
	}
	demoDone := make(chan struct{})
	go func() {
		defer close(demoDone)
		_ = demo.Serve(demoLn)
	}()
	defer func() {
		_ = demo.Close()
		<-demoDone
	}()
	demoURL := "http://" + demoLn.Addr().String()

	cfg := buildConfig(gateLn.Addr().String(), addrOrEmpty(adminLn), gateOrigin, demoURL, fake, opts.TokenLifetime)
	if opts.FrontendAPIProxy {
		cfg.Clerk.ProxyURL = proxyPath
		cfg.Clerk.FrontendAPIURL = fake.URL()
		fake.SetProxyURL(gateOrigin + proxyPath)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("the dev configuration is invalid (a bug): %w", err)
	}
	a, err := app.New(cfg, app.Options{Logger: log, Now: opts.Now})
	if err != nil {
		return fmt.Errorf("the dev configuration was refused (a bug): %w", err)
	}
	defer a.Close()

	// Wait (bounded) for the keys so the printed curl works at once.
	deadline := time.Now().Add(readyTimeout)
	for !a.Ready() && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !a.Ready() && ctx.Err() == nil {
		log.Warn("the gate has not loaded the fake's keys yet; requests may fail until it does")
	}

	token, err := fake.Mint(clerktest.WithUser(clerktest.DemoUserID))
	if err != nil {
		return fmt.Errorf("minting the demo token: %w", err)
	}
	// An API key of the demo user for /api, which takes session tokens and
	// API keys (verified through the fake's Backend API, then cached).
	_, apiKey := fake.CreateAPIKey(clerktest.APIKeyOptions{Subject: clerktest.DemoUserID, Name: "sessiongate dev", Scopes: []string{"read"}})
	adminOrigin := ""
	if adminLn != nil {
		adminOrigin = origin(opts.AdminListen, adminLn)
	}
	printBanner(stdout, bannerData{
		Gate: gateOrigin, Clerk: fake.URL(), Admin: adminOrigin,
		Token: token, APIKey: apiKey, SignIn: fake.SignInURL(gateOrigin + "/"), Lifetime: opts.TokenLifetime,
		ClerkFlag: fake.URL() != DefaultClerkURL,
		Serve:     serveSettings(fake.Issuer(), gateOrigin, demoURL),
		SecretKey: opts.secretKey(), Development: opts.development(),
	})
	if opts.Ready != nil {
		opts.Ready(gateOrigin)
	}

	pl, al := gateLn, adminLn
	gateLn, adminLn = nil, nil // Serve owns them now
	return a.Serve(ctx, pl, al)
}
