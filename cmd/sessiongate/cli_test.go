package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// TestEveryCommandHelp: `--help` and `-h` on every command describe its
// flags on stdout and exit 0, through the binary.
func TestEveryCommandHelp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args  []string
		flags []string // each must be described
	}{
		{nil, []string{"serve", "dev", "verify", "sessions", "config check", "version"}},
		{[]string{"serve"}, []string{"-config", "-listen", "-upstream", "-admin-listen", "-log-level"}},
		{[]string{"dev"}, []string{"-listen", "-clerk-listen", "-admin-listen", "-token-lifetime", "-log-level"}},
		{[]string{"dev", "token"}, []string{"-clerk", "-secret-key", "-user", "-org", "-role", "-slug", "-lifetime"}},
		{[]string{"verify"}, []string{"-config", "-timeout", "TOKEN"}},
		{[]string{"config"}, []string{"config check", "REDACTED"}},
		{[]string{"config", "check"}, []string{"config check", "REDACTED"}},
		{[]string{"version"}, []string{"sessiongate version"}},
		{[]string{"sessions"}, []string{"list", "get", "revoke", "verify", "token"}},
		{[]string{"sessions", "list"}, []string{"-user-id", "-client-id", "-status", "-limit", "-offset", "-all", "-json"}},
		{[]string{"sessions", "get"}, []string{"-json"}},
		{[]string{"sessions", "revoke"}, []string{"-admin", "-admin-token", "-no-local", "-json"}},
		{[]string{"sessions", "verify"}, []string{"-api-version", "-json"}},
		{[]string{"sessions", "token"}, []string{"-template", "-expires-in", "-json"}},
	} {
		for _, help := range []string{"--help", "-h"} {
			args := append(append([]string{}, tc.args...), help)
			var stdout, stderr bytes.Buffer
			cmd := command(ctx, nil, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if code := exitCode(t, cmd.Run()); code != 0 {
				t.Errorf("%v: exit %d, want 0\nstderr: %s", args, code, stderr.String())
				continue
			}
			for _, f := range tc.flags {
				if !strings.Contains(stdout.String(), f) {
					t.Errorf("%v: stdout does not describe %q:\n%s", args, f, stdout.String())
				}
			}
		}
	}
}

// TestBareInvocation: with nothing configured, a bare `sessiongate`
// prints the usage (exit 2) instead of a configuration error; with the
// environment set it serves, as the default command.
func TestBareInvocation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := command(ctx, nil)
	cmd.Stderr = &stderr
	if code := exitCode(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "usage:") || strings.Contains(stderr.String(), "upstream") && strings.Contains(stderr.String(), "problem") {
		t.Fatalf("bare sessiongate: exit %d, stderr %q; want the usage and exit 2", code, stderr.String())
	}

	// Any configuration variable: serve, and its configuration errors.
	stderr.Reset()
	cmd = command(ctx, []string{"SESSIONGATE_UPSTREAM=http://127.0.0.1:3000"})
	cmd.Stderr = &stderr
	if code := exitCode(t, cmd.Run()); code != 1 || !strings.Contains(stderr.String(), "clerk.issuer") {
		t.Fatalf("bare sessiongate with an upstream only: exit %d, stderr %q; want exit 1 naming clerk.issuer", code, stderr.String())
	}

	inst := clerktest.Start(t, clerktest.Options{})
	admin := freeAddr(t)
	stderr.Reset()
	cmd = command(ctx, []string{
		"SESSIONGATE_ISSUER=" + inst.Issuer(),
		"SESSIONGATE_UPSTREAM=http://127.0.0.1:3000",
		"SESSIONGATE_LISTEN=" + freeAddr(t),
		"SESSIONGATE_ADMIN_LISTEN=" + admin,
	})
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+admin+"/readyz", 200)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Fatalf("bare sessiongate with a configuration: exit %d\n%s", code, stderr.String())
	}
}

// TestFlagsAfterArguments: flags may follow the positional arguments.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst := clerktest.Start(t, clerktest.Options{})
	file := filepath.Join(t.TempDir(), "sessiongate.yaml")
	if err := os.WriteFile(file, []byte("clerk:\n  issuer: "+inst.Issuer()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := inst.MustMint(t, clerktest.WithUser("user_after"))
	for _, args := range [][]string{
		{"verify", "--config", file, tok},
		{"verify", tok, "--config", file},
		{"verify", "--timeout", "20s", tok, "--config", file},
		{"verify", tok, "--config=" + file, "--timeout=20s"},
	} {
		var stdout, stderr bytes.Buffer
		cmd := command(ctx, nil, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if code := exitCode(t, cmd.Run()); code != 0 || !strings.Contains(stdout.String(), "user_after") {
			t.Errorf("%v: exit %d\nstdout %s\nstderr %s", args[:len(args)-1], code, stdout.String(), stderr.String())
		}
	}
	// "--" ends the flags: what follows is positional.
	var stderr bytes.Buffer
	cmd := command(ctx, nil, "verify", "--config", file, "--", "--timeout")
	cmd.Stderr = &stderr
	if code := exitCode(t, cmd.Run()); code != 1 {
		t.Errorf("verify -- --timeout: exit %d (want 1: an invalid token)\n%s", code, stderr.String())
	}
	// The config check file may come before a flag too.
	stderr.Reset()
	cmd = command(ctx, nil, "config", "check", file, "--nope")
	cmd.Stderr = &stderr
	if code := exitCode(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "nope") {
		t.Errorf("config check FILE --nope: exit %d %q, want 2 naming the flag", code, stderr.String())
	}
}

// TestServeLogLevel: --log-level sets log.level (flags beat the
// environment); warn drops the info lines; a bad level names log.level.
func TestServeLogLevel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := []string{"SESSIONGATE_ISSUER=" + inst.Issuer(), "SESSIONGATE_UPSTREAM=http://127.0.0.1:3000", "SESSIONGATE_LOG_LEVEL=debug"}
	var stderr bytes.Buffer
	cmd := command(ctx, env, "serve", "--log-level", "loud")
	cmd.Stderr = &stderr
	if code := exitCode(t, cmd.Run()); code != 1 || !strings.Contains(stderr.String(), `log.level: "loud"`) {
		t.Fatalf("--log-level loud: exit %d %q", code, stderr.String())
	}
	for _, tc := range []struct {
		level    string
		wantInfo bool
	}{{"warn", false}, {"info", true}} {
		admin := freeAddr(t)
		stderr.Reset()
		cmd := command(ctx, env, "serve", "--listen", freeAddr(t), "--admin-listen", admin, "--log-level", tc.level)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitHTTP(t, "http://"+admin+"/readyz", 200)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if code := exitCode(t, cmd.Wait()); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		if got := strings.Contains(stderr.String(), `"level":"info"`); got != tc.wantInfo {
			t.Errorf("--log-level %s: info lines present = %v\n%s", tc.level, got, stderr.String())
		}
		if strings.Contains(stderr.String(), `"level":"debug"`) {
			t.Errorf("--log-level %s: debug lines (the flag must beat SESSIONGATE_LOG_LEVEL)\n%s", tc.level, stderr.String())
		}
	}
}

var servePrinted = regexp.MustCompile(`(?m)^\s+(SESSIONGATE_[A-Z_]+)=(\S+) \\$`)

// TestDevPrintsServeSettings: the settings dev prints make a serve that
// verifies the fake's tokens in front of the same demo upstream.
func TestDevPrintsServeSettings(t *testing.T) {
	d := startDev(t)
	out := d.stdout.String()
	m := curlWithToken.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no curl with a token in:\n%s", out)
	}
	auth := m[1]
	env := map[string]string{}
	for _, kv := range servePrinted.FindAllStringSubmatch(out, -1) {
		env[kv[1]] = kv[2]
	}
	if len(env) == 0 || !strings.Contains(out, "sessiongate serve\n") {
		t.Fatalf("no serve settings in the banner:\n%s", out)
	}
	for name := range env {
		if !strings.Contains(strings.Join(config.EnvVars(), " "), name) {
			t.Errorf("the banner sets %s, which serve does not read", name)
		}
	}
	cfg, err := config.Load(config.Sources{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatalf("the printed settings do not load:\n%v", err)
	}
	a, err := app.New(cfg, app.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pl, nil) }()
	defer func() {
		cancel()
		<-done
	}()
	testwait.Eventually(t, "the serve built from the printed settings to load the fake's keys", a.Ready)
	resp, body := send(t, client(nil, false), "GET", "http://"+pl.Addr().String()+"/hello", nil, map[string]string{"Authorization": auth})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "user_") {
		t.Fatalf("the banner's token through serve: %d %s", resp.StatusCode, body)
	}
}
