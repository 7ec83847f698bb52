package main

// A tiny W3C WebDriver client for the real-browser test: just what it needs
// of chromedriver (https://www.w3.org/TR/webdriver2/). The browser is
// Debian's chromium, driven headless; nothing is downloaded.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testport"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// webElementKey is the W3C web element identifier.
const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

// browserPaths finds chromium and chromedriver: SESSIONGATE_CHROMIUM and
// SESSIONGATE_CHROMEDRIVER, else Debian's paths, else $PATH.
func browserPaths() (chromium, driver string, err error) {
	find := func(env string, names ...string) string {
		if p := os.Getenv(env); p != "" {
			return p
		}
		for _, n := range names {
			if st, err := os.Stat(n); err == nil && !st.IsDir() {
				return n
			}
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	chromium = find("SESSIONGATE_CHROMIUM", "/usr/bin/chromium", "chromium", "chromium-browser")
	driver = find("SESSIONGATE_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
	switch {
	case chromium == "":
		err = errors.New("chromium not found (apt-get install chromium chromium-driver, or set SESSIONGATE_CHROMIUM)")
	case driver == "":
		err = errors.New("chromedriver not found (apt-get install chromium-driver, or set SESSIONGATE_CHROMEDRIVER)")
	}
	return chromium, driver, err
}

// webDriver is a chromedriver process and one browser session.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:port
	session string
	hc      *http.Client
}

// startBrowser starts chromedriver on a reserved loopback port (package
// testport) and a headless
// chromium session with a throw-away profile. Both end with the test.
func startBrowser(t *testing.T, chromium, driver string) *webDriver {
	t.Helper()
	// The profile directory first: its removal, a cleanup, then runs after
	// the one below that ends the browser, not while chromium still
	// writes to it.
	profile := t.TempDir()
	port := testport.ReservePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, driver, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1", "--log-level=WARNING")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", driver, err)
	}
	wd := &webDriver{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port), hc: &http.Client{Timeout: 60 * time.Second}}
	t.Cleanup(func() {
		if wd.session != "" {
			_ = wd.call("DELETE", "/session/"+wd.session, nil, nil)
		}
		cancel() // kills the chromedriver we started (by its own handle)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", logs.String())
		}
	})
	// chromedriver announces nothing: its /status is polled.
	testwait.Until(t, 20*time.Second, "chromedriver to be ready", func() bool {
		var st struct {
			Ready bool `json:"ready"`
		}
		return wd.call("GET", "/status", nil, &st) == nil && st.Ready
	})
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":      "chrome",
		"pageLoadStrategy": "normal",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{
				"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--user-data-dir=" + profile,
			},
		},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := wd.call("POST", "/session", caps, &sess); err != nil {
		t.Fatalf("new session: %v\n%s", err, logs.String())
	}
	wd.session = sess.SessionID
	return wd
}

// call sends a WebDriver command and decodes its "value" into out.
func (wd *webDriver) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wd.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error, e.Message)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

func (wd *webDriver) must(method, path string, body, out any) {
	wd.t.Helper()
	if err := wd.call(method, "/session/"+wd.session+path, body, out); err != nil {
		wd.t.Fatal(err)
	}
}

// Navigate loads u and waits for the page (redirects included).
func (wd *webDriver) Navigate(u string) {
	wd.t.Helper()
	wd.must("POST", "/url", map[string]string{"url": u}, nil)
}

// URL is the current page's URL.
func (wd *webDriver) URL() string {
	wd.t.Helper()
	var u string
	wd.must("GET", "/url", nil, &u)
	return u
}

// Source is the current page's HTML.
func (wd *webDriver) Source() string {
	wd.t.Helper()
	var s string
	wd.must("GET", "/source", nil, &s)
	return s
}

// Find returns the element matching a CSS selector.
func (wd *webDriver) Find(css string) string {
	wd.t.Helper()
	var el map[string]string
	wd.must("POST", "/element", map[string]string{"using": "css selector", "value": css}, &el)
	return el[webElementKey]
}

// Click clicks an element (a submit button submits its form and the
// command returns once the next page has loaded).
func (wd *webDriver) Click(el string) {
	wd.t.Helper()
	wd.must("POST", "/element/"+el+"/click", map[string]any{}, nil)
}

// wdCookie is a WebDriver cookie.
type wdCookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path"`
	Domain   string `json:"domain"`
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
}

// Cookies are the cookies visible to the current page (HttpOnly ones too).
func (wd *webDriver) Cookies() map[string]wdCookie {
	wd.t.Helper()
	var cs []wdCookie
	wd.must("GET", "/cookie", nil, &cs)
	out := make(map[string]wdCookie, len(cs))
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

// DeleteCookie deletes the current page's cookie name (no error when there
// is none).
func (wd *webDriver) DeleteCookie(name string) {
	wd.t.Helper()
	wd.must("DELETE", "/cookie/"+url.PathEscape(name), nil, nil)
}
