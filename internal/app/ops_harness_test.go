package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testcert"
)

// The harness of the operations tests (tls_test.go, grpc_test.go,
// reload_test.go): an App serving on 127.0.0.1:0 with a fake Clerk,
// configured by the test, kept apart from the other harnesses.

var (
	opsKeyOnce sync.Once
	opsKey     *clerktest.SigningKey
)

func opsSigningKey() *clerktest.SigningKey {
	opsKeyOnce.Do(func() {
		k, err := clerktest.NewSigningKey("ins_ops", "RS256")
		if err != nil {
			panic(err)
		}
		opsKey = k
	})
	return opsKey
}

type opsOptions struct {
	// config sets the upstream(s) and anything else; it runs after the
	// harness's defaults and before Normalize.
	config func(*config.Config, *clerktest.Instance)
	// options changes the App's options.
	options func(*app.Options)
	// yaml, when set, is the configuration: written to a file (after
	// opsYAML's Clerk settings), loaded with config.Load, and re-read by
	// Options.Reload. config is not used then.
	yaml string
}

type opsGate struct {
	inst     *clerktest.Instance
	app      *app.App
	addr     string // the proxy listener, host:port
	adminURL string
	logs     *observer.ObservedLogs
	file     string // the configuration file (opsOptions.yaml)
}

// opsConfig is the harness's configuration before the test's changes.
func opsConfig(inst *clerktest.Instance) config.Config {
	cfg := config.Defaults()
	cfg.Clerk.Issuer = inst.Issuer()
	cfg.Clerk.SecretKey = config.Secret(inst.SecretKey())
	cfg.Clerk.APIURL = inst.APIURL()
	cfg.JWKS.MinRefreshInterval = config.Duration(10 * time.Millisecond)
	cfg.JWKS.RefreshInterval = config.Duration(time.Hour)
	cfg.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	return cfg
}

// opsYAML is the start of a configuration file for inst: the settings of
// opsConfig.
func opsYAML(inst *clerktest.Instance) string {
	return fmt.Sprintf(`clerk:
  issuer: %s
  secret_key: %s
  api_url: %s
jwks: {refresh_interval: 1h, min_refresh_interval: 10ms}
server: {shutdown_timeout: 5s}
`, inst.Issuer(), inst.SecretKey(), inst.APIURL())
}

func startOps(t *testing.T, o opsOptions) *opsGate {
	t.Helper()
	inst := clerktest.Start(t, clerktest.Options{SigningKey: opsSigningKey()})
	core, logs := observer.New(zap.DebugLevel)
	opts := app.Options{Logger: zap.New(core)}
	var cfg *config.Config
	file := ""
	if o.yaml != "" {
		file = filepath.Join(t.TempDir(), "sessiongate.yaml")
		writeFile(t, filepath.Dir(file), filepath.Base(file), []byte(opsYAML(inst)+o.yaml))
		src := config.Sources{File: file, Env: func(string) (string, bool) { return "", false }}
		var err error
		if cfg, err = config.Load(src); err != nil {
			t.Fatal(err)
		}
		opts.Reload = func() (*config.Config, error) { return config.Load(src) }
		opts.ConfigFile = file
	} else {
		c := opsConfig(inst)
		if o.config != nil {
			o.config(&c, inst)
		}
		c.Normalize()
		cfg = &c
	}
	if o.options != nil {
		o.options(&opts)
	}
	a, err := app.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, pl, al) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
	})
	g := &opsGate{inst: inst, app: a, addr: pl.Addr().String(), adminURL: "http://" + al.Addr().String(), logs: logs, file: file}
	g.waitReady(t)
	return g
}

func (g *opsGate) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, "/readyz answers 200", func() bool {
		resp, err := http.Get(g.adminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (g *opsGate) token(t *testing.T, user string) string {
	t.Helper()
	return g.inst.MustMint(t, clerktest.WithUser(user))
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeFile replaces dir/name with data atomically.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	return testcert.WriteFile(t, dir, name, data)
}
