// Command sessiongate authenticates HTTP requests with Clerk session tokens:
// a reverse proxy / sidecar that gives upstreams identity headers, and a
// forward-auth endpoint for nginx, Traefik and Caddy.
//
//	sessiongate serve   [--config FILE] [--listen ADDR] [--upstream URL]   (default)
//	sessiongate dev     [--listen ADDR]                 fake Clerk + demo upstream + gate
//	sessiongate dev token [--user ID] [--org ID] ...    mint another dev token
//	sessiongate verify  [--config FILE] TOKEN|-         any credential: claims or identity as JSON (exit 0) or the reason (exit 1); -: stdin
//	sessiongate sessions list|get|revoke|verify|token   Backend API Sessions calls
//	sessiongate config check [FILE]                     validate, print the effective config, secrets redacted
//	sessiongate version
//
// Exit codes: 0 success, 1 failure (bad config, invalid token, runtime
// error), 2 usage error.
//
// Stable: follows semantic versioning from v1 (commands, flags, exit codes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/buildinfo"
	"github.com/sessiongate/sessiongate/middleware"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  sessiongate serve   [--config FILE] [--listen ADDR] [--upstream URL] [--admin-listen ADDR] [--log-level L]
  sessiongate dev     [--listen ADDR] [--clerk-listen ADDR] [--admin-listen ADDR] [--log-level L]
  sessiongate dev token [--user ID] [--org ID] [--role ROLE] [--slug SLUG]
  sessiongate verify  [--config FILE] TOKEN|-   (-: the token from stdin)
  sessiongate sessions list|get|revoke|verify|token ...   (CLERK_SECRET_KEY, CLERK_API_URL)
  sessiongate config check [FILE]
  sessiongate version

Configuration: a YAML file (--config or SESSIONGATE_CONFIG), the environment
(CLERK_*, SESSIONGATE_*), then flags. See docs/configuration.md.
Without a subcommand, sessiongate serves when a file or any of those
variables is set. "sessiongate COMMAND --help" describes a command's flags.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		if nothingToServe(nil) {
			// Nothing configured: the usage helps more than "no upstream".
			fmt.Fprint(stderr, usage)
			return 2
		}
		return runServe(nil, stdout, stderr)
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "dev":
		if len(args) > 1 && args[1] == "token" {
			return runDevToken(args[2:], stdout, stderr)
		}
		return runDev(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdin, stdout, stderr)
	case "sessions":
		return runSessions(args[1:], stdout, stderr)
	case "config":
		if len(args) >= 2 && args[1] == "check" {
			return runConfigCheck(args[2:], stdout, stderr)
		}
		if len(args) == 2 && (args[1] == "help" || args[1] == "-h" || args[1] == "-help" || args[1] == "--help") {
			fmt.Fprint(stdout, configUsage)
			return 0
		}
		fmt.Fprint(stderr, configUsage)
		return 2
	case "version", "--version", "-version":
		fs := flag.NewFlagSet("sessiongate version", flag.ContinueOnError)
		fs.SetOutput(stderr)
		usageFunc(fs, "sessiongate version", "Prints the version (the module version, or the one stamped at build time), the VCS revision when the\nbuild recorded one, and the Go version. The same version is the sessiongate_build_info metric's label.")
		pos, err := parseArgs(fs, args[1:], stdout)
		if err != nil {
			return parseExit(err)
		}
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "sessiongate version: unexpected argument %q\n", pos[0])
			return 2
		}
		fmt.Fprintln(stdout, "sessiongate", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if len(args[0]) > 0 && args[0][0] == '-' {
			return runServe(args, stdout, stderr) // flags without a subcommand: serve
		}
		fmt.Fprintf(stderr, "sessiongate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// versionString is the version, the VCS revision when the build recorded
// one, and the Go version (internal/buildinfo: the same source as the
// sessiongate_build_info metric).
func versionString() string { return buildinfo.Read().String() }

// serveFlags are the flags of serve.
type serveFlags struct {
	file string
	over config.Overrides
}

const serveDescription = `Runs the authenticating reverse proxy (and forward-auth endpoint) and the admin listener until SIGTERM
or SIGINT, then drains in-flight requests. Configuration: defaults, then the YAML file (--config or
SESSIONGATE_CONFIG), then the environment (CLERK_*, SESSIONGATE_*), then these flags; every key is in
docs/configuration.md. "sessiongate config check" validates a configuration without serving.`

func parseServeFlags(name string, args []string, stdout, stderr io.Writer) (*serveFlags, []string, error) {
	fs := flag.NewFlagSet("sessiongate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &serveFlags{}
	fs.StringVar(&f.file, "config", "", "YAML configuration `file` (default: $SESSIONGATE_CONFIG)")
	fs.StringVar(&f.over.Listen, "listen", "", "proxy listen `address` (listen, SESSIONGATE_LISTEN; default :8080)")
	fs.StringVar(&f.over.Upstream, "upstream", "", "default upstream `URL` (upstream, SESSIONGATE_UPSTREAM)")
	fs.StringVar(&f.over.AdminListen, "admin-listen", "", "admin listen `address` (admin_listen, SESSIONGATE_ADMIN_LISTEN; default 127.0.0.1:9090)")
	fs.StringVar(&f.over.LogLevel, "log-level", "", "`level` of the logs: debug, info, warn or error (log.level, SESSIONGATE_LOG_LEVEL; default info)")
	usageFunc(fs, "sessiongate "+name+" [flags]", serveDescription)
	pos, err := parseArgs(fs, args, stdout)
	return f, pos, err
}

func runServe(args []string, stdout, stderr io.Writer) int {
	f, pos, err := parseServeFlags("serve", args, stdout, stderr)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sessiongate serve: unexpected argument %q (see sessiongate serve --help)\n", pos[0])
		return 2
	}
	// SIGHUP reloads the configuration (reload.go); caught from here on, so
	// that one sent during start-up does not kill the process.
	hup := notifyHUP()
	defer signal.Stop(hup)
	src := config.Sources{File: f.file, Flags: f.over}
	cfg, err := config.Load(src)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// The logger is made here so that every line written before an exit,
	// by New or Run, is flushed on the way out.
	log, logOut, err := app.NewLogger(cfg.Log.Level, cfg.Log.Async)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	a, err := app.New(cfg, reloadOptions(app.Options{Logger: log, AccessLogWriter: logOut}, src))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go reloadOnHUP(ctx, hup, a)
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "sessiongate:", err)
		return 1
	}
	return 0
}

// maxVerifyInput bounds what verify reads from stdin: far above the 16 KiB
// a token may have, far below anything that could hurt.
const maxVerifyInput = 64 << 10

// runVerify verifies one token with the configured instance. It needs only
// the clerk settings: a configuration without routes is accepted. The token
// is the argument, or stdin when the argument is "-": an argument is seen
// by anyone who can run ps, and stays in the shell's history.
func runVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiongate verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration `file` (default: $SESSIONGATE_CONFIG); only the clerk settings matter")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the signing keys")
	usageFunc(fs, "sessiongate verify [--config FILE] [--timeout D] TOKEN|-",
		`Verifies one credential against the configured Clerk instance, as the proxy would: a session token, an API
key (ak_), an M2M token (mt_ or JWT) or an OAuth access token (oat_ or JWT); opaque ones need clerk.secret_key.
Valid: a session's claims, or a machine credential's kind and identity, as JSON on stdout, exit 0. Invalid: the
reason code on stdout and the message on stderr, exit 1. "-" reads the token from stdin, which keeps it out of
ps and the shell's history.`)
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: sessiongate verify [--config FILE] [--timeout D] TOKEN|-   (-: read the token from stdin)")
		return 2
	}
	token := pos[0]
	if token == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, maxVerifyInput+1))
		if err != nil {
			fmt.Fprintln(stderr, "sessiongate verify: reading stdin:", err)
			return 2
		}
		if len(data) > maxVerifyInput {
			fmt.Fprintf(stderr, "sessiongate verify: stdin holds more than %d bytes; a token has at most 16 KiB\n", maxVerifyInput)
			return 2
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			fmt.Fprintln(stderr, "sessiongate verify: no token on stdin")
			return 2
		}
	}
	// verify never proxies: a placeholder upstream lets a configuration that
	// has only the clerk settings validate. Routes of a full configuration
	// keep their own upstreams.
	cfg, err := config.Load(config.Sources{File: *file, Flags: config.Overrides{Upstream: "http://127.0.0.1:1"}})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg.AdminListen = ""
	a, err := app.New(cfg, app.Options{Logger: nopLogger()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Any kind of credential: a session token prints its claims; a machine
	// credential (API key, M2M or OAuth token) its kind and identity.
	p := a.Gate().DefaultPolicy()
	p.Accepts = []middleware.TokenType{middleware.AnyToken}
	auth, err := a.Gate().VerifyAny(ctx, token, p)
	if err != nil {
		_, reason, msg := middleware.Outcome(err)
		fmt.Fprintln(stdout, reason)
		fmt.Fprintln(stderr, msg)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if auth.Session != nil {
		_ = enc.Encode(auth.Session)
		return 0
	}
	m := auth.Machine
	_ = enc.Encode(struct {
		Type       middleware.TokenType `json:"token_type"`
		ID         string               `json:"id,omitempty"`
		Subject    string               `json:"subject"`
		Scopes     []string             `json:"scopes"`
		ClientID   string               `json:"client_id,omitempty"`
		Name       string               `json:"name,omitempty"`
		Claims     json.RawMessage      `json:"claims,omitempty"`
		Expiration *time.Time           `json:"expiration,omitempty"`
	}{m.Type, m.ID, m.Subject, m.Scopes, m.ClientID, m.Name, m.Claims, timePtr(m.Expiration)})
	return 0
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiongate config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usageFunc(fs, "sessiongate config check [FILE]", configUsageText)
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "usage: sessiongate config check [FILE]")
		return 2
	}
	file := ""
	if len(pos) == 1 {
		file = pos[0]
	}
	cfg, err := config.Load(config.Sources{File: file})
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintln(stderr, ve.Error())
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	if err := app.Check(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out, err := cfg.Redacted()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, string(out))
	fmt.Fprintln(stderr, "config: OK")
	return 0
}

func nopLogger() *zap.Logger { return zap.NewNop() }

const configUsageText = `Reads the configuration exactly as serve does (FILE, else SESSIONGATE_CONFIG, else none, then the
environment), validates it, and prints the effective configuration as YAML with every secret REDACTED
(exit 0), or every problem, each naming its key (exit 1). It contacts neither Clerk nor the upstreams.`

const configUsage = "usage: sessiongate config check [FILE]\n\n" + configUsageText + "\n"
