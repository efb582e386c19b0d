package sql

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's streamhouse_sql_* series.
type metrics struct {
	queries  *prometheus.CounterVec
	records  prometheus.Counter
	bytes    prometheus.Counter
	duration prometheus.Histogram
	// live is the live queries' duration: they run for minutes or hours,
	// and would drown the one-shot queries' percentiles.
	live prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamhouse_sql_queries_total",
			Help: "SQL queries by outcome: ok, an error code of SPEC.md, canceled, revoked (a live query ended as its access did) or error."}, []string{"outcome"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_sql_scanned_records_total",
			Help: "Records read by SQL queries."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_sql_scanned_bytes_total",
			Help: "Key, value and header bytes of the records read by SQL queries."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamhouse_sql_query_duration_seconds",
			Help: "SQL query duration (live queries apart).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		live: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamhouse_sql_live_query_duration_seconds",
			Help: "How long live queries (POST /api/v1/sql/stream) ran.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.records, m.bytes, m.duration, m.live} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("sql: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// observe counts a query (live: a live query) once it has ended.
func (m *metrics) observe(res Result, err error, live bool) {
	outcome := "ok"
	var qe *Error
	switch {
	case errors.As(err, &qe):
		outcome = string(qe.Code)
	case errors.As(err, new(*EndedError)):
		outcome = "revoked" // the server ended a live query: its access ended
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		outcome = "canceled" // the client went away, or its own deadline passed
	case err != nil:
		outcome = "error"
	}
	m.queries.WithLabelValues(outcome).Inc()
	m.records.Add(float64(res.ScannedRecords))
	m.bytes.Add(float64(res.ScannedBytes))
	if live {
		m.live.Observe(res.ExecutionTime.Seconds())
	} else {
		m.duration.Observe(res.ExecutionTime.Seconds())
	}
}

// EndedError is a live query's end when its context was cancelled with a
// cause (context.Cause) other than context.Canceled: the server ended it,
// as authz.Guard does once the caller's access ends (the cause: the
// refusal). Counted with outcome "revoked", not "canceled".
type EndedError struct{ Cause error }

func (e *EndedError) Error() string { return e.Cause.Error() }
func (e *EndedError) Unwrap() error { return e.Cause }
