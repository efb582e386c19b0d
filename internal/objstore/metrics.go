// This file owns the observability wrappers: WithMetrics (Prometheus, on a
// registry passed in) and Counting (plain atomic counters for tests and
// benchmarks that need "PUTs so far" without scraping).

package objstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of streamhouse_object_store_requests_total.
const (
	OutcomeOK       = "ok"
	OutcomeNotFound = "not_found" // expected on some paths (GC, probes), so kept apart from errors
	OutcomeCanceled = "canceled"  // the caller gave up; not the store's fault
	// OutcomeThrottled: the store still asked to slow down (SlowDown,
	// 429, 503) when the retries were spent.
	OutcomeThrottled = "throttled"
	OutcomeError     = "error"
)

// ops and outcomes are every label value of the request series, created
// at zero so that alerts on their rates have data from the start.
var (
	ops      = []Op{OpPut, OpGet, OpGetRange, OpDelete, OpList}
	outcomes = []string{OutcomeOK, OutcomeNotFound, OutcomeCanceled, OutcomeThrottled, OutcomeError}
)

type metricsBucket struct {
	inner    Bucket
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// WithMetrics wraps inner so that every call is counted and timed:
//
//	streamhouse_object_store_requests_total{backend,op,outcome}
//	streamhouse_object_store_request_duration_seconds{backend,op}
//	streamhouse_object_store_bytes_total{backend,op}  (put, get, get_range)
//	streamhouse_object_store_throttled_total{backend}  (S3 back-pressure answers, every attempt)
//	streamhouse_object_store_concurrency_limit{backend} (the S3 limiter's bound; 0: none)
//
// backend becomes a constant label, so one registry can hold several stores.
// Wrapping twice with the same backend on one registry shares the series
// instead of failing. A nil reg records into collectors nobody exports.
func WithMetrics(inner Bucket, reg prometheus.Registerer, backend string) Bucket {
	labels := prometheus.Labels{"backend": backend}
	m := &metricsBucket{
		inner: inner,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "streamhouse_object_store_requests_total",
			Help:        "Object store requests by operation and outcome.",
			ConstLabels: labels,
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "streamhouse_object_store_request_duration_seconds",
			Help:        "Object store request latency by operation, including retries.",
			ConstLabels: labels,
			// 0.5 ms (local folder, page cache) up to ~33 s (S3 multipart with retries).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17),
		}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "streamhouse_object_store_bytes_total",
			Help:        "Object bytes written (put) and read (get, get_range) successfully.",
			ConstLabels: labels,
		}, []string{"op"}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests)
		m.duration = register(reg, m.duration)
		m.bytes = register(reg, m.bytes)
		register(reg, newS3StatsCollector(inner, labels))
	}
	for _, op := range ops {
		m.duration.WithLabelValues(string(op))
		for _, o := range outcomes {
			m.requests.WithLabelValues(string(op), o)
		}
	}
	for _, op := range []Op{OpPut, OpGet, OpGetRange} {
		m.bytes.WithLabelValues(string(op))
	}
	return m
}

// s3StatsCollector exports the S3 limiter's counters (zero for other
// backends, and for S3 with THROTTLE_ENABLED=false, which has no limiter
// to count them).
type s3StatsCollector struct {
	s3        *S3
	throttled *prometheus.Desc
	limit     *prometheus.Desc
}

func newS3StatsCollector(inner Bucket, labels prometheus.Labels) *s3StatsCollector {
	s3, _ := inner.(*S3)
	return &s3StatsCollector{
		s3: s3,
		throttled: prometheus.NewDesc("streamhouse_object_store_throttled_total",
			"Back-pressure answers (SlowDown, 429, 503) the object store gave to request attempts, retried ones included (THROTTLE_ENABLED counts them; 0 otherwise).", nil, labels),
		limit: prometheus.NewDesc("streamhouse_object_store_concurrency_limit",
			"The S3 limiter's current bound on requests in flight (halved on back-pressure, grown back on success); 0 when there is no limiter.", nil, labels),
	}
}

func (c *s3StatsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.throttled; ch <- c.limit }

func (c *s3StatsCollector) Collect(ch chan<- prometheus.Metric) {
	var st S3Stats
	if c.s3 != nil {
		st = c.s3.Stats()
	}
	ch <- prometheus.MustNewConstMetric(c.throttled, prometheus.CounterValue, float64(st.Throttled))
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(st.ConcurrencyLimit))
}

// register registers c, or returns the identical collector already there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting definition under our metric names is a programming
		// error; keep working unexported rather than take the store down.
	}
	return c
}

func (m *metricsBucket) observe(op Op, start time.Time, err error) {
	m.duration.WithLabelValues(string(op)).Observe(time.Since(start).Seconds())
	outcome := OutcomeOK
	switch {
	case err == nil:
	case IsNotFound(err):
		outcome = OutcomeNotFound
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		outcome = OutcomeCanceled
	case isBackPressure(err):
		outcome = OutcomeThrottled
	default:
		outcome = OutcomeError
	}
	m.requests.WithLabelValues(string(op), outcome).Inc()
}

func (m *metricsBucket) Put(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := m.inner.Put(ctx, key, data)
	m.observe(OpPut, start, err)
	if err == nil {
		m.bytes.WithLabelValues(string(OpPut)).Add(float64(len(data)))
	}
	return err
}

func (m *metricsBucket) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	data, err := m.inner.Get(ctx, key)
	m.observe(OpGet, start, err)
	if err == nil {
		m.bytes.WithLabelValues(string(OpGet)).Add(float64(len(data)))
	}
	return data, err
}

func (m *metricsBucket) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	start := time.Now()
	data, err := m.inner.GetRange(ctx, key, off, length)
	m.observe(OpGetRange, start, err)
	if err == nil {
		m.bytes.WithLabelValues(string(OpGetRange)).Add(float64(len(data)))
	}
	return data, err
}

func (m *metricsBucket) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := m.inner.Delete(ctx, key)
	m.observe(OpDelete, start, err)
	return err
}

// List times the whole listing, fn included: that is what a caller waits for.
func (m *metricsBucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := time.Now()
	err := m.inner.List(ctx, prefix, fn)
	m.observe(OpList, start, err)
	return err
}

func (m *metricsBucket) Close() error { return m.inner.Close() }

// Counting wraps a Bucket with atomic call counters. Every call counts,
// successful or not, because each one is a request the store may bill.
type Counting struct {
	inner                     Bucket
	puts, putBytes            atomic.Int64
	gets, getRanges, getBytes atomic.Int64
	deletes, lists            atomic.Int64
}

var _ Bucket = (*Counting)(nil)

// NewCounting wraps inner with zeroed counters.
func NewCounting(inner Bucket) *Counting { return &Counting{inner: inner} }

// Puts returns the number of Put calls.
func (c *Counting) Puts() int64 { return c.puts.Load() }

// PutBytes returns the bytes passed to Put, failed calls included.
func (c *Counting) PutBytes() int64 { return c.putBytes.Load() }

// Gets returns the number of GET requests: Get and GetRange calls.
func (c *Counting) Gets() int64 { return c.gets.Load() + c.getRanges.Load() }

// GetRanges returns the number of GetRange calls alone.
func (c *Counting) GetRanges() int64 { return c.getRanges.Load() }

// GetBytes returns the bytes returned by successful Get and GetRange calls.
func (c *Counting) GetBytes() int64 { return c.getBytes.Load() }

// Deletes returns the number of Delete calls.
func (c *Counting) Deletes() int64 { return c.deletes.Load() }

// Lists returns the number of List calls.
func (c *Counting) Lists() int64 { return c.lists.Load() }

// Put implements Bucket.
func (c *Counting) Put(ctx context.Context, key string, data []byte) error {
	c.puts.Add(1)
	c.putBytes.Add(int64(len(data)))
	return c.inner.Put(ctx, key, data)
}

// Get implements Bucket.
func (c *Counting) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	data, err := c.inner.Get(ctx, key)
	c.getBytes.Add(int64(len(data)))
	return data, err
}

// GetRange implements Bucket.
func (c *Counting) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	c.getRanges.Add(1)
	data, err := c.inner.GetRange(ctx, key, off, length)
	c.getBytes.Add(int64(len(data)))
	return data, err
}

// Delete implements Bucket.
func (c *Counting) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.inner.Delete(ctx, key)
}

// List implements Bucket.
func (c *Counting) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	c.lists.Add(1)
	return c.inner.List(ctx, prefix, fn)
}

// Close implements Bucket.
func (c *Counting) Close() error { return c.inner.Close() }
