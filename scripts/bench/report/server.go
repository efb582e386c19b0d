package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Inside the server: StreamHouse's own latency histograms, read from its
// /metrics just before and just after each fixed-rate run, so the client's
// latency can be split into the storage engine's share (durable append:
// waiting for the seal, PUT, commit) and the rest (the Kafka client and
// network), and each stage checked against the targets.

// stageSeries names the histograms of each stage.
var stageSeries = []struct{ stage, family, label, value string }{
	{"append", "streamhouse_log_append_duration_seconds", "ack_mode", "durable"},
	{"put", "streamhouse_log_upload_duration_seconds", "", ""},
	{"commit", "streamhouse_metadata_commit_duration_seconds", "", ""},
}

// stageLatency is one stage's p50 and p99 in ms over one fixed-rate run.
type stageLatency struct{ p50, p99 float64 }

// loadStages reads the two snapshots of run i of target name; ok is false
// when they are missing (kfake, NATS, or an older results folder).
func loadStages(dir, name string, i int) (map[string]stageLatency, bool, error) {
	before, err := readMetrics(filepath.Join(dir, fmt.Sprintf("%s-metrics-before-rate-%d.txt", name, i)))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	after, err := readMetrics(filepath.Join(dir, fmt.Sprintf("%s-metrics-after-rate-%d.txt", name, i)))
	if err != nil {
		return nil, false, err
	}
	out := make(map[string]stageLatency)
	for _, s := range stageSeries {
		b, a := findHistogram(before, s.family, s.label, s.value), findHistogram(after, s.family, s.label, s.value)
		if a == nil {
			continue
		}
		bounds, counts := histogramDelta(b, a)
		out[s.stage] = stageLatency{p50: 1000 * quantile(0.5, bounds, counts), p99: 1000 * quantile(0.99, bounds, counts)}
	}
	return out, true, nil
}

func readMetrics(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mf, nil
}

// findHistogram returns the histogram of family with label=value (any,
// when label is empty), or nil.
func findHistogram(mf map[string]*dto.MetricFamily, family, label, value string) *dto.Histogram {
	fam := mf[family]
	if fam == nil {
		return nil
	}
	for _, m := range fam.GetMetric() {
		if label == "" {
			return m.GetHistogram()
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return m.GetHistogram()
			}
		}
	}
	return nil
}

// histogramDelta returns the buckets' upper bounds and the observations
// that fell in each (not cumulative) between two snapshots.
func histogramDelta(before, after *dto.Histogram) ([]float64, []float64) {
	prevCum := make(map[float64]float64)
	if before != nil {
		for _, b := range before.GetBucket() {
			prevCum[b.GetUpperBound()] = float64(b.GetCumulativeCount())
		}
	}
	var bounds, counts []float64
	last := 0.0
	for _, b := range after.GetBucket() {
		cum := float64(b.GetCumulativeCount()) - prevCum[b.GetUpperBound()]
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, cum-last)
		last = cum
	}
	total := float64(after.GetSampleCount())
	if before != nil {
		total -= float64(before.GetSampleCount())
	}
	bounds = append(bounds, math.Inf(1))
	counts = append(counts, total-last)
	return bounds, counts
}

// quantile interpolates linearly inside the bucket holding quantile q, as
// Prometheus's histogram_quantile does; an observation above the last
// finite bound reports that bound.
func quantile(q float64, bounds, counts []float64) float64 {
	total := 0.0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(counts), func(i int) bool {
		s := 0.0
		for _, c := range counts[:i+1] {
			s += c
		}
		return s >= rank
	})
	if i >= len(bounds) {
		i = len(bounds) - 1
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo = bounds[i-1]
	}
	for _, c := range counts[:i] {
		below += c
	}
	hi := bounds[i]
	if math.IsInf(hi, 1) {
		return lo
	}
	if counts[i] == 0 {
		return hi
	}
	return lo + (hi-lo)*(rank-below)/counts[i]
}
