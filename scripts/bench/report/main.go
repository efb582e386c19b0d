// Command report turns the raw results of scripts/bench/run.sh into
// docs/benchmarks-results.md (tables: min, median and max over runs;
// ratios; the targets of issue 7) and two PNG charts: throughput bars and a
// latency CDF of the fixed-rate runs.
//
// It is its own module so that the charting library stays out of the
// server's dependencies.
package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// run is one measurement of one target (one produce, consume or fixed-rate
// run).
type run struct {
	recordsSec float64
	mbSec      float64
	records    int64
	// Latency in ms (produce and fixed rate); nil for consume.
	lat *latency
}

type latency struct {
	p50, p90, p95, p99, p999, max float64
	cdf                           []cdfPoint // percentile, ms
}

type cdfPoint struct{ pct, ms float64 }

// target is every run of one system.
type target struct {
	name, label string
	produce     []run
	consume     []run
	rate        []run
	rateTarget  []float64 // records/s asked for in the fixed-rate runs
	rssKiB      []float64
	startupMs   []float64
	busyPct     []float64 // CPU busy with other work just before each run
	// Per fixed-rate run, the server's own stage latencies (StreamHouse
	// only; see server.go).
	stages []map[string]stageLatency
}

var labels = map[string]string{
	"local": "StreamHouse local+SQLite",
	"s3":    "StreamHouse S3+PostgreSQL",
	"kfake": "kfake (in memory)",
	"nats":  "NATS JetStream (file)",
}

var order = []string{"local", "s3", "kfake", "nats"}

func main() {
	results := flag.String("results", "/tmp/streamhouse-bench/results", "folder of raw results")
	md := flag.String("md", "docs/benchmarks-results.md", "markdown file to write")
	img := flag.String("img", "docs/img", "folder for the PNG charts")
	flag.Parse()
	facts, factKeys, err := readFacts(filepath.Join(*results, "facts.txt"))
	if err != nil {
		log.Fatal(err)
	}
	var targets []*target
	for _, name := range order {
		t, err := load(*results, name)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		if len(t.produce) > 0 {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		log.Fatalf("no results in %s", *results)
	}
	commands, _ := os.ReadFile(filepath.Join(*results, "commands.txt"))
	if err := os.MkdirAll(*img, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := throughputChart(targets, filepath.Join(*img, "bench-throughput.png")); err != nil {
		log.Fatal(err)
	}
	if err := cdfChart(targets, filepath.Join(*img, "bench-latency-cdf.png")); err != nil {
		log.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Dir(*md), *img)
	if err != nil {
		rel = *img
	}
	page := render(targets, facts, factKeys, string(commands), filepath.ToSlash(rel))
	if err := os.WriteFile(*md, []byte(page), 0o644); err != nil {
		log.Fatal(err)
	}
}

func readFacts(path string) (map[string]string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	m := map[string]string{}
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[k] = v
			keys = append(keys, k)
		}
	}
	return m, keys, sc.Err()
}

// load reads every run of one target; a target that was not run has no
// files and comes back empty.
func load(dir, name string) (*target, error) {
	t := &target{name: name, label: labels[name]}
	for i := 1; ; i++ {
		var p, c, r run
		var rateAsked float64
		var err error
		if name == "nats" {
			if _, e := os.Stat(filepath.Join(dir, fmt.Sprintf("nats-produce-%d.csv", i))); e != nil {
				break
			}
			if p, err = natsRun(filepath.Join(dir, fmt.Sprintf("nats-produce-%d.csv", i))); err != nil {
				return nil, err
			}
			if c, err = natsRun(filepath.Join(dir, fmt.Sprintf("nats-consume-%d.csv", i))); err != nil {
				return nil, err
			}
			if r, err = natsRun(filepath.Join(dir, fmt.Sprintf("nats-rate-%d.csv", i))); err != nil {
				return nil, err
			}
			rateAsked = math.Max(1, math.Floor(p.recordsSec/10))
		} else {
			if _, e := os.Stat(filepath.Join(dir, fmt.Sprintf("%s-produce-%d.json", name, i))); e != nil {
				break
			}
			if p, err = perfRun(filepath.Join(dir, fmt.Sprintf("%s-produce-%d.json", name, i))); err != nil {
				return nil, err
			}
			if c, err = perfRun(filepath.Join(dir, fmt.Sprintf("%s-consume-%d.json", name, i))); err != nil {
				return nil, err
			}
			var cfg map[string]any
			if r, cfg, err = perfRunCfg(filepath.Join(dir, fmt.Sprintf("%s-rate-%d.json", name, i))); err != nil {
				return nil, err
			}
			rateAsked, _ = cfg["throughput"].(float64)
		}
		t.produce = append(t.produce, p)
		t.consume = append(t.consume, c)
		t.rate = append(t.rate, r)
		t.rateTarget = append(t.rateTarget, rateAsked)
		if v, ok := readNumber(filepath.Join(dir, fmt.Sprintf("%s-rss-%d.kib", name, i))); ok && v > 0 {
			t.rssKiB = append(t.rssKiB, v)
		}
		if v, ok := readNumber(filepath.Join(dir, fmt.Sprintf("%s-%d.busy", name, i))); ok {
			t.busyPct = append(t.busyPct, v)
		}
		if v, ok := readNumber(filepath.Join(dir, fmt.Sprintf("%s-startup-%d.ns", name, i))); ok {
			t.startupMs = append(t.startupMs, v/1e6)
		}
		st, ok, err := loadStages(dir, name, i)
		if err != nil {
			return nil, err
		}
		if ok {
			t.stages = append(t.stages, st)
		}
	}
	return t, nil
}

func readNumber(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return v, err == nil
}

// perfSummary is the part of streamctl perf's JSON output used here.
type perfSummary struct {
	Records    int64   `json:"records"`
	RecordsSec float64 `json:"records_per_sec"`
	MBSec      float64 `json:"mb_per_sec"`
	Latency    *struct {
		P50  float64 `json:"p50"`
		P95  float64 `json:"p95"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
		CDF  []struct {
			Percentile float64 `json:"percentile"`
			Ms         float64 `json:"ms"`
		} `json:"cdf"`
	} `json:"latency_ms"`
	Config map[string]any `json:"config"`
}

func perfRun(path string) (run, error) {
	r, _, err := perfRunCfg(path)
	return r, err
}

func perfRunCfg(path string) (run, map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return run{}, nil, err
	}
	var s perfSummary
	if err := json.Unmarshal(b, &s); err != nil {
		return run{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	r := run{recordsSec: s.RecordsSec, mbSec: s.MBSec, records: s.Records}
	if l := s.Latency; l != nil {
		r.lat = &latency{p50: l.P50, p95: l.P95, p99: l.P99, p999: l.P999, max: l.Max, p90: math.NaN()}
		for _, c := range l.CDF {
			r.lat.cdf = append(r.lat.cdf, cdfPoint{c.Percentile, c.Ms})
			if c.Percentile == 90 {
				r.lat.p90 = c.Ms
			}
		}
	}
	return r, s.Config, nil
}

// natsRun reads the CSV that nats bench writes: one row per client; this
// script runs one client. Bytes are converted to MB (10^6 bytes).
func natsRun(path string) (run, error) {
	f, err := os.Open(path)
	if err != nil {
		return run{}, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return run{}, fmt.Errorf("%s: no data row", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "#")] = i
	}
	get := func(name string) float64 {
		i, ok := col[name]
		if !ok || i >= len(rows[1]) {
			return math.NaN()
		}
		v, err := strconv.ParseFloat(rows[1][i], 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	r := run{recordsSec: get("MsgsPerSec"), mbSec: get("BytesPerSec") / 1e6}
	if _, ok := col["P99LatencyMicroSecs"]; ok {
		l := &latency{
			p50: get("P50LatencyMicroSecs") / 1000, p90: get("P90LatencyMicroSecs") / 1000,
			p99: get("P99LatencyMicroSecs") / 1000, p999: get("P99.9LatencyMicroSecs") / 1000,
			max: get("MaxLatencyMicroSecs") / 1000, p95: math.NaN(),
		}
		l.cdf = []cdfPoint{{0, get("MinLatencyMicroSecs") / 1000}, {50, l.p50}, {90, l.p90}, {99, l.p99}, {99.9, l.p999}, {100, l.max}}
		r.lat = l
	}
	return r, nil
}

// stats are the minimum, median and maximum of some runs.
type stats struct{ min, med, max float64 }

func summarize(vs []float64) stats {
	var clean []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			clean = append(clean, v)
		}
	}
	if len(clean) == 0 {
		return stats{math.NaN(), math.NaN(), math.NaN()}
	}
	slices.Sort(clean)
	n := len(clean)
	med := clean[n/2]
	if n%2 == 0 {
		med = (clean[n/2-1] + clean[n/2]) / 2
	}
	return stats{clean[0], med, clean[n-1]}
}

func pick(rs []run, f func(run) float64) stats {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	return summarize(vs)
}

func latOf(f func(*latency) float64) func(run) float64 {
	return func(r run) float64 {
		if r.lat == nil {
			return math.NaN()
		}
		return f(r.lat)
	}
}

func recordsSec(r run) float64 { return r.recordsSec }
func mbSec(r run) float64      { return r.mbSec }

// medianRun is the run whose value of f is the median (for the CDF chart).
func medianRun(rs []run, f func(run) float64) run {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		x, y := f(rs[a]), f(rs[b])
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return rs[idx[len(idx)/2]]
}

func (t *target) byName(name string) bool { return t.name == name }

func find(ts []*target, name string) *target {
	i := slices.IndexFunc(ts, func(t *target) bool { return t.byName(name) })
	if i < 0 {
		return nil
	}
	return ts[i]
}
