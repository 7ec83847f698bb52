package proxy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/jwks"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// The shipped nginx server block and the main context the test wraps around
// it. The test runs deploy/nginx/sessiongate.conf itself, with only its
// addresses replaced, so the file users copy is the file that is tested.
const (
	shippedNginxConf = "../deploy/nginx/sessiongate.conf"
	nginxMainTmpl    = "testdata/nginx.conf.tmpl"
)

const nginxMissing = "nginx not found; .ci/run installs nginx-light (apt-get install nginx-light)"

// Bounds on everything the test waits for.
const (
	nginxStartTimeout = 10 * time.Second
	nginxStopTimeout  = 5 * time.Second
	nginxBindAttempts = 5
	nginxClientTimout = 10 * time.Second
)

// nginxBinary finds nginx. Missing nginx skips the test locally and fails it
// in CI, where .ci/run installs it.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if fi, err := os.Stat("/usr/sbin/nginx"); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(nginxMissing)
	}
	t.Skip(nginxMissing)
	return ""
}

// nginxProcess is one nginx running in the foreground as the test's child.
type nginxProcess struct {
	addr string // 127.0.0.1:port it listens on
	dir  string // its prefix: config, pid, logs, temp paths
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

// logs returns what nginx wrote to stderr and its error log.
func (n *nginxProcess) logs() string {
	var b strings.Builder
	for _, f := range []string{"stderr.log", "error.log"} {
		data, _ := os.ReadFile(filepath.Join(n.dir, f))
		fmt.Fprintf(&b, "--- %s ---\n%s", f, data)
	}
	return b.String()
}

// stop asks nginx to finish (SIGQUIT: graceful) and kills it if it has not
// exited within nginxStopTimeout.
func (n *nginxProcess) stop(t *testing.T) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.done:
		return
	case <-time.After(nginxStopTimeout):
	}
	_ = n.cmd.Process.Kill()
	select {
	case <-n.done:
	case <-time.After(nginxStopTimeout):
		t.Errorf("nginx (pid %d) did not exit after SIGKILL", n.cmd.Process.Pid)
	}
}

// errAddrInUse means nginx lost the race for the port we picked.
var errAddrInUse = errors.New("nginx: address already in use")

// startNginx runs the shipped config with nginx listening on a free
// loopback port, sessiongate at sessiongateAddr and the app at appAddr. It
// returns once nginx accepts connections, and stops nginx in t.Cleanup.
func startNginx(t *testing.T, bin, sessiongateAddr, appAddr string) *nginxProcess {
	t.Helper()
	shipped, err := os.ReadFile(shippedNginxConf)
	if err != nil {
		t.Fatal(err)
	}
	main, err := template.ParseFiles(nginxMainTmpl)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		n, err := tryStartNginx(t, bin, string(shipped), main, sessiongateAddr, appAddr)
		if err == nil {
			return n
		}
		if errors.Is(err, errAddrInUse) && attempt < nginxBindAttempts {
			t.Logf("attempt %d: %v; retrying on another port", attempt, err)
			continue
		}
		t.Fatal(err)
	}
}

func tryStartNginx(t *testing.T, bin, shipped string, main *template.Template, sessiongateAddr, appAddr string) (*nginxProcess, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	n := &nginxProcess{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, done: make(chan struct{})}

	// Only the addresses change; the shipped file's header says so, and the
	// counts below make an edit that breaks the substitution fail loudly
	// rather than test something else.
	server := shipped
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:8080;", "server " + sessiongateAddr + ";"},
		{"server 127.0.0.1:3000;", "server " + appAddr + ";"},
		{"listen 80;", "listen " + n.addr + ";"},
	} {
		if c := strings.Count(server, r.old); c != 1 {
			t.Fatalf("%s: %q occurs %d times, want exactly 1 (the test rewrites it)", shippedNginxConf, r.old, c)
		}
		server = strings.Replace(server, r.old, r.new, 1)
	}
	serverConf := filepath.Join(dir, "sessiongate.conf")
	if err := os.WriteFile(serverConf, []byte(server), 0o600); err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	if err := main.Execute(&conf, struct{ Dir, ServerConf string }{dir, serverConf}); err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close() // the child has its own descriptor

	// -p: relative paths resolve in dir; -e: errors before the config's
	// error_log is open go to stderr, not /var/log/nginx.
	n.cmd = exec.Command(bin, "-p", dir+"/", "-c", confPath, "-e", "stderr")
	n.cmd.Stdout = stderr
	n.cmd.Stderr = stderr
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.done)
	}()

	if err := n.waitReady(); err != nil {
		n.stop(t)
		if strings.Contains(n.logs(), "Address already in use") {
			return nil, fmt.Errorf("%w (%s)", errAddrInUse, n.addr)
		}
		return nil, fmt.Errorf("%w\n%s", err, n.logs())
	}
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			t.Logf("nginx logs:\n%s", n.logs())
		}
	})
	return n, nil
}

// waitReady polls until nginx has written its pid file (it does so only
// after binding its listeners, so a port some other process grabbed is not
// mistaken for ours) and accepts a connection. It gives up when nginx exits
// or after nginxStartTimeout.
func (n *nginxProcess) waitReady() error {
	deadline := time.NewTimer(nginxStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	want := strconv.Itoa(n.cmd.Process.Pid)
	for {
		select {
		case <-n.done:
			return fmt.Errorf("nginx exited before accepting connections: %v", n.err)
		case <-deadline.C:
			return fmt.Errorf("nginx did not accept connections on %s within %s", n.addr, nginxStartTimeout)
		case <-tick.C:
		}
		pid, err := os.ReadFile(filepath.Join(n.dir, "nginx.pid"))
		if err != nil || strings.TrimSpace(string(pid)) != want {
			continue
		}
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err != nil {
			continue
		}
		c.Close()
		return nil
	}
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before nginx binds it; startNginx retries then.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// TestNginxForwardAuth puts a real nginx, configured with the shipped
// deploy/nginx/sessiongate.conf, in front of an echo app, with sessiongate's
// forward-auth endpoint deciding every request.
func TestNginxForwardAuth(t *testing.T) {
	t.Parallel()
	bin := nginxBinary(t)

	inst := clerktest.Start(t, clerktest.Options{SigningKey: signingKey(t)})
	gate, err := middleware.New(middleware.Config{Issuer: inst.Issuer(), Keys: jwks.NewMemory(inst.PublicKeys()...)})
	if err != nil {
		t.Fatal(err)
	}

	var hits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(app.Close)
	appURL := mustURL(t, app.URL)

	p, err := proxy.New(proxy.Options{Gate: gate, Routes: []proxy.Route{
		{Path: "/public", Upstream: appURL, Auth: proxy.Public},
		{Path: "/", Upstream: appURL, Auth: proxy.Required},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sg := httptest.NewServer(p)
	t.Cleanup(sg.Close)

	ngx := startNginx(t, bin, sg.Listener.Addr().String(), app.Listener.Addr().String())

	client := &http.Client{
		Transport: &http.Transport{Proxy: nil}, // never an HTTP_PROXY from the environment
		Timeout:   nginxClientTimout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t.Cleanup(client.CloseIdleConnections)

	valid := inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithSession("sess_alice"),
		clerktest.WithOrg(clerktest.Org{ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:docs:read", "org:docs:write"}}),
		clerktest.WithActor(clerktest.Actor{Subject: "user_support"}))
	expired := inst.MustMint(t, clerktest.WithUser("user_alice"), clerktest.WithExpiry(time.Now().Add(-time.Minute)))

	aliceIdentity := map[string]string{
		"X-Sessiongate-User-Id":         "user_alice",
		"X-Sessiongate-Session-Id":      "sess_alice",
		"X-Sessiongate-Org-Id":          "org_1",
		"X-Sessiongate-Org-Slug":        "acme",
		"X-Sessiongate-Org-Role":        "org:admin",
		"X-Sessiongate-Org-Permissions": "org:docs:read,org:docs:write",
		"X-Sessiongate-Actor-Id":        "user_support",
	}

	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	cookie := func(tok string) func(*http.Request) {
		return func(r *http.Request) {
			// __client_uat older than the token's iat: a current cookie.
			uat := time.Now().Add(-time.Hour).Unix()
			r.Header.Set("Cookie", fmt.Sprintf("theme=dark; __session=%s; __client_uat=%d", tok, uat))
		}
	}
	// spoofIdentity sends identity headers a client must never be able to
	// set, in the spellings an app might read as its own.
	spoofIdentity := func(r *http.Request) {
		r.Header["X-Sessiongate-User-Id"] = []string{"user_attacker"}
		r.Header["x-sessiongate-org-role"] = []string{"org:attacker"}
		r.Header["X_Sessiongate_User_Id"] = []string{"user_attacker_underscore"}
		r.Header["x_sessiongate_org_id"] = []string{"org_attacker"}
		r.Header["X-Sessiongate-Session-Id"] = []string{"sess_attacker"}
	}

	cases := []struct {
		name     string
		path     string
		setup    []func(*http.Request)
		status   int
		reason   string            // X-Clerk-Auth-Reason on the response
		identity map[string]string // exact X-Sessiongate-* headers the app must see (on 200)
	}{
		{"valid bearer reaches the app with identity", "/app?x=1", []func(*http.Request){bearer(valid)}, 200, "", aliceIdentity},
		{"valid bearer overrides spoofed identity", "/app", []func(*http.Request){bearer(valid), spoofIdentity}, 200, "", aliceIdentity},
		{"valid __session cookie reaches the app with identity", "/app", []func(*http.Request){cookie(valid), spoofIdentity}, 200, "", aliceIdentity},
		{"missing token is 401", "/app", nil, 401, "session-token-missing", nil},
		{"missing token with spoofed identity is 401", "/app", []func(*http.Request){spoofIdentity}, 401, "session-token-missing", nil},
		{"expired token is 401", "/app", []func(*http.Request){bearer(expired), spoofIdentity}, 401, "token-expired", nil},
		{"expired cookie is 401", "/app", []func(*http.Request){cookie(expired)}, 401, "token-expired", nil},
		{"garbage token is 401", "/app", []func(*http.Request){bearer("garbage")}, 401, "token-invalid", nil},
		{"public route without token, spoofed identity dropped", "/public/page", []func(*http.Request){spoofIdentity}, 200, "", map[string]string{}},
		{"public route with a valid token gets no identity", "/public", []func(*http.Request){bearer(valid), spoofIdentity}, 200, "", map[string]string{}},
		// $request_uri is the raw URI: sessiongate refuses dot segments
		// (400), which nginx turns into a 500. Fail closed, and a public
		// prefix cannot be used to reach a required path.
		{"dot segments through a public prefix fail closed", "/public/../app", []func(*http.Request){spoofIdentity}, 500, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+ngx.addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.setup {
				f(req)
			}
			before := hits.Load()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			reached := hits.Load() - before

			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (reason %q): %s", resp.StatusCode, tc.status, resp.Header.Get("X-Clerk-Auth-Reason"), body.String())
			}
			if got := resp.Header.Get("X-Clerk-Auth-Reason"); got != tc.reason {
				t.Errorf("X-Clerk-Auth-Reason %q, want %q", got, tc.reason)
			}
			if tc.status != 200 {
				if reached != 0 {
					t.Errorf("the app was reached %d time(s) on a %d", reached, resp.StatusCode)
				}
				if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode == 401 && !strings.HasPrefix(got, "Bearer ") {
					t.Errorf("WWW-Authenticate %q, want sessiongate's Bearer challenge", got)
				}
				return
			}
			if reached != 1 {
				t.Fatalf("the app was reached %d time(s), want 1", reached)
			}
			var e echoed
			if err := json.Unmarshal(body.Bytes(), &e); err != nil {
				t.Fatalf("app answer: %v: %s", err, body.String())
			}
			if want := strings.SplitN(tc.path, "?", 2)[0]; e.Path != want {
				t.Errorf("app saw path %q, want %q", e.Path, want)
			}
			// Every header the app got whose name is an X-Sessiongate-
			// header in any spelling, must be exactly the expected identity.
			got := map[string]string{}
			for k, vs := range e.Header {
				n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
				if !strings.HasPrefix(n, "x-sessiongate-") {
					continue
				}
				if len(vs) != 1 {
					t.Errorf("app got %s %d times: %q", k, len(vs), vs)
				}
				got[k] = strings.Join(vs, ",")
			}
			for k, v := range got {
				if strings.Contains(v, "attacker") {
					t.Errorf("spoofed %s: %s reached the app", k, v)
				}
				if want, ok := tc.identity[k]; !ok || want != v {
					t.Errorf("app got %s: %q, want %q (present: %v)", k, v, want, ok)
				}
			}
			for k, v := range tc.identity {
				if _, ok := got[k]; !ok {
					t.Errorf("app did not get %s (want %q)", k, v)
				}
			}
		})
	}
}
