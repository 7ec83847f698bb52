package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/devmode"
)

// `sessiongate dev --instance development`: the fake is a development
// instance with the sk_test_ dev key, which the banner prints (with the
// `dev token` flag it needs), and its tokens pass the gate.
func TestDevDevelopmentInstance(t *testing.T) {
	d := startDevMain(t, devmode.Options{TokenLifetime: time.Hour, Instance: devmode.InstanceDevelopment})
	gate, fake, stdout, stderr := d.gate, d.fake, d.stdout, d.stderr
	if !fake.Development() || !strings.HasPrefix(fake.PublishableKey(), "pk_test_") || fake.SecretKey() != devmode.DevTestSecretKey {
		t.Fatalf("fake: development %v, %s", fake.Development(), fake.PublishableKey())
	}
	for _, want := range []string{"a development instance", devmode.DevTestSecretKey, "--secret-key " + devmode.DevTestSecretKey} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "development instance") {
		t.Errorf("no development-instance warning in the log:\n%s", stderr.String())
	}
	var out, errb bytes.Buffer
	if code := runDevToken([]string{"--clerk", fake.URL(), "--secret-key", devmode.DevTestSecretKey}, &out, &errb); code != 0 {
		t.Fatalf("dev token: exit %d %s", code, errb.String())
	}
	resp, body := send(t, client(nil, false), http.MethodGet, gate+"/x", nil, map[string]string{"Authorization": "Bearer " + strings.TrimSpace(out.String())})
	var echo devmode.DemoResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &echo) != nil || echo.Identity == nil {
		t.Errorf("bearer through the development gate: %d %s", resp.StatusCode, body)
	}
	// A browser navigation without a dev browser goes for one.
	resp, _ = send(t, client(nil, false), http.MethodGet, gate+"/x", nil, map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"})
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("X-Clerk-Auth-Reason") != "dev-browser-missing" {
		t.Errorf("navigation: %d %v", resp.StatusCode, resp.Header)
	}
}
