package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
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

// Kinds of fake instance (--instance).
const (
	instanceProduction  = "production"
	instanceDevelopment = "development"
)

// Dev mode defaults.
const (
	defaultDevListen      = "127.0.0.1:8080"
	defaultDevClerkListen = "127.0.0.1:8081"
	defaultDevAdminListen = "127.0.0.1:9090"
	defaultDevClerkURL    = "http://127.0.0.1:8081"
	defaultDevLifetime    = time.Hour
	maxDevLifetime        = 24 * time.Hour // the fake's token endpoint bound
	devShutdownTimeout    = 5 * time.Second
	devProxyPath          = "/__clerk" // devOptions.frontendAPIProxy
	devReadyTimeout       = 10 * time.Second
)

// devOptions configure devMain.
type devOptions struct {
	Listen, ClerkListen, AdminListen string // ":0" ports pick free ones
	TokenLifetime                    time.Duration
	LogLevel                         zapcore.Level // --log-level; the zero value is info
	// Instance is the kind of the fake Clerk instance (--instance):
	// "production" (the default, also for "") or "development", which runs
	// Clerk's dev-browser handshake.
	Instance string
	// now, when set, is the clock of the fake and the gate (for tests).
	now func() time.Time
	// frontendAPIProxy serves the fake's Frontend API under the gate's
	// /__clerk (clerk.proxy_url as a path) instead of sending browsers to
	// the fake's own URL (for tests).
	frontendAPIProxy bool
	// ready, when set, receives the gate's origin once everything listens
	// (for tests; the banner is printed just before).
	ready func(gateOrigin string)
	// onFake, when set, receives the fake Clerk instance as soon as it runs
	// (for tests: request counters, session status).
	onFake func(*clerktest.Instance)
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// runDev is `sessiongate dev`: a fake Clerk instance, a demo upstream and the
// gate in front, all on loopback, until SIGINT or SIGTERM.
func runDev(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return runDevToken(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("sessiongate dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts devOptions
	fs.StringVar(&opts.Listen, "listen", defaultDevListen, "the gate's `address` (loopback only)")
	fs.StringVar(&opts.ClerkListen, "clerk-listen", defaultDevClerkListen, "the fake Clerk instance's `address` (loopback only)")
	fs.StringVar(&opts.AdminListen, "admin-listen", defaultDevAdminListen, "the admin listener's `address` (loopback only)")
	fs.DurationVar(&opts.TokenLifetime, "token-lifetime", defaultDevLifetime, "lifetime of the `duration` of minted dev tokens (real Clerk session tokens live 60s)")
	fs.TextVar(&opts.LogLevel, "log-level", zapcore.InfoLevel, "`level` of the logs: debug, info, warn or error")
	fs.StringVar(&opts.Instance, "instance", instanceProduction, "the fake Clerk instance's `kind`: production (pk_live_) or development (pk_test_, Clerk's dev-browser handshake)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sessiongate dev [flags]\n       sessiongate dev token [flags]\n\n"+
			"Starts a fake Clerk instance, a demo upstream and the gate in front of it, all on loopback, and prints\n"+
			"a working curl, a browser sign-in URL and the settings that point `sessiongate serve` at the fake.\n"+
			"Reads no configuration file and no environment.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sessiongate dev: unexpected argument %q\n", pos[0])
		fs.Usage()
		return 2
	}
	if err := opts.check(); err != nil {
		fmt.Fprintf(stderr, "sessiongate dev: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devMain(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "sessiongate dev: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// check validates the options: loopback addresses and a sane lifetime.
func (o *devOptions) check() error {
	for _, f := range []struct{ flag, addr string }{
		{"--listen", o.Listen}, {"--clerk-listen", o.ClerkListen}, {"--admin-listen", o.AdminListen},
	} {
		if err := checkLoopbackAddr(f.addr); err != nil {
			return &usageError{fmt.Sprintf("%s %q: %v", f.flag, f.addr, err)}
		}
	}
	if o.TokenLifetime < time.Second || o.TokenLifetime > maxDevLifetime {
		return &usageError{fmt.Sprintf("--token-lifetime %v: must be between 1s and %v", o.TokenLifetime, maxDevLifetime)}
	}
	switch o.Instance {
	case "", instanceProduction, instanceDevelopment:
	default:
		return &usageError{fmt.Sprintf("--instance %q: must be production or development", o.Instance)}
	}
	return nil
}

// development reports --instance development.
func (o *devOptions) development() bool { return o.Instance == instanceDevelopment }

// secretKey is the fake's fixed secret key: sk_test_ for a development
// instance (sessiongate refuses keys of two instance types).
func (o *devOptions) secretKey() string {
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

// devLogger is a zap console logger at level on w.
func devLogger(w io.Writer, level zapcore.Level) *zap.Logger {
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

// devMain runs dev mode until ctx is done.
func devMain(ctx context.Context, opts devOptions, stdout, stderr io.Writer) (err error) {
	log := devLogger(stderr, opts.LogLevel)
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
		Now:             opts.now,
	})
	if err != nil {
		return fmt.Errorf("--clerk-listen %s: %w", opts.ClerkListen, err)
	}
	defer fake.Close()
	if opts.onFake != nil {
		opts.onFake(fake)
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
		Handler: &demoUpstream{
			prefix:    cfgDefaults.Headers.Prefix,
			signInURL: fake.SignInURL(gateOrigin + "/"),
			signOut:   fake.SignOutURL(gateOrigin + "/public"),
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

	cfg := devConfig(gateLn.Addr().String(), addrOrEmpty(adminLn), gateOrigin, demoURL, fake, opts.TokenLifetime)
	if opts.frontendAPIProxy {
		cfg.Clerk.ProxyURL = devProxyPath
		cfg.Clerk.FrontendAPIURL = fake.URL()
		fake.SetProxyURL(gateOrigin + devProxyPath)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("the dev configuration is invalid (a bug): %w", err)
	}
	a, err := app.New(cfg, app.Options{Logger: log, Now: opts.now})
	if err != nil {
		return fmt.Errorf("the dev configuration was refused (a bug): %w", err)
	}
	defer a.Close()

	// Wait (bounded) for the keys so the printed curl works at once.
	deadline := time.Now().Add(devReadyTimeout)
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
		ClerkFlag: fake.URL() != defaultDevClerkURL,
		Serve:     serveSettings(fake.Issuer(), gateOrigin, demoURL),
		SecretKey: opts.secretKey(), Development: opts.development(),
	})
	if opts.ready != nil {
		opts.ready(gateOrigin)
	}

	pl, al := gateLn, adminLn
	gateLn, adminLn = nil, nil // Serve owns them now
	return a.Serve(ctx, pl, al)
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

// devConfig is dev mode's configuration: the fake as the Clerk instance,
// "/public" public and everything else required, in front of the demo.
func devConfig(listen, adminListen, gateOrigin, demoURL string, fake *clerktest.Instance, lifetime time.Duration) *config.Config {
	cfg := config.Defaults()
	cfg.Listen = listen
	cfg.AdminListen = adminListen
	cfg.Clerk.Issuer = fake.Issuer()
	// The fake as a production (or, --instance development, a development)
	// instance: the publishable key names it as the Frontend API (cookie
	// suffix, issuer host) and proxy_url sends the handshake redirect to it
	// over http.
	cfg.Clerk.PublishableKey = fake.PublishableKey()
	cfg.Clerk.ProxyURL = fake.URL()
	cfg.Clerk.SecretKey = config.Secret(fake.SecretKey())
	cfg.Clerk.APIURL = fake.APIURL()
	cfg.Clerk.AuthorizedParties = []string{gateOrigin}
	cfg.SignInURL = fake.URL() + clerktest.SignInPath // the gate sets redirect_url
	cfg.PublicOrigin = gateOrigin
	cfg.Upstream = demoURL
	cfg.Routes = []config.Route{
		{Path: "/public", Auth: config.AuthPublic},
		{Path: "/api", Auth: config.AuthRequired, Accepts: []string{"session_token", "api_key"}},
		{Path: "/", Auth: config.AuthRequired},
	}
	cfg.Log.Level = "info"
	cfg.Server.ShutdownTimeout = config.Duration(devShutdownTimeout)
	// A revocation must outlive the tokens it revokes; dev tokens live long.
	if ttl := config.Duration(lifetime + time.Minute); ttl > cfg.Revocation.TTL {
		cfg.Revocation.TTL = ttl
	}
	cfg.Normalize()
	return &cfg
}

type bannerData struct {
	Gate, Clerk, Admin, Token, SignIn string
	APIKey                            string // the demo user's, for /api
	Lifetime                          time.Duration
	ClerkFlag                         bool // the fake is not on the default address
	Serve                             []envSetting
	SecretKey                         string // the fake's
	Development                       bool   // --instance development
}

// envSetting is one environment variable of the printed serve command.
type envSetting struct{ Name, Value string }

// serveSettings are the environment of a `sessiongate serve` that verifies
// the fake's tokens in front of the same demo upstream: the fake's issuer
// (keys from its public JWKS, {issuer}/.well-known/jwks.json, so no secret
// key is involved), the dev gate's origin as the authorized party (the azp
// of every dev token), and listeners beside dev's own.
func serveSettings(issuer, gateOrigin, demoURL string) []envSetting {
	return []envSetting{
		{"SESSIONGATE_ISSUER", issuer},
		{"SESSIONGATE_AUTHORIZED_PARTIES", gateOrigin},
		{"SESSIONGATE_UPSTREAM", demoURL},
		{"SESSIONGATE_LISTEN", "127.0.0.1:8090"},
		{"SESSIONGATE_ADMIN_LISTEN", "127.0.0.1:9091"},
	}
}

func printBanner(w io.Writer, d bannerData) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nsessiongate dev: a fake Clerk instance, a demo upstream, and the gate in front, on loopback.\n\n")
	fmt.Fprintf(&b, "  gate        %s   (\"/public\" is public, everything else requires a session)\n", d.Gate)
	kind := "a production instance"
	if d.Development {
		kind = "a development instance: Clerk's dev-browser handshake"
	}
	fmt.Fprintf(&b, "  fake Clerk  %s   (%s; secret key %s: public, it protects nothing but this loopback fake)\n", d.Clerk, kind, d.SecretKey)
	if d.Admin != "" {
		fmt.Fprintf(&b, "  admin       %s   (/healthz, /readyz, /metrics)\n", d.Admin)
	}
	fmt.Fprintf(&b, "\nA request with a session token (valid for %v; real Clerk session tokens live 60s):\n\n", d.Lifetime)
	fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/hello\n\n", d.Token, d.Gate)
	fmt.Fprintf(&b, "The same without a token (401, X-Clerk-Auth-Reason: session-token-missing):\n\n")
	fmt.Fprintf(&b, "  curl -i %s/hello\n\n", d.Gate)
	if d.APIKey != "" {
		fmt.Fprintf(&b, "A Clerk API key of the same user (\"/api\" takes session tokens and API keys; docs/machine-auth.md):\n\n")
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/hello\n\n", d.APIKey, d.Gate)
	}
	fmt.Fprintf(&b, "In a browser, sign in on the fake (it sets the __session cookie on this host):\n\n")
	fmt.Fprintf(&b, "  %s\n\n", d.SignIn)
	fmt.Fprintf(&b, "Once a token expires, the next page load renews it through Clerk's handshake (307 to the fake's\n"+
		"/v1/client/handshake and back); try it with a short --token-lifetime, e.g. 10s.\n\n")
	clerkFlag := ""
	if d.ClerkFlag {
		clerkFlag = " --clerk " + d.Clerk
	}
	if d.SecretKey != "" && d.SecretKey != DevSecretKey {
		clerkFlag += " --secret-key " + d.SecretKey
	}
	fmt.Fprintf(&b, "More tokens:\n\n  sessiongate dev token%s --user user_123 --org org_456 --role admin\n\n", clerkFlag)
	if len(d.Serve) > 0 {
		fmt.Fprintf(&b, "The same demo behind `sessiongate serve`, verifying this fake's tokens (while dev runs):\n\n")
		for _, e := range d.Serve {
			fmt.Fprintf(&b, "  %s=%s \\\n", e.Name, e.Value)
		}
		fmt.Fprintf(&b, "  sessiongate serve\n\n")
	}
	fmt.Fprintf(&b, "Ctrl-C stops everything.\n\n")
	_, _ = io.WriteString(w, b.String())
}

// runDevToken is `sessiongate dev token`: it asks a running dev mode's fake
// Clerk instance for a session token and prints it.
func runDevToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiongate dev token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clerkURL := fs.String("clerk", defaultDevClerkURL, "the fake Clerk instance's `URL` (sessiongate dev --clerk-listen)")
	secret := fs.String("secret-key", DevSecretKey, "the fake's secret `key`")
	user := fs.String("user", clerktest.DemoUserID, "the user `id` (sub)")
	org := fs.String("org", "", "the active organization `id`")
	role := fs.String("role", "", "the organization `role` (default admin with --org)")
	slug := fs.String("slug", "", "the organization `slug`")
	lifetime := fs.Duration("lifetime", defaultDevLifetime, "the token's `duration` (whole seconds, at most 24h)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sessiongate dev token [flags]\n\n"+
			"Mints a session token on the fake Clerk instance of a running `sessiongate dev` and prints it:\n"+
			"  curl -H \"Authorization: Bearer $(sessiongate dev token)\" http://127.0.0.1:8080/\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sessiongate dev token: unexpected argument %q\n", pos[0])
		fs.Usage()
		return 2
	}
	if *lifetime < time.Second || *lifetime > maxDevLifetime {
		fmt.Fprintf(stderr, "sessiongate dev token: --lifetime %v: must be between 1s and %v\n", *lifetime, maxDevLifetime)
		return 2
	}
	if (*role != "" || *slug != "") && *org == "" {
		fmt.Fprintf(stderr, "sessiongate dev token: --role and --slug need --org\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tok, err := devToken(ctx, *clerkURL, *secret, devTokenRequest{
		UserID: *user, OrgID: *org, OrgRole: *role, OrgSlug: *slug,
		LifetimeSeconds: int64(*lifetime / time.Second),
	})
	if err != nil {
		fmt.Fprintf(stderr, "sessiongate dev token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// devTokenRequest is the body of the fake's POST /v1/testing/tokens.
type devTokenRequest struct {
	UserID          string `json:"user_id"`
	OrgID           string `json:"org_id,omitempty"`
	OrgRole         string `json:"org_role,omitempty"`
	OrgSlug         string `json:"org_slug,omitempty"`
	LifetimeSeconds int64  `json:"lifetime_seconds,omitempty"`
}

// devToken asks the fake at clerkURL for a token.
func devToken(ctx context.Context, clerkURL, secretKey string, req devTokenRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	endpoint := strings.TrimRight(clerkURL, "/") + clerktest.TestingTokensPath
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("--clerk %q: %w", clerkURL, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+secretKey)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return "", fmt.Errorf("%w (is `sessiongate dev` running, with its fake Clerk instance on %s? see --clerk)", err, clerkURL)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the answer of %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ce struct {
			Errors []struct {
				Message     string `json:"message"`
				LongMessage string `json:"long_message"`
				Code        string `json:"code"`
			} `json:"errors"`
		}
		if json.Unmarshal(raw, &ce) == nil && len(ce.Errors) > 0 {
			e := ce.Errors[0]
			msg := e.Message
			if e.LongMessage != "" && e.LongMessage != e.Message {
				msg += ": " + e.LongMessage
			}
			return "", fmt.Errorf("%s answered %d %s: %s", endpoint, resp.StatusCode, e.Code, msg)
		}
		return "", fmt.Errorf("%s answered %d (not a fake Clerk instance? see --clerk)", endpoint, resp.StatusCode)
	}
	var out struct {
		Object string `json:"object"`
		JWT    string `json:"jwt"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Object != "token" || out.JWT == "" {
		return "", fmt.Errorf("%s answered 200 without a token (not a fake Clerk instance? see --clerk)", endpoint)
	}
	return out.JWT, nil
}
