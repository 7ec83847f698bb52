package proxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The shipped Caddyfile. The test runs it with only its addresses replaced
// and a global block that keeps Caddy off the network and out of $HOME.
const shippedCaddyfile = "../deploy/caddy/Caddyfile"

// startCaddy runs the shipped Caddyfile listening on a free loopback port,
// with the forward-auth call to sessiongateAddr and the app at appAddr.
func startCaddy(t *testing.T, bin, sessiongateAddr, appAddr string) *childProcess {
	t.Helper()
	shipped, err := os.ReadFile(shippedCaddyfile)
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, func() (*childProcess, error) {
		c, err := newChildProcess(t, "caddy", syscall.SIGTERM, "caddy.log")
		if err != nil {
			return nil, err
		}
		conf := rewriteAddresses(t, shippedCaddyfile, string(shipped),
			[2]string{"app.example.com {", "http://" + c.addr + " {"},
			[2]string{"reverse_proxy 127.0.0.1:8080 {", "reverse_proxy " + sessiongateAddr + " {"},
			[2]string{"reverse_proxy 127.0.0.1:3000\n", "reverse_proxy " + appAddr + "\n"})
		// No admin endpoint, no certificates: nothing but the site.
		conf = "{\n\tadmin off\n\tauto_https off\n}\n\n" + conf
		path := filepath.Join(c.dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+c.dir, "XDG_DATA_HOME="+c.dir, "XDG_CONFIG_HOME="+c.dir)
		// Caddy logs this line once its listeners are bound.
		return c, c.run(t, cmd, "caddy.log", func() bool {
			return strings.Contains(c.logs(), "serving initial configuration")
		})
	})
}

// TestCaddyForwardAuth puts a real Caddy, configured with the shipped
// deploy/caddy/Caddyfile, in front of an echo app, with sessiongate's
// forward-auth endpoint deciding every request: the same cases as nginx.
func TestCaddyForwardAuth(t *testing.T) {
	t.Parallel()
	bin := frontProxyBinary(t, "caddy", "", "caddy not found; .ci/run installs it (apt-get install caddy)")
	fx := newFrontProxyFixture(t)
	c := startCaddy(t, bin, fx.sessiongateAddr(), fx.appAddr())
	// Caddy hands any non-2xx answer of sessiongate to the client.
	fx.run(t, "caddy", c.addr, func(status int) int { return status })
}
