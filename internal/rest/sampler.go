package rest

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The series the sampler reads (registered by internal/partlog).
const (
	seriesAppendRecords = "streamhouse_log_append_records_total"
	seriesAppendBytes   = "streamhouse_log_append_bytes_total"
	seriesReadRecords   = "streamhouse_log_read_records_total"
	seriesReadBytes     = "streamhouse_log_read_bytes_total"
	// seriesProduceLatency is the time from append to acknowledgement,
	// labelled by ack mode; the summary merges the modes.
	seriesProduceLatency = "streamhouse_log_append_duration_seconds"
)

// Defaults of SamplerConfig.
const (
	DefaultSampleInterval = 2 * time.Second
	DefaultSampleWindow   = 30 * time.Second
)

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	// Gatherer is read every Interval: the agent's metrics registry.
	Gatherer prometheus.Gatherer
	// Interval between samples (default 2 s); Window is how far back the
	// rates and latency quantiles reach (default 30 s).
	Interval time.Duration
	Window   time.Duration
	Logger   *slog.Logger // default slog.Default()
	Now      func() time.Time
}

// Sampler keeps recent samples of the log's throughput counters and
// produce latency histogram, so GET /api/v1/metrics can answer rates
// (the increase between the oldest and newest sample within the window,
// divided by the time between them) without a Prometheus server. Run
// takes the samples; without it the rates are unknown.
type Sampler struct {
	cfg SamplerConfig
	log *slog.Logger

	mu      sync.Mutex
	samples []sample // oldest first, spanning at most Window
}

// sample is one reading of the series.
type sample struct {
	at                   time.Time
	inRecords, inBytes   float64
	outRecords, outBytes float64
	latency              histogram
}

// histogram is a cumulative histogram: counts[i] observations at most
// bounds[i]; the last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// NewSampler returns a sampler; Run starts sampling.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSampleInterval
	}
	if cfg.Window < cfg.Interval {
		cfg.Window = max(DefaultSampleWindow, cfg.Interval)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sampler{cfg: cfg, log: cfg.Logger.With("component", "metrics-sampler")}
}

// Window is how far back the rates reach.
func (s *Sampler) Window() time.Duration { return s.cfg.Window }

// Run samples at once and then every Interval until ctx is done.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Sample(); err != nil {
			s.log.Warn("sample metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample takes one sample now and drops those older than the window.
func (s *Sampler) Sample() error {
	families, err := s.cfg.Gatherer.Gather()
	if err != nil && len(families) == 0 {
		return fmt.Errorf("gather: %w", err)
	}
	// A partial gather (one collector failed) still has the series.
	smp := sample{at: s.cfg.Now()}
	for _, f := range families {
		switch f.GetName() {
		case seriesAppendRecords:
			smp.inRecords = counterSum(f)
		case seriesAppendBytes:
			smp.inBytes = counterSum(f)
		case seriesReadRecords:
			smp.outRecords = counterSum(f)
		case seriesReadBytes:
			smp.outBytes = counterSum(f)
		case seriesProduceLatency:
			smp.latency = mergeHistograms(f)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, smp)
	// Keep the newest sample at or before the window's start, so the
	// window is covered whole once the sampler has run that long.
	cut := 0
	for i := range s.samples {
		if smp.at.Sub(s.samples[i].at) >= s.cfg.Window {
			cut = i
		}
	}
	s.samples = s.samples[cut:]
	return nil
}

// rates is what the summary shows from the samples.
type rates struct {
	span                 time.Duration
	inRecords, inBytes   float64
	outRecords, outBytes float64
	p50, p99             float64 // seconds; NaN without produce in the window
}

// rates compares the newest sample with the oldest; ok is false until
// two samples exist.
func (s *Sampler) rates() (r rates, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 2 {
		return r, false
	}
	old, cur := s.samples[0], s.samples[len(s.samples)-1]
	r.span = cur.at.Sub(old.at)
	if r.span <= 0 {
		return r, false
	}
	secs := r.span.Seconds()
	perSec := func(a, b float64) float64 { return max(b-a, 0) / secs }
	r.inRecords = perSec(old.inRecords, cur.inRecords)
	r.inBytes = perSec(old.inBytes, cur.inBytes)
	r.outRecords = perSec(old.outRecords, cur.outRecords)
	r.outBytes = perSec(old.outBytes, cur.outBytes)
	d := cur.latency.minus(old.latency)
	r.p50, r.p99 = d.quantile(0.5), d.quantile(0.99)
	return r, true
}

func counterSum(f *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range f.GetMetric() {
		if c := m.GetCounter(); c != nil {
			total += c.GetValue()
		}
	}
	return total
}

// mergeHistograms adds up the histograms of every label set of f (they
// share their buckets), with a final +Inf bucket holding the count.
func mergeHistograms(f *dto.MetricFamily) histogram {
	byBound := make(map[float64]float64)
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		for _, b := range h.GetBucket() {
			byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		byBound[math.Inf(1)] += float64(h.GetSampleCount())
	}
	var out histogram
	for b := range byBound {
		out.bounds = append(out.bounds, b)
	}
	sort.Float64s(out.bounds)
	for _, b := range out.bounds {
		out.counts = append(out.counts, byBound[b])
	}
	return out
}

// minus is h less an earlier reading of the same histogram: the
// observations made in between. An earlier reading without buckets (the
// series did not exist yet) counts as empty.
func (h histogram) minus(old histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	same := len(old.bounds) == len(h.bounds)
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if same && old.bounds[i] == h.bounds[i] {
			out.counts[i] = max(h.counts[i]-old.counts[i], 0)
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: find the bucket holding the rank q·count and interpolate linearly
// within it (from 0 for the first bucket); a rank in the +Inf bucket
// answers the highest finite bound. NaN without observations.
func (h histogram) quantile(q float64) float64 {
	n := len(h.counts)
	if n == 0 || h.counts[n-1] == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := q * h.counts[n-1]
	i := sort.Search(n, func(i int) bool { return h.counts[i] >= rank })
	if i >= n-1 { // the +Inf bucket
		if n < 2 {
			return math.NaN()
		}
		return h.bounds[n-2]
	}
	start, below := 0.0, 0.0
	if i > 0 {
		start, below = h.bounds[i-1], h.counts[i-1]
	} else if h.bounds[0] <= 0 {
		return h.bounds[0]
	}
	end, in := h.bounds[i], h.counts[i]-below
	if in <= 0 {
		return end
	}
	return start + (end-start)*(rank-below)/in
}
