package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/devmode"
)

// runDev is `sessiongate dev`: a fake Clerk instance, a demo upstream and the
// gate in front, all on loopback, until SIGINT or SIGTERM.
func runDev(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return runDevToken(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("sessiongate dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts devmode.Options
	fs.StringVar(&opts.Listen, "listen", devmode.DefaultListen, "the gate's `address` (loopback only)")
	fs.StringVar(&opts.ClerkListen, "clerk-listen", devmode.DefaultClerkListen, "the fake Clerk instance's `address` (loopback only)")
	fs.StringVar(&opts.AdminListen, "admin-listen", devmode.DefaultAdminListen, "the admin listener's `address` (loopback only)")
	fs.DurationVar(&opts.TokenLifetime, "token-lifetime", devmode.DefaultTokenLifetime, "lifetime of the `duration` of minted dev tokens (real Clerk session tokens live 60s)")
	fs.TextVar(&opts.LogLevel, "log-level", zapcore.InfoLevel, "`level` of the logs: debug, info, warn or error")
	fs.StringVar(&opts.Instance, "instance", devmode.InstanceProduction, "the fake Clerk instance's `kind`: production (pk_live_) or development (pk_test_, Clerk's dev-browser handshake)")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devmode.Run(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "sessiongate dev: %v\n", err)
		var ue *devmode.UsageError // opts failed Check: a flag's value
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// runDevToken is `sessiongate dev token`: it asks a running dev mode's fake
// Clerk instance for a session token and prints it.
func runDevToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessiongate dev token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clerkURL := fs.String("clerk", devmode.DefaultClerkURL, "the fake Clerk instance's `URL` (sessiongate dev --clerk-listen)")
	secret := fs.String("secret-key", devmode.DevSecretKey, "the fake's secret `key`")
	user := fs.String("user", clerktest.DemoUserID, "the user `id` (sub)")
	org := fs.String("org", "", "the active organization `id`")
	role := fs.String("role", "", "the organization `role` (default admin with --org)")
	slug := fs.String("slug", "", "the organization `slug`")
	lifetime := fs.Duration("lifetime", devmode.DefaultTokenLifetime, "the token's `duration` (whole seconds, at most 24h)")
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
	if *lifetime < time.Second || *lifetime > devmode.MaxTokenLifetime {
		fmt.Fprintf(stderr, "sessiongate dev token: --lifetime %v: must be between 1s and %v\n", *lifetime, devmode.MaxTokenLifetime)
		return 2
	}
	if (*role != "" || *slug != "") && *org == "" {
		fmt.Fprintf(stderr, "sessiongate dev token: --role and --slug need --org\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tok, err := devmode.Token(ctx, *clerkURL, *secret, devmode.TokenRequest{
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
