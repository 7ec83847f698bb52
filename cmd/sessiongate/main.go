// Command sessiongate authenticates HTTP requests with Clerk session tokens:
// a reverse proxy / sidecar that gives upstreams identity headers, and a
// forward-auth endpoint for nginx, Traefik and Caddy.
//
//	sessiongate serve   [--config FILE] [--listen ADDR] [--upstream URL]   (default)
//	sessiongate dev     [--listen ADDR]                 fake Clerk + demo upstream + gate
//	sessiongate dev token [--user ID] [--org ID] ...    mint another dev token
//	sessiongate verify  [--config FILE] TOKEN|-         claims as JSON (exit 0) or the reason (exit 1); -: stdin
//	sessiongate sessions list|get|revoke|verify|token   Backend API Sessions calls
//	sessiongate config check [FILE]                     validate, print the effective config, secrets redacted
//	sessiongate version
//
// Exit codes: 0 success, 1 failure (bad config, invalid token, runtime
// error), 2 usage error.
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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/middleware"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  sessiongate serve   [--config FILE] [--listen ADDR] [--upstream URL] [--admin-listen ADDR]
  sessiongate dev     [--listen ADDR] [--clerk-listen ADDR] [--admin-listen ADDR]
  sessiongate dev token [--user ID] [--org ID] [--role ROLE] [--slug SLUG]
  sessiongate verify  [--config FILE] TOKEN|-   (-: the token from stdin)
  sessiongate sessions list|get|revoke|verify|token ...   (CLERK_SECRET_KEY, CLERK_API_URL)
  sessiongate config check [FILE]
  sessiongate version

Configuration: a YAML file (--config or SESSIONGATE_CONFIG), the environment
(CLERK_*, SESSIONGATE_*), then flags. See docs/configuration.md.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runServe(nil, stderr)
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stderr)
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
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return runConfigCheck(args[2:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "sessiongate", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if len(args[0]) > 0 && args[0][0] == '-' {
			return runServe(args, stderr) // flags without a subcommand: serve
		}
		fmt.Fprintf(stderr, "sessiongate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// serveFlags are the flags of serve.
type serveFlags struct {
	file string
	over config.Overrides
}

func parseServeFlags(name string, args []string, stderr io.Writer) (*serveFlags, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("sessiongate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &serveFlags{}
	fs.StringVar(&f.file, "config", "", "YAML configuration file (default: $SESSIONGATE_CONFIG)")
	fs.StringVar(&f.over.Listen, "listen", "", "proxy listen address (listen)")
	fs.StringVar(&f.over.Upstream, "upstream", "", "default upstream URL (upstream)")
	fs.StringVar(&f.over.AdminListen, "admin-listen", "", "admin listen address (admin_listen)")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	return f, fs, nil
}

func runServe(args []string, stderr io.Writer) int {
	f, fs, err := parseServeFlags("serve", args, stderr)
	if err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sessiongate serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(config.Sources{File: f.file, Flags: f.over})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	a, err := app.New(cfg, app.Options{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	file := fs.String("config", "", "YAML configuration file (default: $SESSIONGATE_CONFIG)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the signing keys")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sessiongate verify [--config FILE] TOKEN|-   (-: read the token from stdin)")
		return 2
	}
	token := fs.Arg(0)
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
	claims, err := a.Gate().Verify(ctx, token)
	if err != nil {
		_, reason, msg := middleware.Outcome(err)
		fmt.Fprintln(stdout, reason)
		fmt.Fprintln(stderr, msg)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(claims)
	return 0
}

func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiongate config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: sessiongate config check [FILE]")
		return 2
	}
	cfg, err := config.Load(config.Sources{File: fs.Arg(0)})
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
