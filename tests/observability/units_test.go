package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A panel has one unit (fieldConfig.defaults.unit; the docs renderer
// refuses overrides), so every target of a panel must measure the same
// quantity and the unit must fit it: a duration p99 next to a per-second
// rate draws the rate as seconds.

// quantity is what a target expression measures, read from the metric
// names it uses (Prometheus naming: _seconds, _bytes, _total, _ratio).
type quantity string

const (
	duration    quantity = "duration"
	bytesQ      quantity = "bytes"
	bytesPerSec quantity = "bytes per second"
	perSec      quantity = "events per second"
	count       quantity = "count"
	ratio       quantity = "ratio"
)

// unitsFor are the Grafana units that fit each quantity. "rps", "wps" and
// "iops" (reads, writes, I/O operations per second) fit nothing here:
// records per second are "short" with "/ s" in the title.
var unitsFor = map[quantity][]string{
	duration:    {"s", "ms"},
	bytesQ:      {"bytes", "decbytes"},
	bytesPerSec: {"Bps", "binBps", "decBps"},
	perSec:      {"ops", "reqps", "cps", "short"},
	count:       {"short", "none"},
	ratio:       {"percentunit", "short", "none"},
}

var (
	bucketName = regexp.MustCompile(`histogram_quantile\([^,]+,.*?([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\b`)
	rateOf     = regexp.MustCompile(`\b(?:rate|irate|increase|deriv)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	gaugeName  = regexp.MustCompile(`\b(streamhouse_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+|up)\s*(?:\{|\)|$| )`)
)

// quantityOf classifies a target expression, or says why it cannot.
func quantityOf(expr string) (quantity, error) {
	if m := bucketName.FindStringSubmatch(expr); m != nil {
		switch {
		case strings.HasSuffix(m[1], "_seconds"):
			return duration, nil
		case strings.HasSuffix(m[1], "_bytes"):
			return bytesQ, nil
		}
		return count, nil
	}
	if strings.Contains(expr, "time() -") {
		return duration, nil
	}
	if rates := rateOf.FindAllStringSubmatch(expr, -1); rates != nil {
		var qs []quantity
		for _, r := range rates {
			name := r[1]
			switch {
			case strings.HasPrefix(r[0], "deriv("):
				qs = append(qs, perSec) // change of a gauge per second
			case strings.HasSuffix(name, "_total") && strings.Contains(name, "_bytes_"):
				// _bytes_total, _bytes_in_total, _bytes_reclaimed_total
				qs = append(qs, bytesPerSec)
			case strings.HasSuffix(name, "_seconds_total"), strings.HasSuffix(name, "_seconds_sum"):
				// seconds per second: a share of time (a histogram's
				// _sum of seconds is a counter of seconds too)
				qs = append(qs, ratio)
			case strings.HasSuffix(name, "_total"), strings.HasSuffix(name, "_count"):
				qs = append(qs, perSec)
			default:
				return "", fmt.Errorf("rate of %s, which is not a counter (_total, _count)", name)
			}
		}
		for _, q := range qs[1:] {
			if q != qs[0] {
				return "", fmt.Errorf("rates of different quantities %v", qs)
			}
		}
		if len(qs) == 2 && strings.Contains(expr, ") / ") {
			return ratio, nil // one rate over another of the same kind
		}
		if len(qs) != 1 {
			return "", fmt.Errorf("%d rates and no division", len(qs))
		}
		return qs[0], nil
	}
	names := gaugeName.FindAllStringSubmatch(expr, -1)
	if names == nil {
		return "", fmt.Errorf("no metric name found")
	}
	var q quantity
	for _, n := range names {
		var this quantity
		switch name := n[1]; {
		case strings.HasSuffix(name, "_seconds"):
			this = duration
		case strings.HasSuffix(name, "_bytes"):
			this = bytesQ
		case strings.HasSuffix(name, "_ratio"):
			this = ratio
		case strings.HasSuffix(name, "_total"):
			return "", fmt.Errorf("counter %s outside a rate", name)
		default:
			this = count
		}
		if q != "" && q != this {
			return "", fmt.Errorf("gauges of different quantities %s and %s", q, this)
		}
		q = this
	}
	return q, nil
}

func TestQuantityOf(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want quantity
	}{
		{`histogram_quantile(0.99, sum by (le) (rate(streamhouse_wal_fsync_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`, duration},
		{`histogram_quantile(0.5, sum by (le) (rate(streamhouse_log_flush_size_bytes_bucket[1m])))`, bytesQ},
		{`histogram_quantile(0.5, sum by (le) (rate(streamhouse_log_flush_partitions_bucket[1m])))`, count},
		{`sum(rate(streamhouse_wal_fsyncs_total{instance=~"$instance"}[$__rate_interval]))`, perSec},
		{`sum(rate(streamhouse_log_chunk_load_bytes_total[1m]))`, bytesPerSec},
		{`topk(10, sum by (topic) (rate(streamhouse_topic_bytes_in_total[1m])))`, bytesPerSec},
		{`rate(process_cpu_seconds_total{job="streamhouse"}[1m])`, ratio},
		{`sum by (listener) (rate(streamhouse_quota_throttle_time_seconds_sum[1m]))`, ratio},
		{`sum(rate(streamhouse_log_reads_total{source!="object"}[1m])) / sum(rate(streamhouse_log_reads_total[1m]))`, ratio},
		{`sum by (group) (deriv(streamhouse_consumer_group_lag[5m]))`, perSec},
		{`time() - streamhouse_log_compaction_last_success_timestamp_seconds{instance=~"$instance"}`, duration},
		{`max by (instance) (streamhouse_log_key_compaction_max_dirty_ratio{instance=~"$instance"})`, ratio},
		{`max by (instance) (streamhouse_object_store_concurrency_limit{instance=~"$instance"})`, count},
		{`max(streamhouse_cluster_agents_alive)`, count},
		{`count(up{job="streamhouse"} == 1)`, count},
		{`go_gc_duration_seconds{quantile="1"}`, duration},
	} {
		got, err := quantityOf(tc.expr)
		if err != nil || got != tc.want {
			t.Errorf("quantityOf(%s) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`streamhouse_log_flushes_total`, `rate(streamhouse_log_buffer_bytes[1m])`, `sum(rate(a_bytes_total[1m])) + sum(rate(b_total[1m]))`, `vector(1)`} {
		if q, err := quantityOf(bad); err == nil {
			t.Errorf("quantityOf(%s) = %q, want an error", bad, q)
		}
	}
}

// panelUnitProblems lists what is wrong with the units of one dashboard's
// panels: targets of different quantities on one panel, a unit that does
// not fit the quantity, field overrides, a per-second count in "short"
// whose title does not say "/ s".
func panelUnitProblems(data []byte) ([]string, error) {
	type panel struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
			Overrides []json.RawMessage `json:"overrides"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var problems []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if len(p.FieldConfig.Overrides) > 0 {
				problems = append(problems, where+": field overrides (one unit per panel; the docs renderer refuses them)")
			}
			var q quantity
			for _, tg := range p.Targets {
				this, err := quantityOf(tg.Expr)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %s: %v", where, tg.Expr, err))
					continue
				}
				if q != "" && this != q {
					problems = append(problems, fmt.Sprintf("%s: targets of different quantities (%s, %s) on one unit %q", where, q, this, p.FieldConfig.Defaults.Unit))
				}
				if q == "" {
					q = this
				}
			}
			if q == "" {
				continue
			}
			unit := p.FieldConfig.Defaults.Unit
			fits := false
			for _, u := range unitsFor[q] {
				fits = fits || u == unit
			}
			if !fits {
				problems = append(problems, fmt.Sprintf("%s: unit %q does not fit a %s (want one of %v)", where, unit, q, unitsFor[q]))
			}
			if q == perSec && unit == "short" && !strings.Contains(p.Title, "/ s") {
				problems = append(problems, where+`: a count per second in "short" needs "/ s" in the title`)
			}
		}
	}
	walk(d.Panels)
	return problems, nil
}

func TestDashboardPanelUnits(t *testing.T) {
	dashboards, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(dashboards) < 6 {
		t.Fatalf("dashboards: %v, %v", dashboards, err)
	}
	for _, path := range dashboards {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		problems, err := panelUnitProblems(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", filepath.Base(path), p)
		}
	}
}

// The check catches what it is for: a p99 and a rate on one panel, and
// records per second in Grafana's reads per second.
func TestDashboardPanelUnitsCatches(t *testing.T) {
	mixed := `{"panels": [{"id": 1, "type": "timeseries", "title": "WAL fsync p99 and fsyncs / s",
		"fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
		"targets": [{"expr": "histogram_quantile(0.99, sum by (le) (rate(streamhouse_wal_fsync_duration_seconds_bucket[1m])))"},
			{"expr": "sum(rate(streamhouse_wal_fsyncs_total[1m]))"}]},
		{"id": 2, "type": "timeseries", "title": "Records appended / s",
		"fieldConfig": {"defaults": {"unit": "rps"}},
		"targets": [{"expr": "sum(rate(streamhouse_log_append_records_total[1m]))"}]}]}`
	problems, err := panelUnitProblems([]byte(mixed))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 { // mixed quantities, "rps" for records
		t.Errorf("problems = %q, want 2", problems)
	}
}
