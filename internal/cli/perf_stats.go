package cli

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// perfStats counts what a perf run moved and records latencies. Record is
// called from franz-go's callbacks and the poll loop; snapshot from the
// progress ticker.
type perfStats struct {
	records atomic.Int64
	bytes   atomic.Int64
	errors  atomic.Int64

	// Transactions (perf produce --transaction-duration): committed
	// transactions and the latency of each commit (EndTransaction).
	txns atomic.Int64

	mu     sync.Mutex
	hist   *hdrhistogram.Histogram // microseconds
	commit *hdrhistogram.Histogram // microseconds
}

// Latencies from 1 µs to 1 hour, to 3 significant figures (an error of at
// most 0.1%).
func newPerfStats() *perfStats {
	hi := int64(time.Hour / time.Microsecond)
	return &perfStats{hist: hdrhistogram.New(1, hi, 3), commit: hdrhistogram.New(1, hi, 3)}
}

func (ps *perfStats) recordLatency(d time.Duration) { ps.record(ps.hist, d) }

// recordCommit records the latency of one transaction commit.
func (ps *perfStats) recordCommit(d time.Duration) { ps.record(ps.commit, d) }

func (ps *perfStats) record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	if hi := h.HighestTrackableValue(); us > hi {
		us = hi
	}
	ps.mu.Lock()
	_ = h.RecordValue(us) // within range: cannot fail
	ps.mu.Unlock()
}

// p99 is the 99th percentile so far, for the progress line.
func (ps *perfStats) p99() (time.Duration, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.hist.TotalCount() == 0 {
		return 0, false
	}
	return time.Duration(ps.hist.ValueAtQuantile(99)) * time.Microsecond, true
}

// perfLatency is a latency summary in milliseconds.
type perfLatency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
	// CDF is the distribution at fixed percentiles, for charts.
	CDF []perfCDFPoint `json:"cdf"`
}

type perfCDFPoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

var cdfPercentiles = []float64{0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99, 100}

func usToMs(us int64) float64 { return float64(us) / 1000 }

func (ps *perfStats) latency(h *hdrhistogram.Histogram) *perfLatency {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if h.TotalCount() == 0 {
		return nil
	}
	l := &perfLatency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   usToMs(h.ValueAtQuantile(50)),
		P95:   usToMs(h.ValueAtQuantile(95)),
		P99:   usToMs(h.ValueAtQuantile(99)),
		P999:  usToMs(h.ValueAtQuantile(99.9)),
		Max:   usToMs(h.Max()),
	}
	for _, p := range cdfPercentiles {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		l.CDF = append(l.CDF, perfCDFPoint{Percentile: p, Ms: usToMs(v)})
	}
	return l
}

// perfSummary is the result of one perf run (the JSON output).
type perfSummary struct {
	Mode       string  `json:"mode"` // produce or consume
	Brokers    string  `json:"brokers"`
	Topic      string  `json:"topic"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Errors     int64   `json:"errors"`
	ElapsedSec float64 `json:"elapsed_s"`
	RecordsSec float64 `json:"records_per_sec"`
	// MBSec is in megabytes (10^6 bytes) of record keys and values per
	// second; protocol overhead is not counted.
	MBSec float64 `json:"mb_per_sec"`
	// Latency: produce, from the Produce call to the record's ack;
	// consume, from the record's timestamp (set by its producer) to its
	// arrival, which means something only when producer and consumer
	// share a clock and run at the same time.
	Latency *perfLatency `json:"latency_ms,omitempty"`
	// Transactions and CommitLatency (perf produce
	// --transaction-duration): committed transactions, and the time each
	// EndTransaction(commit) took once the transaction's records were
	// acknowledged. Records and Bytes then count committed
	// records only.
	Transactions  int64          `json:"transactions,omitempty"`
	CommitLatency *perfLatency   `json:"commit_latency_ms,omitempty"`
	Config        map[string]any `json:"config"`
}

func (ps *perfStats) summary(mode, brokers, topic string, elapsed time.Duration, cfg map[string]any) perfSummary {
	s := perfSummary{
		Mode: mode, Brokers: brokers, Topic: topic,
		Records: ps.records.Load(), Bytes: ps.bytes.Load(), Errors: ps.errors.Load(),
		ElapsedSec: elapsed.Seconds(), Latency: ps.latency(ps.hist), Config: cfg,
		Transactions: ps.txns.Load(), CommitLatency: ps.latency(ps.commit),
	}
	if sec := elapsed.Seconds(); sec > 0 {
		s.RecordsSec = float64(s.Records) / sec
		s.MBSec = float64(s.Bytes) / 1e6 / sec
	}
	return s
}

func (p printer) perfSummary(s perfSummary) error {
	if p.json {
		return p.value(s)
	}
	pairs := [][2]string{
		{"Mode", s.Mode},
		{"Topic", s.Topic},
		{"Records", itoa(s.Records)},
		{"Bytes", itoa(s.Bytes)},
		{"Errors", itoa(s.Errors)},
		{"Elapsed", fmt.Sprintf("%.3f s", s.ElapsedSec)},
		{"Records/s", fmt.Sprintf("%.1f", s.RecordsSec)},
		{"MB/s", fmt.Sprintf("%.2f", s.MBSec)},
	}
	if l := s.Latency; l != nil {
		pairs = append(pairs, [2]string{"Latency", fmt.Sprintf("p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (mean %.3f ms)",
			l.P50, l.P95, l.P99, l.P999, l.Max, l.Mean)})
	}
	if l := s.CommitLatency; l != nil {
		pairs = append(pairs, [2]string{"Transactions", itoa(s.Transactions)},
			[2]string{"Commit latency", fmt.Sprintf("p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (mean %.3f ms)",
				l.P50, l.P95, l.P99, l.P999, l.Max, l.Mean)})
	}
	return p.fields(pairs)
}

// progress prints a line a second to w until stop is called: the rate
// over the last second and the p99 so far.
func (ps *perfStats) progress(w io.Writer, verb string) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastBytes, lastAt := ps.records.Load(), ps.bytes.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n, b := ps.records.Load(), ps.bytes.Load()
				sec := now.Sub(lastAt).Seconds()
				line := fmt.Sprintf("%d records %s, %.1f records/s (%.2f MB/s)", n, verb,
					float64(n-last)/sec, float64(b-lastBytes)/1e6/sec)
				if p99, ok := ps.p99(); ok {
					line += fmt.Sprintf(", p99 %.2f ms", float64(p99.Microseconds())/1000)
				}
				if e := ps.errors.Load(); e > 0 {
					line += fmt.Sprintf(", %d errors", e)
				}
				fmt.Fprintln(w, line)
				last, lastBytes, lastAt = n, b, now
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
