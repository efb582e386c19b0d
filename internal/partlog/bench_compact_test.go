package partlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

// BenchmarkCompaction measures object compaction (docs/benchmarks.md):
//
//	go test -run '^$' -bench Compaction -benchtime 1x ./internal/partlog
//
// Partitions are written in rounds of one batch each, in flushes that
// hold a run of several partitions: "4KiB-runs" is 16 partitions, 256
// rounds of 4 KiB (16 MiB, about 440 flushes), "256KiB-runs" 8
// partitions, 32 rounds of 256 KiB (64 MiB). Storage is the local folder
// store with SQLite ("local") and, when scripts/services.sh runs (source
// its env file), the S3 test server with PostgreSQL ("s3"). It reports
// the object-store GETs a cold historical read of partition 0 costs per
// MiB before and after compaction (read by a second agent with empty
// caches, through the chunk cache as in production), and the compaction
// pass: its rewrite rate (record bytes rewritten per second of the whole
// pass: reads, segment PUTs, index switches; the agent is idle, so the
// pass never waits for appends) and the GETs and PUTs it made. The
// writer's hot tail is off, so the pass reads every flush object from the
// store.
//
// "keys-merge=off" and "keys-merge=on" (benchKeyMerge) measure the
// merging of small key-compacted segments: a compacted topic written and
// compacted in 4 rounds, without and with merging (run them with -count
// to interleave the two).
func BenchmarkCompaction(b *testing.B) {
	backends := map[string]func(b *testing.B) (objstore.Bucket, metadata.Store){
		"local": func(b *testing.B) (objstore.Bucket, metadata.Store) {
			local, err := objstore.NewLocal(filepath.Join(b.TempDir(), "storage"))
			if err != nil {
				b.Fatal(err)
			}
			return local, metadatatest.OpenSQLite(b)
		},
	}
	if os.Getenv("STREAMHOUSE_TEST_S3_ENDPOINT") != "" && os.Getenv("STREAMHOUSE_TEST_DATABASE_URL") != "" {
		backends["s3"] = func(b *testing.B) (objstore.Bucket, metadata.Store) {
			return objstoretest.S3(b, nil), metadatatest.OpenPostgres(b)
		}
	}
	shapes := []struct {
		name                       string
		partitions, rounds, runKiB int
	}{{"4KiB-runs", 16, 256, 4}, {"256KiB-runs", 8, 32, 256}}
	for _, name := range []string{"local", "s3"} {
		open := backends[name]
		if open == nil {
			continue
		}
		for _, sh := range shapes {
			b.Run(name+"/"+sh.name, func(b *testing.B) {
				for range b.N {
					bucket, store := open(b)
					benchCompaction(b, bucket, store, sh.partitions, sh.rounds, sh.runKiB)
				}
			})
		}
		for _, merge := range []string{"off", "on"} {
			b.Run(name+"/keys-merge="+merge, func(b *testing.B) {
				for range b.N {
					bucket, store := open(b)
					benchKeyMerge(b, bucket, store, merge == "on")
				}
			})
		}
	}
}

func benchCompaction(b *testing.B, inner objstore.Bucket, store metadata.Store, partitions, rounds, runKiB int) {
	ctx := context.Background()
	bucket := objstore.NewCounting(inner)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(agent string) *Log {
		l, err := Open(ctx, Config{
			AgentID: agent, Bucket: bucket, Store: store, Logger: quiet, HotTailBytes: -1,
			Compaction: CompactionConfig{SegmentMaxBytes: 1 << 20, SegmentMaxAge: time.Hour, MinAge: time.Millisecond, BusyShare: 1},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close(ctx) })
		return l
	}
	writer := open("writer")
	topic, err := store.CreateTopic(ctx, metadata.Topic{Name: "history", Partitions: int32(partitions)})
	if err != nil {
		b.Fatal(err)
	}
	for p := range int32(partitions) {
		if err := writer.Lead(ctx, topic, p); err != nil {
			b.Fatal(err)
		}
	}
	for r := range rounds {
		var pending []*Appending
		for p := range int32(partitions) {
			// runKiB records of about 1 KiB.
			a, err := writer.AppendAsync(ctx, tpOf(topic, p), mkBatch(b, fmt.Sprintf("%04d-%01000d", r, p), runKiB), AckDurable)
			if err != nil {
				b.Fatal(err)
			}
			pending = append(pending, a)
		}
		for _, a := range pending {
			if _, err := a.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	flushes := bucket.Puts()
	tp := tpOf(topic, 0)
	historical := func(agent string) (gets float64, mib float64) {
		reader := open(agent)
		before := bucket.Gets()
		var n int
		for off, hw := int64(0), int64(-1); hw < 0 || off < hw; {
			res, err := reader.Read(ctx, tp, off, 1<<20, 0)
			if err != nil {
				b.Fatal(err)
			}
			n += res.Size
			off, hw = res.NextOffset, res.HighWatermark
		}
		mib = float64(n) / (1 << 20)
		return float64(bucket.Gets()-before) / mib, mib
	}
	getsBefore, mib := historical("reader-before")
	gets, puts := bucket.Gets(), bucket.Puts()
	start := time.Now()
	st, err := writer.Compact(ctx)
	if err != nil || st.Segments == 0 {
		b.Fatalf("compact = %+v, %v", st, err)
	}
	elapsed := time.Since(start)
	gets, puts = bucket.Gets()-gets, bucket.Puts()-puts
	getsAfter, _ := historical("reader-after")
	b.ReportMetric(getsBefore, "GETs/MiB-before")
	b.ReportMetric(getsAfter, "GETs/MiB-after")
	b.ReportMetric(float64(st.Bytes)/(1<<20)/elapsed.Seconds(), "rewrite-MiB/s")
	b.ReportMetric(float64(st.Bytes)/(1<<20), "MiB-rewritten")
	b.ReportMetric(float64(gets), "pass-GETs")
	b.ReportMetric(float64(puts), "pass-PUTs")
	b.ReportMetric(float64(flushes), "flush-objects")
	b.ReportMetric(mib, "MiB-read")
	b.ReportMetric(float64(st.Entries)/float64(st.Segments), "entries/segment")
}

// benchKeyMerge writes a compacted topic of one partition in 4 rounds of
// 256 batches, each of a record of its own key (100 bytes) and 31 updates
// of one hot key (1 KiB each), about 8 MiB a round, and runs a compaction
// pass (object compaction, the key pass, and merging when merge) after
// each. It reports the objects and index entries the partition's log is
// left with, the GETs per MiB of a cold full read by a second agent
// (empty caches, through the chunk cache), and the PUTs and bytes of the
// merges.
func benchKeyMerge(b *testing.B, inner objstore.Bucket, store metadata.Store, merge bool) {
	ctx := context.Background()
	bucket := objstore.NewCounting(inner)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := &clock{}
	open := func(agent string) *Log {
		l, err := Open(ctx, Config{
			AgentID: agent, Bucket: bucket, Store: store, Logger: quiet, HotTailBytes: -1, Now: clk.Now,
			Compaction: CompactionConfig{SegmentMaxBytes: 1 << 20, SegmentMaxAge: time.Hour, MinAge: time.Millisecond, BusyShare: 1},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close(ctx) })
		return l
	}
	writer := open("writer")
	writer.compaction.noMerge = !merge
	topic, err := store.CreateTopic(ctx, metadata.Topic{Name: "state", Partitions: 1, Config: map[string]string{"cleanup.policy": "compact"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := writer.Lead(ctx, topic, 0); err != nil {
		b.Fatal(err)
	}
	tp := tpOf(topic, 0)
	var st CompactionStats
	for round := range 4 {
		for i := range 256 {
			n := round*256 + i
			recs := []batch.Record{{Key: []byte(fmt.Sprintf("key-%06d", n)), Value: bytes.Repeat([]byte{'v'}, 100)}}
			for j := range 31 {
				recs = append(recs, batch.Record{Key: []byte("hot"), Value: bytes.Repeat([]byte{byte('a' + j%26)}, 1024)})
			}
			raw, err := batch.Build(recs, batch.DefaultBuildOptions())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := writer.Append(ctx, tp, raw, AckDurable); err != nil {
				b.Fatal(err)
			}
		}
		clk.Advance(10 * time.Millisecond) // the last run older than MinAge
		s, err := writer.Compact(ctx)
		if err != nil || s.KeyPasses != 1 {
			b.Fatalf("compact = %+v, %v", s, err)
		}
		st.Merges += s.Merges
		st.SegmentsMerged += s.SegmentsMerged
		st.MergedBytes += s.MergedBytes
	}
	es, err := store.ListIndex(ctx, tp, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	objects := map[string]bool{}
	for _, e := range es {
		objects[e.ObjectKey] = true
	}
	reader := open("reader")
	before := bucket.Gets()
	var n int
	for off, hw := int64(0), int64(-1); hw < 0 || off < hw; {
		res, err := reader.Read(ctx, tp, off, 1<<20, 0)
		if err != nil {
			b.Fatal(err)
		}
		n += res.Size
		off, hw = res.NextOffset, res.HighWatermark
	}
	mib := float64(n) / (1 << 20)
	b.ReportMetric(float64(len(objects)), "objects")
	b.ReportMetric(float64(len(es)), "index-entries")
	b.ReportMetric(float64(bucket.Gets()-before)/mib, "GETs/MiB")
	b.ReportMetric(mib, "MiB-read")
	b.ReportMetric(float64(st.Merges), "merge-PUTs")
	b.ReportMetric(float64(st.MergedBytes)/(1<<20), "MiB-merged")
}
