package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// tool returns the path of a Prometheus tool (Debian's package
// "prometheus" ships both), skipping the test without it, failing it in CI
// (.ci/run installs it).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs Debian's prometheus package)", name)
		}
		t.Skipf("%s is not installed (apt-get install prometheus)", name)
	}
	return p
}

// TestAlertRulesPromtool: the rules are valid (`promtool check rules`) and
// each alert fires on a series that crosses its threshold, and only then
// (`promtool test rules` with alerts_test.yaml).
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a unit test.
	tests, err := os.ReadFile("prometheus/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range alertRules(t) {
		if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
			t.Errorf("alert %s has no test in prometheus/alerts_test.yaml", r.Alert)
		}
	}
}

type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no rules in prometheus/alerts.yaml")
	}
	return out
}

// alertSignal splits an alert expression `signal <cmp> number` at its last
// top-level comparison and returns the signal: the part that must return
// data for the alert to be able to fire.
func alertSignal(expr string) (string, error) {
	expr = strings.TrimSpace(expr)
	depth, quote := 0, byte(0)
	cut := -1
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case depth == 0 && (c == '>' || c == '<' || ((c == '=' || c == '!') && i+1 < len(expr) && expr[i+1] == '=')):
			cut = i
		}
	}
	if cut < 0 {
		return "", fmt.Errorf("no top-level comparison in %q: write alerts as `signal <comparison> threshold`", expr)
	}
	rest := strings.TrimLeft(expr[cut:], "<>=! ")
	if !regexp.MustCompile(`^-?[0-9.]+(e[0-9]+)?$`).MatchString(strings.TrimSpace(rest)) {
		return "", fmt.Errorf("%q: the threshold %q is not a number", expr, rest)
	}
	return strings.TrimSpace(expr[:cut]), nil
}

func TestAlertSignal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`max by (instance) (x) > 1800`:                               `max by (instance) (x)`,
		"sum(rate(a{s=~\"5..\"}[5m]))\n / sum(rate(a[5m]))\n > 0.05": "sum(rate(a{s=~\"5..\"}[5m]))\n / sum(rate(a[5m]))",
		`min(x > 0) - time() < 1209600`:                              `min(x > 0) - time()`,
		`x == 0`:                                                     `x`,
	} {
		if got, err := alertSignal(in); err != nil || got != want {
			t.Errorf("alertSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := alertSignal(`absent(x)`); err == nil {
		t.Error("an expression without a threshold was accepted")
	}
}

// grafanaDashboard is the part of the dashboard JSON the tests read.
type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			AllValue string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile("grafana/sessiongate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/sessiongate.json: %v", err)
	}
	return d
}

// dashboardQueries are the dashboard's expressions with Grafana's
// variables replaced as Grafana would for "All" over a 1m rate interval.
func dashboardQueries(t *testing.T, d grafanaDashboard) map[string]string {
	t.Helper()
	allValue := ".+"
	for _, v := range d.Templating.List {
		if v.Name == "job" && v.AllValue != "" {
			allValue = v.AllValue
		}
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "5m", "$job", allValue).Replace(tg.Expr)
			if strings.Contains(q, "$") {
				t.Errorf("panel %q: a variable the test does not know in %q", p.Title, tg.Expr)
			}
			out[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = q
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(sessiongate_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)

// TestGrafanaDashboardShape checks what Grafana needs to import the
// dashboard and what operators need from it, without a Prometheus: a data
// source variable used by every panel, unique ids, panels inside the
// 24-column grid, an expression on every panel, every metric documented,
// and a panel for each subject.
func TestGrafanaDashboardShape(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || (v.Name == "datasource" && v.Type == "datasource")
	}
	if !hasDS {
		t.Error("no datasource template variable: the dashboard would be tied to one data source")
	}
	docs := readMetricsDoc(t)
	ids := map[int]bool{}
	var all strings.Builder
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			all.WriteString(tg.Expr + "\n")
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if _, ok := docCovers(docs, name); !ok {
					t.Errorf("panel %q uses %s, which docs/metrics.md does not list", p.Title, m)
				}
			}
		}
	}
	for _, subject := range []string{
		"sessiongate_requests_total", "reason", "sessiongate_request_duration_seconds_bucket",
		"sessiongate_token_cache_hits_total", "sessiongate_jwks_key_age_seconds",
		"sessiongate_backend_api_requests_total", "sessiongate_upstream_errors_total",
		"sessiongate_connections_open", "sessiongate_requests_in_flight",
	} {
		if !strings.Contains(all.String(), subject) {
			t.Errorf("no panel uses %s", subject)
		}
	}
	for _, r := range alertRules(t) {
		for _, m := range metricName.FindAllString(r.Expr, -1) {
			if _, ok := docCovers(docs, m); !ok {
				t.Errorf("alert %s uses %s, which docs/metrics.md does not list", r.Alert, m)
			}
		}
	}
}

// TestDashboardAndAlertsQueryRealData runs Debian's Prometheus against a
// running sessiongate (scraped with its metrics_token, the alert rules
// loaded), drives traffic through the gate, and requires every dashboard
// expression and the signal of every alert to return data, and every rule
// to evaluate without error.
func TestDashboardAndAlertsQueryRealData(t *testing.T) {
	t.Parallel()
	promBin := tool(t, "prometheus")
	g := startGate(t)
	g.driveTraffic(t)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "metrics-token")
	if err := os.WriteFile(tokenFile, []byte(g.metricsToken), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: sessiongate
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization:
      credentials_file: %q
    static_configs:
      - targets: [%q]
`, rules, tokenFile, g.adminAddr)
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	var promLog lockedBuffer
	cmd := exec.Command(promBin,
		"--config.file="+confFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	api := "http://" + promAddr
	ctx := ctxDeadline(t, 3*time.Minute)
	poll := func(what string, check func() (bool, string)) {
		t.Helper()
		last := ""
		for {
			ok, why := check()
			if ok {
				return
			}
			last = why
			select {
			case <-exited:
				t.Fatalf("prometheus exited while waiting for %s", what)
			case <-ctx.Done():
				t.Fatalf("%s: not within the deadline (%s)", what, last)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	poll("prometheus ready", func() (bool, string) {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	poll("sessiongate scraped with the metrics token", func() (bool, string) {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(api+"/api/v1/targets", &targets); err != nil {
			return false, err.Error()
		}
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Health == "up" {
				return true, ""
			}
			return false, tg.Health + " " + tg.LastError
		}
		return false, "no target"
	})
	// More traffic once scraping runs, so that rates see a change.
	g.driveTraffic(t)

	queries := dashboardQueries(t, readDashboard(t))
	for _, r := range alertRules(t) {
		sig, err := alertSignal(r.Expr)
		if err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
			continue
		}
		queries["alert "+r.Alert] = sig
	}
	for name, q := range queries {
		poll(name+" returns data", func() (bool, string) {
			var res struct {
				Status string `json:"status"`
				Error  string `json:"error"`
				Data   struct {
					ResultType string          `json:"resultType"`
					Result     json.RawMessage `json:"result"`
				} `json:"data"`
			}
			if err := getJSON(api+"/api/v1/query?query="+url.QueryEscape(q), &res); err != nil {
				return false, err.Error()
			}
			if res.Status != "success" {
				t.Fatalf("%s: Prometheus refused %q: %s", name, q, res.Error)
			}
			if res.Data.ResultType == "scalar" {
				return true, ""
			}
			var items []json.RawMessage
			_ = json.Unmarshal(res.Data.Result, &items)
			return len(items) > 0, fmt.Sprintf("%q returned no series", q)
		})
	}
	poll("every rule evaluated without error", func() (bool, string) {
		var res struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := getJSON(api+"/api/v1/rules", &res); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, gr := range res.Data.Groups {
			for _, r := range gr.Rules {
				n++
				switch r.Health {
				case "ok":
				case "err":
					t.Fatalf("rule %s fails to evaluate: %s", r.Name, r.LastError)
				default:
					return false, "rule " + r.Name + " not evaluated yet"
				}
			}
		}
		return n == len(alertRules(t)), fmt.Sprintf("%d rules loaded", n)
	})
}

func getJSON(u string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
