package rest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	h := histogram{bounds: []float64{1, 2, 4, inf}, counts: []float64{10, 20, 40, 40}}
	tail := histogram{bounds: []float64{1, 2, 4, inf}, counts: []float64{10, 10, 10, 20}}
	for _, tc := range []struct {
		name string
		h    histogram
		q    float64
		want float64
	}{
		{"first bucket from 0", h, 0.25, 1},
		{"inside the first bucket", h, 0.1, 0.4},
		{"second bucket", h, 0.5, 2},
		{"interpolated in the third", h, 0.75, 3},
		{"top", h, 1, 4},
		{"in +Inf: the highest finite bound", tail, 0.99, 4},
		{"below +Inf", tail, 0.5, 1},
	} {
		if got := tc.h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: quantile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
	for _, empty := range []histogram{{}, {bounds: []float64{1, inf}, counts: []float64{0, 0}}} {
		if got := empty.quantile(0.5); !math.IsNaN(got) {
			t.Errorf("quantile of %v = %v, want NaN", empty, got)
		}
	}
	// The observations between two readings.
	later := histogram{bounds: h.bounds, counts: []float64{10, 30, 60, 61}}
	d := later.minus(h)
	if want := []float64{0, 10, 20, 21}; !equalFloats(d.counts, want) {
		t.Fatalf("minus = %v, want %v", d.counts, want)
	}
	if got := d.quantile(0.5); math.Abs(got-(2+2*0.5/10)) > 1e-9 {
		t.Fatalf("quantile of the difference = %v", got)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSamplerMergesAckModes reads a histogram with two label sets and
// counters from a registry.
func TestSamplerMergesAckModes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: seriesProduceLatency, Buckets: []float64{0.001, 0.01, 0.1}}, []string{"ack_mode"})
	in := prometheus.NewCounter(prometheus.CounterOpts{Name: seriesAppendRecords})
	reg.MustRegister(lat, in)
	now := time.Unix(0, 0)
	s := NewSampler(SamplerConfig{Gatherer: reg, Interval: time.Second, Window: 5 * time.Second, Now: func() time.Time { return now }})
	if _, ok := s.rates(); ok {
		t.Fatal("rates before any sample")
	}
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		lat.WithLabelValues("durable").Observe(0.05) // (0.01, 0.1]
		lat.WithLabelValues("buffered").Observe(0.0005)
	}
	in.Add(30)
	now = now.Add(3 * time.Second)
	if err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	r, ok := s.rates()
	if !ok || r.span != 3*time.Second || r.inRecords != 10 || r.outBytes != 0 {
		t.Fatalf("rates %+v, %v", r, ok)
	}
	// Half the observations are at most 1 ms: p50 is the first bucket's
	// top, p99 inside (0.01, 0.1].
	if math.Abs(r.p50-0.001) > 1e-12 || r.p99 <= 0.01 || r.p99 > 0.1 {
		t.Fatalf("p50 %v, p99 %v", r.p50, r.p99)
	}

	// Run samples at once and stops with its context.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}
