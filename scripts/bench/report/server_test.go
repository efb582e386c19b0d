package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Two /metrics snapshots around a run: the stages' quantiles come from
// what the run added, not from what came before it.
func TestLoadStages(t *testing.T) {
	dir := t.TempDir()
	snapshot := func(name string, below1ms, below2ms, below4ms int) {
		text := "# TYPE streamhouse_log_upload_duration_seconds histogram\n" +
			"streamhouse_log_upload_duration_seconds_bucket{le=\"0.001\"} " + strconv.Itoa(below1ms) + "\n" +
			"streamhouse_log_upload_duration_seconds_bucket{le=\"0.002\"} " + strconv.Itoa(below2ms) + "\n" +
			"streamhouse_log_upload_duration_seconds_bucket{le=\"0.004\"} " + strconv.Itoa(below4ms) + "\n" +
			"streamhouse_log_upload_duration_seconds_bucket{le=\"+Inf\"} " + strconv.Itoa(below4ms) + "\n" +
			"streamhouse_log_upload_duration_seconds_sum 1\n" +
			"streamhouse_log_upload_duration_seconds_count " + strconv.Itoa(below4ms) + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Before: 1000 fast PUTs. The run adds 100 PUTs, all between 2 and 4 ms.
	snapshot("local-metrics-before-rate-1.txt", 1000, 1000, 1000)
	snapshot("local-metrics-after-rate-1.txt", 1000, 1000, 1100)
	st, ok, err := loadStages(dir, "local", 1)
	if err != nil || !ok {
		t.Fatalf("loadStages: %v, %v", ok, err)
	}
	put := st["put"]
	if math.Abs(put.p50-3) > 1e-9 || math.Abs(put.p99-3.98) > 1e-9 {
		t.Fatalf("put p50 %.3f p99 %.3f ms, want 3 and 3.98", put.p50, put.p99)
	}
	if _, ok := st["commit"]; ok {
		t.Fatal("a stage with no histogram got a value")
	}
	if _, ok, err := loadStages(dir, "kfake", 1); ok || err != nil {
		t.Fatalf("no snapshots: ok %v, err %v", ok, err)
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 2, math.Inf(1)}
	for _, c := range []struct {
		q      float64
		counts []float64
		want   float64
	}{
		{0.5, []float64{10, 10, 0}, 1},
		{0.75, []float64{10, 10, 0}, 1.5},
		{0.99, []float64{0, 0, 5}, 2}, // above the last bound: the bound
		{0.5, []float64{0, 0, 0}, math.NaN()},
	} {
		got := quantile(c.q, bounds, c.counts)
		if !(got == c.want || math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("quantile(%v, %v) = %v, want %v", c.q, c.counts, got, c.want)
		}
	}
}
