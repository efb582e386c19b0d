package wal

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	liveBytes        prometheus.Gauge
	appends          prometheus.Counter
	fsyncs           prometheus.Counter
	fsyncSeconds     prometheus.Histogram
	fullWaits        prometheus.Counter
	tornTails        prometheus.Counter
	segmentsCreated  prometheus.Counter
	segmentsDeleted  prometheus.Counter
	segmentsRecycled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		liveBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_wal_live_bytes", Help: "Bytes of WAL entries not yet committed (and reservations for them); bounded by WAL_MAX_SIZE.",
		}),
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_appends_total", Help: "Entries queued for the WAL.",
		}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_fsyncs_total", Help: "Group syncs (fdatasync) of the WAL (each covers every entry written before it).",
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_wal_fsync_duration_seconds", Help: "Time of one group sync (fdatasync of the segments written since the last one) of the WAL.",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1},
		}),
		fullWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_full_waits_total", Help: "Appends that waited because WAL_MAX_SIZE bytes were live.",
		}),
		tornTails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_torn_tails_total", Help: "WAL segments found damaged (torn or corrupt entry) at start and truncated there.",
		}),
		segmentsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_segments_created_total", Help: "WAL segment files created (zero-filled ahead of use, or growing when none was ready).",
		}),
		segmentsRecycled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_segments_recycled_total", Help: "Released WAL segment files kept for reuse as later segments instead of deleted.",
		}),
		segmentsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_segments_deleted_total", Help: "WAL segment files deleted once all their entries were committed (and not kept for reuse).",
		}),
	}
	reg.MustRegister(m.liveBytes, m.appends, m.fsyncs, m.fsyncSeconds, m.fullWaits, m.tornTails, m.segmentsCreated, m.segmentsDeleted, m.segmentsRecycled)
	return m
}
