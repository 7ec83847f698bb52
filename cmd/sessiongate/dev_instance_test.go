package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
)

// `sessiongate dev --instance development`: the fake is a development
// instance with the sk_test_ dev key, which the banner prints (with the
// `dev token` flag it needs), and its tokens pass the gate.
func TestDevDevelopmentInstance(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	ready := make(chan string, 1)
	fakeCh := make(chan *clerktest.Instance, 1)
	done := make(chan error, 1)
	go func() {
		done <- devMain(ctx, devOptions{
			Listen: "127.0.0.1:0", ClerkListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
			TokenLifetime: time.Hour, Instance: instanceDevelopment,
			ready:  func(o string) { ready <- o },
			onFake: func(f *clerktest.Instance) { fakeCh <- f },
		}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("devMain: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("devMain did not stop within 15s")
		}
	})
	var gate string
	select {
	case gate = <-ready:
	case err := <-done:
		t.Fatalf("devMain returned early: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("devMain not ready within 30s\n%s", stderr.String())
	}
	fake := <-fakeCh
	if !fake.Development() || !strings.HasPrefix(fake.PublishableKey(), "pk_test_") || fake.SecretKey() != DevTestSecretKey {
		t.Fatalf("fake: development %v, %s", fake.Development(), fake.PublishableKey())
	}
	for _, want := range []string{"a development instance", DevTestSecretKey, "--secret-key " + DevTestSecretKey} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "development instance") {
		t.Errorf("no development-instance warning in the log:\n%s", stderr.String())
	}
	var out, errb bytes.Buffer
	if code := runDevToken([]string{"--clerk", fake.URL(), "--secret-key", DevTestSecretKey}, &out, &errb); code != 0 {
		t.Fatalf("dev token: exit %d %s", code, errb.String())
	}
	resp, body := send(t, client(nil, false), http.MethodGet, gate+"/x", nil, map[string]string{"Authorization": "Bearer " + strings.TrimSpace(out.String())})
	var echo demoResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &echo) != nil || echo.Identity == nil {
		t.Errorf("bearer through the development gate: %d %s", resp.StatusCode, body)
	}
	// A browser navigation without a dev browser goes for one.
	resp, _ = send(t, client(nil, false), http.MethodGet, gate+"/x", nil, map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"})
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("X-Clerk-Auth-Reason") != "dev-browser-missing" {
		t.Errorf("navigation: %d %v", resp.StatusCode, resp.Header)
	}
}
