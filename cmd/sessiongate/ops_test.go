package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// opsBinary is `sessiongate serve --config FILE` running for one test.
type opsBinary struct {
	inst          *clerktest.Instance
	listen, admin string
	file          string
	cmd           *osProcess
	stderr        *syncBuffer
}

// startServe writes the configuration (listen, admin_listen and the Clerk
// settings, then body) and runs serve with it, and env (NAME=value) added
// to its environment, until the test ends.
func startServe(t *testing.T, body string, env ...string) *opsBinary {
	t.Helper()
	b := &opsBinary{inst: clerktest.Start(t, clerktest.Options{}), listen: freeAddr(t), admin: freeAddr(t),
		stderr: &syncBuffer{}}
	b.file = filepath.Join(t.TempDir(), "sessiongate.yaml")
	b.write(t, body)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := command(ctx, append([]string{
		"SESSIONGATE_ISSUER=" + b.inst.Issuer(),
		"CLERK_SECRET_KEY=" + b.inst.SecretKey(),
		"CLERK_API_URL=" + b.inst.APIURL(),
	}, env...), "serve", "--config", b.file)
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.cmd = &osProcess{p: cmd.Process, exited: exited}
	t.Cleanup(func() {
		defer cancel()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("serve exited with %v after SIGTERM\n%s", err, b.stderr.String())
		}
	})
	b.waitFor(t, "/readyz answers 200", func() bool {
		resp, err := http.Get("http://" + b.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return b
}

// osProcess is the running binary and its exit.
type osProcess struct {
	p      *os.Process
	exited chan error
}

func (b *opsBinary) write(t *testing.T, body string) {
	t.Helper()
	head := fmt.Sprintf("listen: %s\nadmin_listen: %s\n", b.listen, b.admin)
	testcert.WriteFile(t, filepath.Dir(b.file), filepath.Base(b.file), []byte(head+body))
}

func (b *opsBinary) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := b.cmd.p.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for 15 s; the binary must stay up meanwhile.
func (b *opsBinary) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	var exitErr error
	exited := false
	ok := testwait.Poll(15*time.Second, func() bool {
		select {
		case exitErr = <-b.cmd.exited:
			b.cmd.exited <- exitErr
			exited = true
			return true
		default:
		}
		return cond()
	})
	switch {
	case exited:
		t.Fatalf("serve exited (%v) while waiting until %s\n%s", exitErr, what, b.stderr.String())
	case !ok:
		t.Fatalf("timed out waiting until %s\n%s", what, b.stderr.String())
	}
}

func (b *opsBinary) status(t *testing.T, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+b.listen+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (b *opsBinary) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// logLineWith returns the first line of logs that contains s.
func logLineWith(logs, s string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func okUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Sessiongate-User-Id"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestBinarySIGHUPReloadsTheConfig(t *testing.T) {
	t.Parallel()
	up := okUpstream(t)
	routes := func(auth string) string {
		return fmt.Sprintf("upstream: %s\nroutes:\n  - {path: /admin, auth: %s}\n  - {path: /}\n", up, auth)
	}
	b := startServe(t, routes("public"))
	if got := b.status(t, "/admin", ""); got != 200 {
		t.Fatalf("/admin before the reload: %d", got)
	}

	// A valid change applies on SIGHUP.
	b.write(t, routes("required"))
	b.signal(t, syscall.SIGHUP)
	b.waitFor(t, "the new policy applies", func() bool { return b.status(t, "/admin", "") == 401 })
	if got := b.status(t, "/admin", b.inst.MustMint(t, clerktest.WithUser("user_hup"))); got != 200 {
		t.Fatalf("/admin with a token after the reload: %d", got)
	}

	// An invalid file is refused, logged with its key; the running
	// configuration stays.
	b.write(t, routes("nobody"))
	b.signal(t, syscall.SIGHUP)
	b.waitFor(t, "the refusal is logged", func() bool {
		return strings.Contains(b.stderr.String(), `"key":"routes[0].auth"`)
	})
	if !strings.Contains(b.stderr.String(), `\"nobody\" is not one of public, optional, required`) {
		t.Fatalf("the refusal does not say the problem:\n%s", b.stderr.String())
	}
	if got := b.status(t, "/admin", ""); got != 401 {
		t.Fatalf("/admin after a refused reload: %d", got)
	}

	// A change of the listener needs a restart.
	b.write(t, routes("required")+"h2c: true\n")
	b.signal(t, syscall.SIGHUP)
	b.waitFor(t, "the restart-only change is refused", func() bool {
		return strings.Contains(b.stderr.String(), "h2c changed: a restart is needed to apply it")
	})

	for result, want := range map[string]float64{"ok": 1, "invalid": 1, "restart_needed": 1} {
		if got := b.metric(t, `sessiongate_config_reloads_total{result="`+result+`"}`); got != want {
			t.Errorf("reloads %s = %v, want %v", result, got, want)
		}
	}
}

func TestBinaryWatchConfig(t *testing.T) {
	t.Parallel()
	up := okUpstream(t)
	routes := func(auth string) string {
		return fmt.Sprintf("watch_config: true\nupstream: %s\nroutes:\n  - {path: /page, auth: %s}\n  - {path: /}\n", up, auth)
	}
	b := startServe(t, routes("public"))
	if got := b.status(t, "/page", ""); got != 200 {
		t.Fatalf("/page: %d", got)
	}
	b.write(t, routes("required"))
	b.waitFor(t, "the file change applies", func() bool { return b.status(t, "/page", "") == 401 })
	if !strings.Contains(b.stderr.String(), `"trigger":"watch_config"`) {
		t.Fatalf("no reload log line:\n%s", b.stderr.String())
	}
}

func TestBinaryForwardAuthOnly(t *testing.T) {
	t.Parallel()
	b := startServe(t, "routes:\n  - {path: /assets, auth: public}\n  - {path: /}\n")
	decide := func(uri, token string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+b.listen+"/_sessiongate/auth", nil)
		req.Header.Set("X-Forwarded-Uri", uri)
		req.Header.Set("X-Forwarded-Method", "GET")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tok := b.inst.MustMint(t, clerktest.WithUser("user_fwd"))
	if r := decide("/app", tok); r.StatusCode != 200 || r.Header.Get("X-Sessiongate-User-Id") != "user_fwd" {
		t.Fatalf("decision with a token: %d %v", r.StatusCode, r.Header)
	}
	if r := decide("/app", ""); r.StatusCode != 401 {
		t.Fatalf("decision without a token: %d", r.StatusCode)
	}
	if r := decide("/assets/x.css", ""); r.StatusCode != 200 {
		t.Fatalf("decision on the public route: %d", r.StatusCode)
	}
	// An unclean original URI is refused with a reason code.
	if r := decide("/assets/../admin", ""); r.StatusCode != 400 || r.Header.Get("X-Clerk-Auth-Reason") != "path-not-clean" {
		t.Fatalf("decision on an unclean URI: %d, reason %q", r.StatusCode, r.Header.Get("X-Clerk-Auth-Reason"))
	}
	// The access log shows the original path of a decision (never its
	// query, which may hold a token).
	if r := decide("/reports/q3?access_token=do-not-log", ""); r.StatusCode != 401 {
		t.Fatalf("decision on /reports/q3: %d", r.StatusCode)
	}
	b.waitFor(t, "the decision's access-log line", func() bool {
		return strings.Contains(b.stderr.String(), `"original_path":"/reports/q3"`)
	})
	if line := logLineWith(b.stderr.String(), `"original_path":"/reports/q3"`); !strings.Contains(line, `"path":"/_sessiongate/auth"`) ||
		!strings.Contains(line, `"status":401`) || strings.Contains(b.stderr.String(), "do-not-log") {
		t.Fatalf("access-log line of the decision: %s", line)
	}
	resp, err := http.Get("http://" + b.listen + "/app")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "this route has no upstream: it only decides forward-auth requests") {
		t.Fatalf("proxied request: %d %s", resp.StatusCode, body)
	}
}

func TestBinaryServesHTTP2OverTLSAndReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, 10, false)
	cert := testcert.WriteFile(t, dir, "tls.crt", certPEM)
	key := testcert.WriteFile(t, dir, "tls.key", keyPEM)
	b := startServe(t, fmt.Sprintf("upstream: %s\ntls: {cert_file: %s, key_file: %s}\n", okUpstream(t), cert, key))

	var p http.Protocols
	p.SetHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	req, _ := http.NewRequest("GET", "https://localhost:"+portOf(b.listen)+"/", nil)
	req.Header.Set("Authorization", "Bearer "+b.inst.MustMint(t, clerktest.WithUser("user_tls")))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 || string(body) != "hello user_tls" {
		t.Fatalf("got %s %d %q", resp.Proto, resp.StatusCode, body)
	}

	if got := testcert.Serial(t, ca.Pool(), b.listen); got != 10 {
		t.Fatalf("serial %d", got)
	}
	certPEM, keyPEM = ca.Issue(t, 11, false)
	testcert.WriteFile(t, dir, "tls.key", keyPEM)
	testcert.WriteFile(t, dir, "tls.crt", certPEM)
	b.waitFor(t, "the new certificate is presented", func() bool { return testcert.Serial(t, ca.Pool(), b.listen) == 11 })
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestBinaryPassesGRPCThroughOverH2C(t *testing.T) {
	t.Parallel()
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	b := startServe(t, fmt.Sprintf("h2c: true\nroutes:\n  - {path: /, upstream: \"h2c://%s\"}\n", l.Addr()))
	conn, err := grpc.NewClient(b.listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+b.inst.MustMint(t, clerktest.WithUser("user_grpc")))
	if r, err := client.Check(authed, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", r, err)
	}
	stream, err := client.Watch(authed, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v %v", m, err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch update: %v %v", m, err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Check without a token: %v", err)
	}
}

// TestBinaryMetricsTokenOnlyScrapes: serve with admin_token in the file and
// metrics_token from SESSIONGATE_METRICS_TOKEN: the scrape credential opens
// /metrics and cannot revoke; the admin token does both.
func TestBinaryMetricsTokenOnlyScrapes(t *testing.T) {
	t.Parallel()
	const admin, scrape = "adm-binary-0123456789abcdef", "met-binary-0123456789abcdef"
	b := startServe(t, fmt.Sprintf("admin_token: %s\nupstream: %s\n", admin, okUpstream(t)),
		"SESSIONGATE_METRICS_TOKEN="+scrape)
	do := func(method, path, token string) int {
		req, _ := http.NewRequest(method, "http://"+b.admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sid := b.inst.CreateSession("user_scrape")
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", scrape, 200},
		{"GET", "/metrics", admin, 200},
		{"POST", "/sessions/" + sid + "/revoke", scrape, 401},
		{"POST", "/sessions/" + sid + "/revoke", admin, 200},
	} {
		if got := do(tc.method, tc.path, tc.token); got != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
}
