package partlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

// Benchmarks of the durable write path (docs/benchmarks.md):
//
//	go test -run '^$' -bench 'Durable' -benchtime 5s ./internal/log
//
// "local" is the local folder object store with SQLite metadata (the
// embedded defaults); "s3" is versitygw with PostgreSQL, when
// scripts/services.sh has started them (source its env file first).

type benchBackend struct {
	name      string
	bucket    objstore.Bucket
	store     metadata.Store
	minFlush  time.Duration
	putCounts *objstore.Counting
	reg       *prometheus.Registry
}

func benchBackends(b *testing.B) []func(b *testing.B) benchBackend {
	local := func(b *testing.B) benchBackend {
		dir := b.TempDir()
		bucket, err := objstore.NewLocal(filepath.Join(dir, "storage"))
		if err != nil {
			b.Fatal(err)
		}
		return benchBackend{name: "local", bucket: bucket, store: metadatatest.OpenSQLite(b)}
	}
	backends := []func(b *testing.B) benchBackend{local}
	if os.Getenv("STREAMHOUSE_TEST_S3_ENDPOINT") != "" && os.Getenv("STREAMHOUSE_TEST_DATABASE_URL") != "" {
		backends = append(backends, func(b *testing.B) benchBackend {
			return benchBackend{name: "s3", bucket: objstoretest.S3(b, nil), store: metadatatest.OpenPostgres(b), minFlush: 0}
		})
	}
	return backends
}

var benchTopics atomic.Int64

func openBench(b *testing.B, be benchBackend, partitions int32) (*Log, metadata.Topic) {
	b.Helper()
	be.putCounts = nil
	cfg := Config{
		AgentID:          fmt.Sprintf("bench-%d", benchTopics.Add(1)),
		Bucket:           be.bucket,
		Store:            be.store,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		FlushMinInterval: be.minFlush,
	}
	if be.reg != nil {
		cfg.Metrics = be.reg
	}
	l, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close(context.Background()) })
	topic, err := be.store.CreateTopic(context.Background(), metadata.Topic{Name: fmt.Sprintf("bench-%d-%d", partitions, benchTopics.Add(1)), Partitions: partitions})
	if err != nil {
		b.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		if err := l.Lead(context.Background(), topic, p); err != nil {
			b.Fatal(err)
		}
	}
	return l, topic
}

// kibBatch is a batch of n 1 KiB records, as a Kafka producer sends it.
func kibBatch(b testing.TB, n int) []byte {
	recs := make([]batch.Record, n)
	val := make([]byte, 1024)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	for i := range recs {
		recs[i] = batch.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: val}
	}
	raw, err := batch.Build(recs, batch.DefaultBuildOptions())
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkDurableAppend is full-speed durable append: 64 concurrent
// producers, batches of 64 × 1 KiB records, 8 partitions.
func BenchmarkDurableAppend(b *testing.B) {
	for _, mk := range benchBackends(b) {
		be := mk(b)
		b.Run(be.name, func(b *testing.B) {
			counting := objstore.NewCounting(be.bucket)
			be := be
			be.bucket = counting
			be.reg = prometheus.NewRegistry()
			l, topic := openBench(b, be, 8)
			tmpl := kibBatch(b, 64)
			b.SetBytes(int64(len(tmpl)))
			var mu sync.Mutex
			var lat []time.Duration
			var next atomic.Int32
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				p := next.Add(1) % topic.Partitions
				var mine []time.Duration
				for pb.Next() {
					rec := append([]byte(nil), tmpl...)
					start := time.Now()
					if _, err := l.Append(context.Background(), tpOf(topic, p), rec, AckDurable); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			reportLatency(b, lat)
			reportStages(b, be.reg)
			if n := counting.Puts(); n > 0 {
				b.ReportMetric(float64(counting.PutBytes())/float64(n)/(1<<20), "MiB/object")
			}
		})
	}
}

// BenchmarkDurableAppendAtRate sends 16 KiB batches (16 × 1 KiB records) at
// a fixed rate of 45 MB/s (10% of the full-speed target) and reports the
// latency from each batch's scheduled send time, so a stall is not hidden
// (no coordinated omission). Use -benchtime Nx to set the batch count.
func BenchmarkDurableAppendAtRate(b *testing.B) {
	const rate = 45 << 20 // bytes per second
	for _, mk := range benchBackends(b) {
		be := mk(b)
		b.Run(be.name, func(b *testing.B) {
			be := be
			be.reg = prometheus.NewRegistry()
			l, topic := openBench(b, be, 8)
			tmpl := kibBatch(b, 16)
			interval := time.Duration(float64(time.Second) * float64(len(tmpl)) / rate)
			b.SetBytes(int64(len(tmpl)))
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 256)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				sem <- struct{}{}
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					defer func() { <-sem }()
					rec := append([]byte(nil), tmpl...)
					if _, err := l.Append(context.Background(), tpOf(topic, int32(i)%topic.Partitions), rec, AckDurable); err != nil {
						b.Error(err)
					}
					lat[i] = time.Since(due)
				}(i)
			}
			wg.Wait()
			b.StopTimer()
			reportLatency(b, lat)
			reportStages(b, be.reg)
		})
	}
}

// BenchmarkPutsPerPartitionCount shows that object-store PUTs per second
// follow the flush rate, not the partition count: the same byte rate (one
// 1 KiB record per partition per round, rounds paced to 4 MB/s in total)
// spread over 1, 10, 100 and 1000 partitions. The S3 runs use the S3
// default FLUSH_MIN_INTERVAL_MS of 100.
func BenchmarkPutsPerPartitionCount(b *testing.B) {
	const rate = 4 << 20
	for _, mk := range benchBackends(b) {
		be := mk(b)
		for _, parts := range []int32{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/partitions=%d", be.name, parts), func(b *testing.B) {
				counting := objstore.NewCounting(be.bucket)
				be := be
				be.bucket = counting
				if be.name == "s3" {
					be.minFlush = 100 * time.Millisecond // the S3 default
				}
				l, topic := openBench(b, be, parts)
				tmpl := kibBatch(b, 1)
				interval := time.Duration(float64(time.Second) * float64(len(tmpl)) / rate)
				b.SetBytes(int64(len(tmpl)))
				var wg sync.WaitGroup
				sem := make(chan struct{}, 512)
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					due := start.Add(time.Duration(i) * interval)
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
					sem <- struct{}{}
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						defer func() { <-sem }()
						rec := append([]byte(nil), tmpl...)
						if _, err := l.Append(context.Background(), tpOf(topic, int32(i)%parts), rec, AckDurable); err != nil {
							b.Error(err)
						}
					}(i)
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(counting.Puts())/elapsed.Seconds(), "puts/s")
				b.ReportMetric(float64(counting.Puts()), "puts")
			})
		}
	}
}

// reportStages reports the mean upload and commit time per object.
func reportStages(b *testing.B, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		var unit string
		switch mf.GetName() {
		case "streamhouse_log_upload_duration_seconds":
			unit = "put-ms"
		case "streamhouse_metadata_commit_duration_seconds":
			unit = "commit-ms"
		default:
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() > 0 {
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount())*1000, unit)
		}
	}
}
