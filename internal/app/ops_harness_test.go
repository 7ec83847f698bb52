package app_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testcert"
)

// The harness of the operations tests (tls_test.go, grpc_test.go,
// reload_test.go): an App with a fake Clerk, configured by the test in Go
// or as a YAML file it can rewrite and reload, on the shared pieces of
// harness_test.go.

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

// opsYAML is the start of a configuration file for inst: the settings of
// baseConfig.
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
	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
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
		c := baseConfig(inst)
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
	s := serve(t, a)
	g := &opsGate{inst: inst, app: a, addr: s.proxyAddr, adminURL: s.adminURL, logs: logs, file: file}
	g.waitReady(t)
	return g
}

func (g *opsGate) waitReady(t *testing.T) {
	t.Helper()
	waitReady(t, g.adminURL, http.StatusOK)
}

func (g *opsGate) token(t *testing.T, user string) string {
	t.Helper()
	return g.inst.MustMint(t, clerktest.WithUser(user))
}

// writeFile replaces dir/name with data atomically.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	return testcert.WriteFile(t, dir, name, data)
}
