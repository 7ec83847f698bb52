package app_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/metrics"
	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/internal/testwait"
)

// metric reads one series from the admin listener's /metrics (0 when
// absent).
func metric(t *testing.T, adminURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func reloads(t *testing.T, g *opsGate, result string) float64 {
	t.Helper()
	return metric(t, g.adminURL, `sessiongate_config_reloads_total{result="`+result+`"}`)
}

// rewrite replaces the gate's configuration file: the Clerk settings and
// then yaml.
func (g *opsGate) rewrite(t *testing.T, yaml string) {
	t.Helper()
	writeFile(t, filepath.Dir(g.file), filepath.Base(g.file), []byte(opsYAML(g.inst)+yaml))
}

func statusOf(t *testing.T, url, token string) int {
	t.Helper()
	resp, _ := getWith(t, url, token)
	return resp.StatusCode
}

func TestReloadSwapsTheConfigUnderLoadWithoutDroppingRequests(t *testing.T) {
	t.Parallel()
	named := func(name string) string {
		return upstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	upA, upB := named("A"), named("B")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "slow")
	})
	conf := func(up string) string {
		return fmt.Sprintf("routes:\n  - {path: /slow, upstream: %s, auth: public}\n  - {path: /, upstream: %s}\n", slow, up)
	}
	g := startOps(t, opsOptions{yaml: conf(upA)})
	tok := g.token(t, "user_load")

	// A request in flight across every reload: it finishes with the
	// configuration it started with.
	slowDone := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + g.addr + "/slow")
		if err != nil {
			slowDone <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slowDone <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	<-entered

	var (
		stop            atomic.Bool
		wg              sync.WaitGroup
		mu              sync.Mutex
		failures        []string
		seenA, seenB, n atomic.Int64
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && !stop.Load(); i++ {
				req, _ := http.NewRequest("GET", "http://"+g.addr+"/api", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				n.Add(1)
				switch {
				case err != nil || resp.StatusCode != 200:
					mu.Lock()
					failures = append(failures, fmt.Sprint(resp.StatusCode, " ", string(b), " ", err))
					mu.Unlock()
				case string(b) == "A":
					seenA.Add(1)
				case string(b) == "B":
					seenB.Add(1)
				}
			}
		}()
	}
	const rounds = 6
	for i := 0; i < rounds; i++ {
		next, seen := upB, &seenB
		if i%2 == 1 {
			next, seen = upA, &seenA
		}
		before := seen.Load()
		g.rewrite(t, conf(next))
		if err := g.app.Reload("test"); err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, "requests reach the new upstream", func() bool { return seen.Load() > before+100 })
	}
	stop.Store(true)
	wg.Wait()
	close(release)
	if got := <-slowDone; got != "200 slow" {
		t.Fatalf("the request in flight across the reloads got %q", got)
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during reloads, first: %s", len(failures), n.Load(), failures[0])
	}
	if got := reloads(t, g, metrics.ReloadOK); got != rounds {
		t.Fatalf("reloads ok = %v, want %d", got, rounds)
	}
	t.Logf("%d requests, %d to A, %d to B, across %d reloads", n.Load(), seenA.Load(), seenB.Load(), rounds)
}

func TestReloadRefusesAnInvalidConfigAndKeepsTheRunningOne(t *testing.T) {
	t.Parallel()
	up := upstream(t, nil)
	g := startOps(t, opsOptions{yaml: fmt.Sprintf("upstream: %s\nroutes:\n  - {path: /open, auth: public}\n  - {path: /}\n", up)})
	tok := g.token(t, "user_keep")
	open := "http://" + g.addr + "/open"
	for _, tc := range []struct {
		name, yaml, key, problem string
	}{
		{"bad enum", "upstream: " + up + "\nroutes:\n  - {path: /open, auth: nobody}\n", "routes[0].auth", `"nobody" is not one of public, optional, required`},
		{"bad upstream", "upstream: " + up + "\nroutes:\n  - {path: /open, auth: public, upstream: ftp://x}\n", "routes[0].upstream", "h2c://"},
		{"unknown key", "upstream: " + up + "\nroutes:\n  - {path: /open, auht: public}\n", "", "routes[0].auht: unknown key"},
		{"not YAML", "routes: [\n", "", "sessiongate.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reloads(t, g, metrics.ReloadInvalid)
			g.rewrite(t, tc.yaml)
			err := g.app.Reload("SIGHUP")
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("Reload: %v, want an error with %q", err, tc.problem)
			}
			if got := reloads(t, g, metrics.ReloadInvalid); got != before+1 {
				t.Fatalf("invalid reloads %v, want %v", got, before+1)
			}
			logs := g.logs.FilterMessage("config reload refused: the running configuration stays").All()
			last := logs[len(logs)-1].ContextMap()
			if last["trigger"] != "SIGHUP" || last["result"] != metrics.ReloadInvalid {
				t.Fatalf("log %v", last)
			}
			if tc.key != "" {
				if last["key"] != tc.key || !strings.Contains(fmt.Sprint(last["problems"]), tc.problem) {
					t.Fatalf("log %v: want key %s and the problem", last, tc.key)
				}
			} else if !strings.Contains(fmt.Sprint(last["error"]), tc.problem) {
				t.Fatalf("log %v: want the problem", last)
			}
			// The running configuration stays.
			if got := statusOf(t, open, ""); got != 200 {
				t.Fatalf("public route after a refused reload: %d", got)
			}
			if got := statusOf(t, "http://"+g.addr+"/x", ""); got != 401 {
				t.Fatalf("required route after a refused reload: %d", got)
			}
			if got := statusOf(t, "http://"+g.addr+"/x", tok); got != 200 {
				t.Fatalf("required route with a token after a refused reload: %d", got)
			}
		})
	}
	if got := metric(t, g.adminURL, "sessiongate_config_last_reload_successful"); got != 0 {
		t.Fatalf("last reload successful = %v after a refusal", got)
	}
	// A valid file again applies at once.
	g.rewrite(t, fmt.Sprintf("upstream: %s\nroutes:\n  - {path: /}\n", up))
	if err := g.app.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if got := statusOf(t, open, ""); got != 401 {
		t.Fatalf("/open after it lost its public route: %d", got)
	}
	if got := metric(t, g.adminURL, "sessiongate_config_last_reload_successful"); got != 1 {
		t.Fatalf("last reload successful = %v", got)
	}
}

func TestReloadRefusesKeysThatNeedARestart(t *testing.T) {
	t.Parallel()
	up := upstream(t, nil)
	base := fmt.Sprintf("upstream: %s\nroutes:\n  - {path: /open, auth: public}\n  - {path: /}\n", up)
	g := startOps(t, opsOptions{yaml: base})
	open := "http://" + g.addr + "/open"
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 1, false)
	cert, key := writeFile(t, dir, "c.pem", certPEM), writeFile(t, dir, "k.pem", keyPEM)
	for _, tc := range []struct {
		name, yaml string
		clerk      string // added under clerk:
		keys       []string
	}{
		{"listen", "listen: 127.0.0.1:8181\n", "", []string{"listen"}},
		{"admin listener", "admin_listen: 127.0.0.1:9191\n", "", []string{"admin_listen"}},
		{"tls", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", cert, key), "", []string{"tls.cert_file", "tls.key_file"}},
		{"h2c", "h2c: true\n", "", []string{"h2c"}},
		{"redis url", "revocation: {redis_url: \"redis://127.0.0.1:1/0\"}\n", "", []string{"revocation.redis_url"}},
		{"redis store", "revocation: {store: redis, redis_url: \"redis://127.0.0.1:1/0\"}\n", "", []string{"revocation.store", "revocation.redis_url"}},
		{"clerk instance", "", "  authorized_parties: [\"https://app.example.com\"]\n", []string{"clerk.authorized_parties"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reloads(t, g, metrics.ReloadRestartNeeded)
			// The routes change too: nothing of a refused file is applied.
			yaml := strings.Replace(opsYAML(g.inst), "clerk:\n", "clerk:\n"+tc.clerk, 1) +
				strings.Replace(base, "auth: public", "auth: required", 1) + tc.yaml
			writeFile(t, filepath.Dir(g.file), filepath.Base(g.file), []byte(yaml))
			err := g.app.Reload("SIGHUP")
			var rn *app.RestartNeededError
			if !errors.As(err, &rn) || !errors.Is(err, app.ErrRestartNeeded) {
				t.Fatalf("Reload: %v, want a RestartNeededError", err)
			}
			if strings.Join(rn.Keys, ",") != strings.Join(tc.keys, ",") || !strings.Contains(err.Error(), "a restart is needed") {
				t.Fatalf("Reload: %v (keys %v), want keys %v and 'a restart is needed'", err, rn.Keys, tc.keys)
			}
			if strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Fatalf("the error shows a value: %v", err)
			}
			if got := reloads(t, g, metrics.ReloadRestartNeeded); got != before+1 {
				t.Fatalf("restart_needed reloads %v, want %v", got, before+1)
			}
			logs := g.logs.FilterMessage("config reload refused: the running configuration stays").All()
			if last := logs[len(logs)-1].ContextMap(); fmt.Sprint(last["keys"]) != fmt.Sprint(tc.keys) {
				t.Fatalf("log %v, want keys %v", last, tc.keys)
			}
			if got := statusOf(t, open, ""); got != 200 {
				t.Fatalf("the refused file's route change was applied: /open %d", got)
			}
		})
	}
}

func TestWatchConfigReloadsWhenTheFileChanges(t *testing.T) {
	t.Parallel()
	up := upstream(t, nil)
	conf := func(auth string) string {
		return fmt.Sprintf("watch_config: true\nupstream: %s\nroutes:\n  - {path: /page, auth: %s}\n  - {path: /}\n", up, auth)
	}
	g := startOps(t, opsOptions{yaml: conf("public"), options: func(o *app.Options) { o.PollInterval = 10 * time.Millisecond }})
	page := "http://" + g.addr + "/page"
	if got := statusOf(t, page, ""); got != 200 {
		t.Fatalf("/page %d", got)
	}
	// The same content written again is not a change.
	g.rewrite(t, conf("public"))
	g.rewrite(t, conf("required"))
	testwait.Eventually(t, "the change applies", func() bool { return statusOf(t, page, "") == 401 })
	if got := reloads(t, g, metrics.ReloadOK); got != 1 {
		t.Fatalf("reloads ok = %v, want 1", got)
	}
	if e := g.logs.FilterMessage("config reloaded: new requests use it").All(); len(e) != 1 || e[0].ContextMap()["trigger"] != "watch_config" {
		t.Fatalf("reload logs %v", e)
	}

	// An invalid file is refused once, not at every poll.
	g.rewrite(t, conf("nobody"))
	testwait.Eventually(t, "the invalid file is refused", func() bool { return reloads(t, g, metrics.ReloadInvalid) == 1 })
	g.rewrite(t, conf("public"))
	testwait.Eventually(t, "the next valid file applies", func() bool { return statusOf(t, page, "") == 200 })
	if got := reloads(t, g, metrics.ReloadInvalid); got != 1 {
		t.Fatalf("invalid reloads = %v: the same invalid file was tried again", got)
	}

	// A file that disappears (a ConfigMap being swapped) is a warning; the
	// configuration stays.
	if err := os.Remove(g.file); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, "the read failure is logged", func() bool {
		return g.logs.FilterMessageSnippet("configuration file cannot be read").Len() == 1
	})
	if got := statusOf(t, page, ""); got != 200 {
		t.Fatalf("/page after the file disappeared: %d", got)
	}
}

func TestReloadWithoutASourceIsRefused(t *testing.T) {
	t.Parallel()
	up := upstream(t, nil)
	g := startOps(t, opsOptions{config: func(c *config.Config, _ *clerktest.Instance) { c.Upstream = up }})
	if err := g.app.Reload("SIGHUP"); err == nil || !strings.Contains(err.Error(), "no configuration source") {
		t.Fatalf("Reload: %v", err)
	}
	if got := reloads(t, g, metrics.ReloadInvalid); got != 1 {
		t.Fatalf("invalid reloads = %v", got)
	}
}
