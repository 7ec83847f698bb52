package proxy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
)

// The shipped nginx server block and the main context the test wraps around
// it. The test runs deploy/nginx/sessiongate.conf itself, with only its
// addresses replaced, so the file users copy is the file that is tested.
const (
	shippedNginxConf = "../deploy/nginx/sessiongate.conf"
	nginxMainTmpl    = "testdata/nginx.conf.tmpl"
)

// startNginx runs the shipped config with nginx listening on a free
// loopback port, sessiongate at sessiongateAddr and the app at appAddr. It
// returns once nginx accepts connections, and stops nginx in t.Cleanup.
func startNginx(t *testing.T, bin, sessiongateAddr, appAddr string) *childProcess {
	t.Helper()
	shipped, err := os.ReadFile(shippedNginxConf)
	if err != nil {
		t.Fatal(err)
	}
	main, err := template.ParseFiles(nginxMainTmpl)
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, func() (*childProcess, error) {
		n, err := newChildProcess(t, "nginx", syscall.SIGQUIT, "stderr.log", "error.log")
		if err != nil {
			return nil, err
		}
		server := rewriteAddresses(t, shippedNginxConf, string(shipped),
			[2]string{"server 127.0.0.1:8080;", "server " + sessiongateAddr + ";"},
			[2]string{"server 127.0.0.1:3000;", "server " + appAddr + ";"},
			[2]string{"listen 80;", "listen " + n.addr + ";"})
		serverConf := filepath.Join(n.dir, "sessiongate.conf")
		if err := os.WriteFile(serverConf, []byte(server), 0o600); err != nil {
			return nil, err
		}
		var conf bytes.Buffer
		if err := main.Execute(&conf, struct{ Dir, ServerConf string }{n.dir, serverConf}); err != nil {
			return nil, err
		}
		confPath := filepath.Join(n.dir, "nginx.conf")
		if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
			return nil, err
		}
		// -p: relative paths resolve in dir; -e: errors before the config's
		// error_log is open go to stderr, not /var/log/nginx. nginx writes
		// its pid file only after binding its listeners.
		cmd := exec.Command(bin, "-p", n.dir+"/", "-c", confPath, "-e", "stderr")
		return n, n.run(t, cmd, "stderr.log", func() bool {
			pid, err := os.ReadFile(filepath.Join(n.dir, "nginx.pid"))
			return err == nil && strings.TrimSpace(string(pid)) == strconv.Itoa(cmd.Process.Pid)
		})
	})
}

// TestNginxForwardAuth puts a real nginx, configured with the shipped
// deploy/nginx/sessiongate.conf, in front of an echo app, with sessiongate's
// forward-auth endpoint deciding every request.
func TestNginxForwardAuth(t *testing.T) {
	t.Parallel()
	bin := frontProxyBinary(t, "nginx", "/usr/sbin/nginx", "nginx not found; .ci/run installs nginx-light (apt-get install nginx-light)")
	fx := newFrontProxyFixture(t)
	ngx := startNginx(t, bin, fx.sessiongateAddr(), fx.appAddr())
	// nginx turns any auth-subrequest status but 2xx, 401 and 403 into a
	// 500 of its own (fail closed).
	fx.run(t, "nginx", ngx.addr, func(status int) int {
		if status == 400 {
			return 500
		}
		return status
	})
}
