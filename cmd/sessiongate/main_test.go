package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// binary is the sessiongate binary built once for the tests that run the
// real process (signals, exit codes).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessiongate-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sessiongate")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr reserves a loopback address for the binary, which takes
// addresses, not listeners: the port stays reserved until the test ends, so
// nothing else takes it before the binary binds it (package testport). Until
// then, nothing answers there.
func freeAddr(t *testing.T) string {
	t.Helper()
	return testport.Reserve(t)
}

// command runs the binary with a clean environment plus env.
func command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	return cmd
}

// waitHTTP polls url until it answers want.
func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	testwait.Until(t, 15*time.Second, fmt.Sprintf("%s to answer %d", url, want), func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	})
}

// refused reports whether a connection to addr is refused (or not
// accepted within 200 ms).
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func TestBinarySIGTERMDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprintf(w, "done for %s", r.Header.Get("X-Sessiongate-User-Id"))
	}))
	defer up.Close()
	defer close(release)

	listen, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := command(ctx, []string{
		"SESSIONGATE_ISSUER=" + inst.Issuer(),
		"SESSIONGATE_UPSTREAM=" + up.URL,
		"CLERK_SECRET_KEY=" + inst.SecretKey(),
		"CLERK_API_URL=" + inst.APIURL(),
	}, "serve", "--listen", listen, "--admin-listen", admin)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+listen+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+inst.MustMint(t, clerktest.WithUser("user_drain")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown has begun once new connections are refused.
	testwait.Eventually(t, "the proxy to refuse connections after SIGTERM", func() bool { return refused(listen) })
	release <- struct{}{} // let the in-flight handler finish
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "done for user_drain" {
		t.Fatalf("in-flight request: %+v\n%s", r, stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no orderly stop in the logs:\n%s", stderr.String())
	}
}

func TestBinaryVerify(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := []string{"SESSIONGATE_ISSUER=" + inst.Issuer(), "SESSIONGATE_JWKS_URL=" + inst.FrontendJWKSURL()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name   string
		token  string
		code   int
		stdout string
	}{
		{"valid", inst.MustMint(t, clerktest.WithUser("user_cli")), 0, `"sub": "user_cli"`},
		// Claims print by their JWT names, custom claims included.
		{"custom claims", inst.MustMint(t, clerktest.WithClaim("email", "cli@example.com")), 0, `"email": "cli@example.com"`},
		{"expired", inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Hour))), 1, "token-expired"},
		{"garbage", "x.y.z", 1, "token-invalid"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		cmd := command(ctx, env, "verify", tc.token)
		cmd.Stdout = &out
		if code := exitCode(t, cmd.Run()); code != tc.code || !strings.Contains(out.String(), tc.stdout) {
			t.Errorf("%s: exit %d, stdout %q; want %d and %q", tc.name, code, out.String(), tc.code, tc.stdout)
		}
	}
}

// verify takes the token from stdin with "-", so that it is not in ps or the
// shell's history; the argument form stays.
func TestBinaryVerifyReadsTheTokenFromStdin(t *testing.T) {
	t.Parallel()
	inst := clerktest.Start(t, clerktest.Options{})
	env := []string{"SESSIONGATE_ISSUER=" + inst.Issuer(), "SESSIONGATE_JWKS_URL=" + inst.FrontendJWKSURL()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valid := inst.MustMint(t, clerktest.WithUser("user_stdin"))
	for _, tc := range []struct {
		name   string
		stdin  string
		code   int
		stdout string
	}{
		{"token on stdin", valid, 0, `"sub": "user_stdin"`},
		{"token and a newline on stdin", valid + "\n", 0, `"sub": "user_stdin"`},
		{"expired token on stdin", inst.MustMint(t, clerktest.WithExpiry(time.Now().Add(-time.Hour))), 1, "token-expired"},
		{"empty stdin", "", 2, ""},
		{"oversized stdin", strings.Repeat("a", 70<<10), 2, ""},
	} {
		var out, errb bytes.Buffer
		cmd := command(ctx, env, "verify", "-")
		cmd.Stdin = strings.NewReader(tc.stdin)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if code := exitCode(t, cmd.Run()); code != tc.code || !strings.Contains(out.String(), tc.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d and %q", tc.name, code, out.String(), errb.String(), tc.code, tc.stdout)
		}
	}
}

func TestBinaryConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
clerk:
  issuer: https://clerk.example.com
  secret_key: sk_live_thisIsAVerySecretValue123
routes:
  - path: /healthz
    upstream: http://127.0.0.1:3000
    auth: public
  - path: /
    upstream: http://127.0.0.1:3000
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := command(ctx, nil, "config", "check", good)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("good config: %v\n%s", err, errb.String())
	}
	if strings.Contains(out.String(), "thisIsAVerySecretValue") || !strings.Contains(out.String(), "REDACTED") {
		t.Fatalf("effective config does not redact the secret:\n%s", out.String())
	}
	for _, tc := range []struct{ body, key string }{
		{"clerk: {issuer: https://clerk.example.com}\nroutes: [{path: /, upstream: 'ftp://x'}]\n", "routes[0].upstream"},
		{"clerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\nlisten: nope\n", "listen"},
		{"clerk: {issuer: https://clerk.example.com, clock_skew: 10}\nupstream: http://127.0.0.1:3000\n", "clerk.clock_skew"},
		{"clerk: {issuer: https://clerk.example.com}\nupstream: http://127.0.0.1:3000\nbogus: 1\n", "bogus"},
		{"upstream: http://127.0.0.1:3000\n", "clerk.issuer"},
		{"clerk: {issuer: https://clerk.example.com, jwt_key: notapem}\nupstream: http://127.0.0.1:3000\n", "clerk.jwt_key"},
	} {
		var errb bytes.Buffer
		cmd := command(ctx, nil, "config", "check", write("bad.yaml", tc.body))
		cmd.Stderr = &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(errb.String(), tc.key) {
			t.Errorf("bad config naming %s: err %v, stderr %q", tc.key, err, errb.String())
		}
	}
}

func TestBinaryUsageAndVersion(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := command(ctx, nil, "version").Output(); err != nil || !strings.HasPrefix(string(out), "sessiongate ") {
		t.Fatalf("version: %v %q", err, out)
	}
	for _, args := range [][]string{{"frobnicate"}, {"verify"}, {"serve", "--nope"}, {"config"}} {
		err := command(ctx, nil, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
	// A bad configuration refuses to start (exit 1), naming the key.
	var errb bytes.Buffer
	cmd := command(ctx, []string{"SESSIONGATE_UPSTREAM=http://127.0.0.1:3000"}, "serve")
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "clerk.issuer") {
		t.Fatalf("serve without issuer: %v %q", err, errb.String())
	}
}

// exitCode is the exit status of a command that ran (Run's error).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}
