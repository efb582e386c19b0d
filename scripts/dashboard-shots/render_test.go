package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Values as Grafana's valueFormats print them.
func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		unit string
		v    float64
		want string
	}{
		{"none", 12, "12"},
		{"none", 1.5, "1.50"},
		{"short", 47700, "47.7 K"},
		{"short", 3, "3"},
		{"bytes", 0, "0 B"},
		{"bytes", 50 << 20, "50 MiB"},
		{"bytes", 1536, "1.50 KiB"},
		{"Bps", 102400, "100 KiB/s"},
		{"reqps", 1500, "1.50K req/s"},
		{"rps", 200, "200 rd/s"},
		{"ops", 0.25, "0.250 ops/s"},
		{"s", 0, "0 s"},
		{"s", 0.0042, "4.20 ms"},
		{"s", 0.00042, "420 µs"},
		{"s", 90, "1.50 min"},
		{"percentunit", 0.973, "97.3%"},
	} {
		got, err := format(tc.unit, tc.v, -1)
		if err != nil || got != tc.want {
			t.Errorf("format(%q, %v) = %q, %v; want %q", tc.unit, tc.v, got, err, tc.want)
		}
	}
	if _, err := format("furlongs", 1, -1); err == nil {
		t.Error("an unknown unit formats without error")
	}
}

func TestAxisLabelsDistinct(t *testing.T) {
	got, err := axisLabels("s", []float64{0, 0.0005, 0.001, 0.0015})
	if err != nil {
		t.Fatal(err)
	}
	if want := "0 s|500 µs|1 ms|1.5 ms"; strings.Join(got, "|") != want {
		t.Errorf("axis labels %q, want %q", strings.Join(got, "|"), want)
	}
}

// $__interval and $__rate_interval as Grafana computes them.
func TestIntervals(t *testing.T) {
	from := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		rng      time.Duration
		width    int
		scrape   time.Duration
		iv, rate string
	}{
		{5 * time.Minute, 780, 5 * time.Second, "5s", "20s"},  // range/width below the scrape interval
		{5 * time.Minute, 780, 15 * time.Second, "15s", "1m"}, // the shipped datasource's 15 s
		{6 * time.Hour, 780, 15 * time.Second, "30s", "1m"},   // 27.7 s rounds to 30 s
		{24 * time.Hour, 780, 15 * time.Second, "2m", "2m"},   // 110 s rounds to 2 m; 2m15s shows as 2m
	} {
		iv, rate := intervals(from, from.Add(tc.rng), tc.width, tc.scrape)
		if formatDuration(iv) != tc.iv || formatDuration(rate) != tc.rate {
			t.Errorf("%v over %d px, scrape %v: $__interval %s, $__rate_interval %s; want %s, %s",
				tc.rng, tc.width, tc.scrape, formatDuration(iv), formatDuration(rate), tc.iv, tc.rate)
		}
	}
}

func TestInterpolate(t *testing.T) {
	vars := builtins(map[string]string{"instance": ".*"}, time.Unix(0, 0), time.Unix(300, 0), 5*time.Second, 20*time.Second)
	got, err := interpolate(`rate(x{instance=~"$instance",a="${instance}"}[$__rate_interval]) / $__interval_ms`, vars)
	if err != nil {
		t.Fatal(err)
	}
	if want := `rate(x{instance=~".*",a=".*"}[20s]) / 5000`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := interpolate(`x{job="$job"}`, vars); err == nil {
		t.Error("an unknown variable interpolates without error")
	}
}

func TestLegendName(t *testing.T) {
	l := map[string]string{"group": "billing", "topic": "orders", "partition": "2"}
	if got := legendName("{{group}} {{ topic }}/{{partition}}", "", l); got != "billing orders/2" {
		t.Errorf("legend %q", got)
	}
	if got := legendName("", "up", map[string]string{"__name__": "up", "job": "sh"}); got != `up{job="sh"}` {
		t.Errorf("auto legend %q", got)
	}
	if got := legendName("", "sum(x)", map[string]string{}); got != "sum(x)" {
		t.Errorf("auto legend without labels %q", got)
	}
}

func TestRegexAlternation(t *testing.T) {
	if got := regexAlternation([]string{"127.0.0.1:80", "b"}); got != `(127\.0\.0\.1:80|b)` {
		t.Errorf("got %s", got)
	}
}

func TestYRangeCoversData(t *testing.T) {
	var p panel
	lo, hi, ticks := yRange(p, []series{{values: []float64{3, math.NaN(), 17}}}, 4)
	if lo > 3 || hi < 17 || ticks[0] != lo || ticks[len(ticks)-1] != hi {
		t.Errorf("range %v..%v ticks %v for data 3..17", lo, hi, ticks)
	}
}

// Each panel type shows its value in its unit, and "No data" without one.
func TestDrawPanels(t *testing.T) {
	nan := math.NaN()
	pd := panelData{start: time.Unix(0, 0), stepDur: 5 * time.Second,
		series: []series{{name: "alive", labels: map[string]string{"instance": "a:1"}, values: []float64{1, nan, 3}}}}
	o := renderOpts{from: time.Unix(0, 0), to: time.Unix(10, 0), width: 1600}
	for _, typ := range []string{"timeseries", "stat", "gauge", "table"} {
		var p panel
		p.Type = typ
		p.FieldConfig.Defaults.Unit = "bytes"
		var out string
		var err error
		switch typ {
		case "timeseries":
			out, err = drawTimeseries(p, pd, o, 780, 260)
		case "stat":
			out, err = drawStat(p, pd, 380, 110)
		case "gauge":
			out, err = drawGauge(p, pd, 380, 200)
		case "table":
			out, err = drawTable(p, pd, 780, 260)
		}
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		want := "3 B" // the last value (stat, gauge, table) or an axis tick
		if typ == "timeseries" {
			want = "alive"
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: no %q in %s", typ, want, out)
		}
		if typ == "table" && !strings.Contains(out, "a:1") {
			t.Errorf("table: no label column value in %s", out)
		}
		empty := panelData{series: []series{{values: []float64{nan}}}}
		switch typ {
		case "timeseries":
			out, err = drawTimeseries(p, empty, o, 780, 260)
		case "stat":
			out, err = drawStat(p, empty, 380, 110)
		case "gauge":
			out, err = drawGauge(p, empty, 380, 200)
		case "table":
			out, err = drawTable(p, empty, 780, 260)
		}
		if err != nil || !strings.Contains(out, "No data") {
			t.Errorf("%s without values: %v, %s", typ, err, out)
		}
	}
}

// A steady rate with float noise (0.2 and 0.19999999999999998) is flat,
// not a range too fine to step through.
func TestYRangeFloatNoise(t *testing.T) {
	var p panel
	_, _, ticks := yRange(p, []series{{values: []float64{0.2, 0.19999999999999998}}}, 4)
	if len(ticks) < 2 || len(ticks) > 20 {
		t.Errorf("%d ticks for a flat series: %v", len(ticks), ticks)
	}
}

// An uptime axis ticks at whole minutes, not at 50 s steps shown as
// 1.666667 min.
func TestYRangeDurations(t *testing.T) {
	var p panel
	p.FieldConfig.Defaults.Unit = "s"
	_, _, ticks := yRange(p, []series{{values: []float64{10, 170}}}, 3)
	labels, err := axisLabels("s", ticks)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(labels, "|"); got != "0 s|1 min|2 min|3 min" {
		t.Errorf("labels %s", got)
	}
}
