// Package observability tests deploy/prometheus and deploy/grafana against
// a real server and a real Prometheus: the configuration and rules pass
// promtool, Prometheus scrapes the real binary under a workload touching
// every subsystem, every dashboard panel's expression returns data, every
// alert rule evaluates without error and names only exported metrics,
// /metrics passes `promtool check metrics`, and the series count does not
// grow with keys or (with METRICS_TOPIC_LABELS=false) with topics. Without
// a server, units_test.go checks that every panel's targets measure one
// quantity in a unit that fits it.
package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// pendingMetrics are metric names alerts.yml may use although the test's
// server (without TLS) does not export them, each with the reason.
var pendingMetrics = map[string]string{
	"streamhouse_tls_certificate_expiry_seconds": "exported by the TLS listeners (internal/tlsconf) only when TLS is on; a branch of its own until merged",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// tool finds a Prometheus program installed by scripts/install-test-tools.sh.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed: scripts/install-test-tools.sh installs Debian's prometheus package (scripts/test.sh runs it)", name)
	}
	return path
}

func run(t *testing.T, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPrometheusDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	promtool, prom := tool(t, "promtool"), tool(t, "prometheus")
	promDir := filepath.Join(root, "deploy", "prometheus")

	// The shipped configuration and rules are valid, and the shipped
	// configuration scrapes streamhouse:8080/metrics with alerts.yml.
	run(t, nil, promtool, "check", "config", filepath.Join(promDir, "prometheus.yml"))
	run(t, nil, promtool, "check", "rules", filepath.Join(promDir, "alerts.yml"))
	shipped, err := os.ReadFile(filepath.Join(promDir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- streamhouse:8080", "metrics_path: /metrics", "- alerts.yml"} {
		if !strings.Contains(string(shipped), want) {
			t.Errorf("deploy/prometheus/prometheus.yml lacks %q", want)
		}
	}

	dir := t.TempDir()
	srv := e2e.Start(t, dir, append(e2e.S3Postgres.Env(t, dir),
		"GC_INTERVAL_SECS=1", "COMPACTION_INTERVAL_SECS=1", "WAL_ENABLED=true", "WAL_DIR="+filepath.Join(dir, "wal")))
	defer srv.Stop(syscall.SIGTERM)

	// Prometheus scrapes the server every second with the shipped rules.
	promData := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(promDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(promData, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(srv.URL, "http://")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: streamhouse
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(promData, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	api := startPrometheus(t, prom, cfgPath, filepath.Join(promData, "tsdb"))
	waitFor(t, 60*time.Second, "Prometheus scrapes the server", func() (bool, string) {
		res, err := api.query(`up{job="streamhouse"} == 1`)
		return err == nil && len(res) == 1, fmt.Sprint(res, err)
	})

	workload(t, srv, "", 200)
	// The short-retention topic's records age out, and a GC pass drops them.
	waitFor(t, 60*time.Second, "retention removes the short topic's records", func() (bool, string) {
		var parts []struct {
			Low  int64 `json:"low_watermark"`
			High int64 `json:"high_watermark"`
		}
		if code := srv.Call(http.MethodGet, "/api/v1/topics/short/partitions", nil, &parts); code != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		for _, p := range parts {
			if p.Low > 0 {
				return true, ""
			}
		}
		return false, fmt.Sprint(parts)
	})

	// Every panel of every dashboard returns data.
	dashboards, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(dashboards) < 6 {
		t.Fatalf("dashboards: %v, %v", dashboards, err)
	}
	var panels []panelExpr
	for _, path := range dashboards {
		for _, pe := range panelExprs(t, path) {
			pe.title = fmt.Sprintf("%s: %q", filepath.Base(path), pe.title)
			panels = append(panels, pe)
			q := grafanaVars(pe.expr)
			if ok, last := poll(45*time.Second, func() (bool, string) {
				res, err := api.query(q)
				return err == nil && len(res) > 0, fmt.Sprint(res, err)
			}); !ok {
				t.Errorf("%s: %s returns no data (last: %s)", pe.title, q, last)
			}
		}
	}
	// And names only metrics the server exports (read now that the
	// panels have data: the cluster series refresh every 10 s).
	exported := exportedNames(t, srv.URL)
	for _, pe := range panels {
		checkNames(t, pe.title, pe.expr, exported, nil)
	}

	// Every alert rule is loaded, evaluates without error, is a valid
	// query and uses only exported metrics.
	var groups struct {
		Groups []struct {
			Rules []struct {
				Name           string    `json:"name"`
				Query          string    `json:"query"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
				Type           string    `json:"type"`
			} `json:"rules"`
		} `json:"groups"`
	}
	evaluated := time.Now()
	waitFor(t, 30*time.Second, "every rule evaluated since the workload", func() (bool, string) {
		if err := api.get("/api/v1/rules", nil, &groups); err != nil {
			return false, err.Error()
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.LastEvaluation.Before(evaluated) {
					return false, r.Name + " not evaluated yet"
				}
			}
		}
		return true, ""
	})
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
			}
			if _, err := api.query(r.Query); err != nil {
				t.Errorf("rule %s: %v", r.Name, err)
			}
			checkNames(t, "alert "+r.Name, r.Query, exported, pendingMetrics)
		}
	}
	if alerts < 15 {
		t.Errorf("%d alert rules loaded, want every rule of alerts.yml (at least 15)", alerts)
	}
	// Nothing is wrong with this healthy server, so no alert fires
	var firing struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := api.get("/api/v1/alerts", nil, &firing); err != nil {
		t.Fatal(err)
	}
	// (Pending ones are not counted: a rule with a `for` may hold a
	// moment's condition, such as a compacted partition's dirty ratio
	// right after a burst; no rule may fire.)
	for _, a := range firing.Alerts {
		if a.State == "firing" {
			t.Errorf("alert %s fires on a healthy server: %v", a.Labels["alertname"], a.Labels)
		}
	}

	// promtool's lint of the exposition.
	run(t, strings.NewReader(scrape(t, srv.URL)), promtool, "check", "metrics")
}

// exportedNames are the sample names on the server's /metrics.
func exportedNames(t *testing.T, base string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range strings.Split(scrape(t, base), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricName matches the metric names PromQL expressions of this
// repository use: StreamHouse's own, the Go and process collectors', up.
var metricName = regexp.MustCompile(`\b(streamhouse_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)

// checkNames fails for each metric name in expr that exported lacks
// (pending names allowed).
func checkNames(t *testing.T, what, expr string, exported map[string]bool, pending map[string]string) {
	t.Helper()
	found := metricName.FindAllString(expr, -1)
	if len(found) == 0 {
		t.Errorf("%s: no metric name in %s", what, expr)
	}
	for _, n := range found {
		if n == "up" || exported[n] {
			continue
		}
		if _, ok := pending[n]; ok {
			continue
		}
		t.Errorf("%s: %s is not exported by the server", what, n)
	}
}

type panelExpr struct{ title, expr string }

// panelExprs returns every target expression of a dashboard, rows' nested
// panels included; a panel without one is an error.
func panelExprs(t *testing.T, path string) []panelExpr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string  `json:"type"`
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		UID    string  `json:"uid"`
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", path)
	}
	var out []panelExpr
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("%s: panel %q has an empty query", path, p.Title)
				}
				out = append(out, panelExpr{p.Title, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars replaces the Grafana variables the dashboards use by what
// Grafana would send for "all agents" and a short range.
func grafanaVars(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__interval", "5s", `"$instance"`, `".*"`).Replace(expr)
}

// promAPI is Prometheus' HTTP API.
type promAPI struct{ base string }

func (a promAPI) get(path string, q url.Values, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := a.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query runs an instant query and returns its vector's samples.
func (a promAPI) query(q string) ([]json.RawMessage, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType == "scalar" {
		return []json.RawMessage{data.Result}, nil
	}
	var res []json.RawMessage
	if err := json.Unmarshal(data.Result, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// startPrometheus runs prometheus on a free loopback port until the test
// ends.
func startPrometheus(t *testing.T, bin, cfg, tsdb string) promAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+tsdb,
		"--web.listen-address="+addr, "--log.level=warn")
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	api := promAPI{base: "http://" + addr}
	waitFor(t, 30*time.Second, "Prometheus ready", func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(api.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return api
}

// waitFor polls cond every 250 ms until it holds, failing the test with
// cond's last word after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if ok, last := poll(timeout, cond); !ok {
		t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	}
}

// poll is waitFor's loop: whether cond held within timeout, and its last
// word.
func poll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok || time.Now().After(deadline) {
			return ok, last
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// seriesByName parses a /metrics page into its series, by metric family.
func seriesByName(t *testing.T, page string) map[string][]map[string]string {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]string{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[name] = append(out[name], labels)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return slices.Clip(ks)
}
