package partlog

import "github.com/prometheus/client_golang/prometheus"

// metrics are the partition log's Prometheus series, registered on the
// Registerer the Log is given.
type metrics struct {
	appendSeconds     *prometheus.HistogramVec
	appendBytes       prometheus.Counter
	appendRecords     prometheus.Counter
	committedRecords  prometheus.Counter
	backpressureWaits prometheus.Counter
	pendingBytes      prometheus.Gauge
	flushes           *prometheus.CounterVec
	flushBytes        prometheus.Histogram
	flushPartitions   prometheus.Histogram
	uploadSeconds     prometheus.Histogram
	uploadFailures    prometheus.Counter
	commitSeconds     prometheus.Histogram
	commitFailures    *prometheus.CounterVec
	leasesLost        prometheus.Counter
	renewFailures     prometheus.Counter
	reads             *prometheus.CounterVec
	readBytes         prometheus.Counter
	readRecords       prometheus.Counter
	readAheads        prometheus.Counter
	chunkLoadBytes    prometheus.Counter
	readCacheBytes    prometheus.Gauge
	gcDeleted         *prometheus.CounterVec
	// bufferLimit is MAX_BUFFER_BYTES, next to pendingBytes, for the
	// "memory near the buffer bound" alert.
	bufferLimit prometheus.Gauge
	// gcPasses counts background passes (retention, producer expiry,
	// garbage collection) by outcome; gcLastSuccess is when the last one
	// that failed nowhere ended (the start counts as one); gcInterval is
	// GC_INTERVAL_SECS (0: no background passes).
	gcPasses      *prometheus.CounterVec
	gcLastSuccess prometheus.Gauge
	gcInterval    prometheus.Gauge
	// compactionLastSuccess is when the last background compaction pass
	// (object and key compaction) ended without error (the start counts
	// as one); compactionInterval is COMPACTION_INTERVAL_SECS and
	// compactionPassMax COMPACTION_PASS_MAX_MS
	// (CompactionConfig.PassMaxDuration).
	compactionLastSuccess prometheus.Gauge
	compactionInterval    prometheus.Gauge
	compactionPassMax     prometheus.Gauge
}

// Label values created at zero, so that rates over them exist from the
// start (the alerts of deploy/prometheus use them).
var (
	flushReasons      = []string{"idle", "size", "records", "durable_age", "interval", "release", "close"}
	readSources       = []string{"hot", "memory", "cache", "object"}
	commitFailReasons = []string{"fenced", "error", "too_old", "conflict"}
	gcKinds           = []string{"unreferenced", "orphan"}
	// compactionConflictReasons label streamhouse_log_compaction_switch_conflicts_total.
	compactionConflictReasons = []string{"fenced", "changed", "error"}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	latency := []float64{.00025, .0005, .001, .0015, .002, .003, .004, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		appendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamhouse_log_append_duration_seconds", Help: "Time from append to acknowledgement, by ack mode.", Buckets: latency,
		}, []string{"ack_mode"}),
		appendBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_append_bytes_total", Help: "Record batch bytes appended.",
		}),
		appendRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_append_records_total", Help: "Records appended (duplicates of idempotent retries not counted).",
		}),
		committedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_committed_records_total", Help: "Records committed to the metadata store.",
		}),
		backpressureWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_backpressure_waits_total", Help: "Appends that waited for buffer space.",
		}),
		pendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_log_buffer_bytes", Help: "Bytes buffered or uploading, not yet committed.",
		}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_flushes_total", Help: "Buffers sealed into objects, by reason.",
		}, []string{"reason"}),
		flushBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_log_flush_size_bytes", Help: "Size of uploaded segment objects.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		flushPartitions: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_log_flush_partitions", Help: "Partitions per uploaded segment object.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_log_upload_duration_seconds", Help: "Segment object PUT latency, per attempt.", Buckets: latency,
		}),
		uploadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_upload_failures_total", Help: "Failed segment object PUT attempts.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_metadata_commit_duration_seconds", Help: "Metadata commit latency of segment objects.", Buckets: latency,
		}),
		commitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_commit_failures_total", Help: "Failed metadata commits, by reason (fenced, error).",
		}, []string{"reason"}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_leases_lost_total", Help: "Partitions this agent stopped leading unexpectedly.",
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_lease_renew_failures_total", Help: "Lease renewals that failed or timed out.",
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_reads_total", Help: "Index entry reads, by source (hot: recently written; memory: read cache; cache: disk cache; object: object store).",
		}, []string{"source"}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_read_bytes_total", Help: "Record batch bytes returned to readers.",
		}),
		readRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_read_records_total", Help: "Records in the batches returned to readers.",
		}),
		readAheads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_read_ahead_loads_total", Help: "Object chunks loaded in the background ahead of readers.",
		}),
		chunkLoadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_chunk_load_bytes_total", Help: "Bytes of object chunks read from the object store for readers.",
		}),
		readCacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_log_read_cache_bytes", Help: "Bytes of object chunks held in the in-memory read cache.",
		}),
		gcDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_gc_deleted_objects_total", Help: "Objects deleted by garbage collection, by kind (unreferenced, orphan).",
		}, []string{"kind"}),
	}
	m.bufferLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_buffer_limit_bytes", Help: "MAX_BUFFER_BYTES: the bound on streamhouse_log_buffer_bytes; appends wait while it is reached.",
	})
	m.gcPasses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_log_gc_passes_total", Help: "Background passes of retention, producer expiry and garbage collection, by outcome (ok, error: one of them failed).",
	}, []string{"outcome"})
	m.gcLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_gc_last_success_timestamp_seconds", Help: "When the last background GC pass that failed nowhere ended (Unix seconds; the agent's start counts as one).",
	})
	m.gcInterval = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_gc_interval_seconds", Help: "GC_INTERVAL_SECS: the spacing of background GC passes (0: none).",
	})
	m.compactionLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_compaction_last_success_timestamp_seconds", Help: "When the last background compaction pass (object and key compaction) ended without error (Unix seconds; the agent's start counts as one).",
	})
	m.compactionInterval = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_compaction_interval_seconds", Help: "COMPACTION_INTERVAL_SECS: the spacing of background compaction passes (0: none).",
	})
	m.compactionPassMax = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamhouse_log_compaction_pass_max_seconds", Help: "COMPACTION_PASS_MAX_MS: the most time a compaction pass spends rewriting objects into segments before it leaves the rest to the next pass.",
	})
	for _, mode := range []AckMode{AckNone, AckBuffered, AckDurable} {
		m.appendSeconds.WithLabelValues(mode.String())
	}
	for _, r := range flushReasons {
		m.flushes.WithLabelValues(r)
	}
	for _, r := range readSources {
		m.reads.WithLabelValues(r)
	}
	for _, r := range commitFailReasons {
		m.commitFailures.WithLabelValues(r)
	}
	for _, k := range gcKinds {
		m.gcDeleted.WithLabelValues(k)
	}
	for _, o := range []string{"ok", "error"} {
		m.gcPasses.WithLabelValues(o)
	}
	m.gcLastSuccess.SetToCurrentTime()
	m.compactionLastSuccess.SetToCurrentTime()
	reg.MustRegister(m.bufferLimit, m.gcPasses, m.gcLastSuccess, m.gcInterval, m.compactionLastSuccess, m.compactionInterval, m.compactionPassMax)
	reg.MustRegister(m.appendSeconds, m.appendBytes, m.appendRecords, m.committedRecords, m.backpressureWaits, m.pendingBytes,
		m.flushes, m.flushBytes, m.flushPartitions, m.uploadSeconds, m.uploadFailures, m.commitSeconds,
		m.commitFailures, m.leasesLost, m.renewFailures, m.reads, m.readBytes, m.readRecords, m.readAheads, m.chunkLoadBytes, m.readCacheBytes, m.gcDeleted)
	return m
}

// setLimits exports the settings the alerts compare with.
func (m *metrics) setLimits(c Config) {
	m.bufferLimit.Set(float64(c.MaxPendingBytes))
	m.gcInterval.Set(c.GCInterval.Seconds())
	m.compactionInterval.Set(c.Compaction.Interval.Seconds())
	m.compactionPassMax.Set(c.Compaction.PassMaxDuration.Seconds())
}

// gcPass records the end of a background GC pass; failed says whether a
// step of it failed.
func (m *metrics) gcPass(failed bool) {
	if failed {
		m.gcPasses.WithLabelValues("error").Inc()
		return
	}
	m.gcPasses.WithLabelValues("ok").Inc()
	m.gcLastSuccess.SetToCurrentTime()
}
