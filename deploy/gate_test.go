package deploy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/redistest"
	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// runningGate is the sessiongate binary (built as the Dockerfile builds it)
// running with every optional feature on, so that every metric it can
// export is registered: remote keys, the Backend API (session checks),
// the browser handshake, Redis, TLS on the proxy listener, claim headers,
// metrics_token.
type runningGate struct {
	inst         *clerktest.Instance
	proxyURL     string // https
	adminURL     string
	adminAddr    string
	client       *http.Client // trusts the proxy's certificate
	metricsToken string
	stderr       *lockedBuffer
}

const (
	gateAdminToken   = "adm-deploy-test-0123456789abcdef"
	gateMetricsToken = "met-deploy-test-0123456789abcdef"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr reserves a loopback address for a child process (sessiongate,
// Prometheus), which takes addresses, not listeners: the port stays
// reserved until the test ends, so nothing else takes it before the child
// binds it (package testport).
func freeAddr(t testing.TB) string {
	t.Helper()
	return testport.Reserve(t)
}

// selfSignedCert writes a server certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool trusting it.
func selfSignedCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testcert.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 2, false)
	return testcert.WriteFile(t, dir, "cert.pem", certPEM), testcert.WriteFile(t, dir, "key.pem", keyPEM), ca.Pool()
}

// startGate runs the binary until the test ends (SIGTERM, bounded wait).
func startGate(t *testing.T) *runningGate {
	t.Helper()
	bin := buildLikeDockerfile(t)
	redis := redistest.Start(t)
	// A production instance (pk_live_, for the handshake), so its secret
	// key is an sk_live_ one: the two must agree.
	inst := clerktest.Start(t, clerktest.Options{SecretKey: "sk_live_" + rand.Text()})
	up := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-Sessiongate-User-Id"))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(upLn) }()
	t.Cleanup(func() { _ = up.Close() })

	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	listen, admin := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`listen: %q
admin_listen: %q
admin_token: %q
metrics_token: %q
upstream: %q
tls:
  cert_file: %q
  key_file: %q
clerk:
  issuer: %q
  publishable_key: %q
  proxy_url: %q
  secret_key: ${TEST_CLERK_SECRET_KEY}
  api_url: %q
revocation:
  store: redis
  redis_url: %q
headers:
  claims:
    X-Note: note
routes:
  - path: /down
    upstream: http://%s
  - path: /cached
    session_check: cached
  - path: /
`, listen, admin, gateAdminToken, gateMetricsToken, "http://"+upLn.Addr().String(), certFile, keyFile,
		inst.Issuer(), inst.PublishableKey(), inst.URL(), inst.APIURL(), redis.URL(), freeAddr(t))
	file := filepath.Join(dir, "sessiongate.yaml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	g := &runningGate{
		inst: inst, proxyURL: "https://" + listen, adminURL: "http://" + admin, adminAddr: admin,
		metricsToken: gateMetricsToken, stderr: &lockedBuffer{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	cmd := exec.Command(bin, "serve", "--config", file)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TEST_CLERK_SECRET_KEY=" + inst.SecretKey()}
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("sessiongate did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("sessiongate's log:\n%s", g.stderr)
		}
	})
	ready := testwait.Poll(30*time.Second, func() bool {
		select {
		case <-exited:
			return true // reported below
		default:
		}
		resp, err := http.Get(g.adminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-exited:
		t.Fatalf("sessiongate exited: %v\n%s", waitErr, g.stderr)
	default:
	}
	if !ready {
		t.Fatalf("sessiongate not ready within 30s\n%s", g.stderr)
	}
	return g
}

// get sends a GET to the proxy with an optional bearer token and returns
// the status.
func (g *runningGate) get(t *testing.T, path, token string) int {
	t.Helper()
	req, err := http.NewRequest("GET", g.proxyURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// driveTraffic makes every kind of outcome the dashboard and the alerts
// watch: allowed requests (a token-cache miss, then hits), rejections, an
// upstream error, Backend API calls (one failing), a claim header dropped.
func (g *runningGate) driveTraffic(t *testing.T) {
	t.Helper()
	tok := g.inst.MustMint(t, clerktest.WithUser("user_deploy"))
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/", tok, 200},
		{"/", tok, 200},
		{"/", "", 401},
		{"/", "not.a.token", 401},
		{"/down", tok, 502},
		{"/cached", tok, 200},
		{"/", g.inst.MustMint(t, clerktest.WithUser("user_note"), clerktest.WithClaim("note", "a\x01b")), 200},
	} {
		if got := g.get(t, tc.path, tc.token); got != tc.want {
			t.Fatalf("GET %s: %d, want %d", tc.path, got, tc.want)
		}
	}
	// The Backend API failing: a lookup for a new session gets a 5xx
	// (counted), and the route fails closed (503 session-status-unavailable).
	g.inst.SetAPIBehavior(clerktest.ServerError)
	defer g.inst.SetAPIBehavior(clerktest.Normal)
	if got := g.get(t, "/cached", g.inst.MustMint(t, clerktest.WithUser("user_outage"))); got != 503 {
		t.Fatalf("GET /cached with the Backend API down: %d, want 503", got)
	}
}

// scrape returns the admin listener's /metrics, fetched with the metrics
// token.
func (g *runningGate) scrape(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest("GET", g.adminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+g.metricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// family is one metric family of a scrape.
type family struct {
	typ    string
	labels map[string]bool // label names seen on its samples, le and quantile excepted
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// parseExposition reads the families of a Prometheus text exposition.
func parseExposition(t *testing.T, text string) map[string]*family {
	t.Helper()
	fams := map[string]*family{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = &family{typ: f[3], labels: map[string]bool{}}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		name := m[1]
		fam := fams[name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if fam == nil && strings.HasSuffix(name, suffix) {
				fam = fams[strings.TrimSuffix(name, suffix)]
			}
		}
		if fam == nil {
			continue
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" && l[1] != "quantile" {
				fam.labels[l[1]] = true
			}
		}
	}
	return fams
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ctxDeadline is a context bounded by d that ends with the test.
func ctxDeadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
