package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// TestBinarySIGTERMUnderLoad: the real binary serving 50 concurrent,
// slow-ish authenticated requests receives SIGTERM. Expected (docs/deployment.md,
// shutdown): it stops accepting at once (new connections are refused, not
// left hanging), every request already accepted completes with its full
// 200 answer, and the process exits 0 within the drain bound
// (server.shutdown_timeout).
func TestBinarySIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		concurrent = 50
		work       = 1500 * time.Millisecond // each request's time in the upstream
		drain      = 10 * time.Second        // server.shutdown_timeout
	)
	inst := clerktest.Start(t, clerktest.Options{})
	var entered atomic.Int64
	allIn := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) == concurrent {
			close(allIn)
		}
		time.Sleep(work) // the upstream's work, which the drain must wait for
		fmt.Fprintf(w, "done for %s", r.Header.Get("X-Sessiongate-User-Id"))
	}))
	defer up.Close()

	listen, admin := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfgFile := dir + "/sessiongate.yaml"
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("server:\n  shutdown_timeout: %s\n", drain)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "--config", cfgFile, "--listen", listen, "--admin-listen", admin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(),
		"SESSIONGATE_ISSUER=" + inst.Issuer(),
		"SESSIONGATE_UPSTREAM=" + up.URL,
		"CLERK_SECRET_KEY=" + inst.SecretKey(),
		"CLERK_API_URL=" + inst.APIURL(),
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	tok := inst.MustMint(t, clerktest.WithUser("user_load"), clerktest.WithLifetime(5*time.Minute))
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: concurrent, MaxIdleConnsPerHost: concurrent}, Timeout: 60 * time.Second}
	type result struct {
		status int
		body   string
		err    error
	}
	results := make([]result, concurrent)
	var wg sync.WaitGroup
	for i := 0; i < concurrent; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+listen+fmt.Sprintf("/work/%d", i), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				results[i] = result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results[i] = result{status: resp.StatusCode, body: string(b), err: err}
		}(i)
	}
	// SIGTERM once every request is inside the upstream.
	select {
	case <-allIn:
	case <-time.After(testwait.Generous):
		t.Fatalf("only %d of %d requests reached the upstream", entered.Load(), concurrent)
	}
	sigterm := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused promptly, not accepted and left waiting.
	// The bound is generous: it tells "refused" from "accepted and left
	// waiting until the drain ends" (10 s).
	testwait.Until(t, 5*time.Second, "the proxy to refuse connections after SIGTERM", func() bool { return refused(listen) })
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.status != 200 || r.body != "done for user_load" {
			t.Errorf("request %d: %d %q %v", i, r.status, r.body, r.err)
		}
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(drain + 5*time.Second):
		t.Fatalf("still running %s after SIGTERM\n%s", drain+5*time.Second, stderr.String())
	}
	if took := time.Since(sigterm); took > work+drain {
		t.Errorf("shutdown took %s, more than the in-flight work plus the drain bound", took)
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no orderly stop in the logs:\n%s", stderr.String())
	}
}
