package partlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/wal"
)

// walConfig is a config with the WAL in dir; the buffered-only flush
// interval is long, so only group commit moves data.
func (e *env) walConfig(agent, dir string) Config {
	cfg := e.config(agent)
	cfg.WALDir = dir
	return cfg
}

// crash closes l without its buffered data committed (the bucket refuses
// PUTs meanwhile): what it acknowledged is only in its WAL.
func crash(t *testing.T, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = l.Close(ctx) // "data still pending": expected
}

type acked struct {
	tp     metadata.TopicPartition
	base   int64
	values []string
}

// appendBuffered appends n batches of 1-3 records round-robin over the
// topic's partitions with AckBuffered and returns what was acknowledged.
func appendBuffered(t *testing.T, l *Log, topic metadata.Topic, prefix string, n int) []acked {
	t.Helper()
	var out []acked
	for i := 0; i < n; i++ {
		tp := tpOf(topic, int32(i)%topic.Partitions)
		recs := 1 + i%3
		b := mkBatch(t, fmt.Sprintf("%s%d", prefix, i), recs)
		res, err := l.Append(context.Background(), tp, b, AckBuffered)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		a := acked{tp: tp, base: res.BaseOffset}
		for j := 0; j < recs; j++ {
			a.values = append(a.values, fmt.Sprintf("%s%d-%d", prefix, i, j))
		}
		out = append(out, a)
	}
	return out
}

// checkAcked checks every acknowledged record is readable at its offset,
// once (readAll checks offsets are dense).
func checkAcked(t *testing.T, l *Log, want []acked) {
	t.Helper()
	got := map[metadata.TopicPartition][]batch.Record{}
	for _, a := range want {
		if _, ok := got[a.tp]; !ok {
			got[a.tp] = readAll(t, l, a.tp)
		}
		recs := got[a.tp]
		for j, v := range a.values {
			off := a.base + int64(j)
			if off >= int64(len(recs)) {
				t.Fatalf("%s: acked record %q at offset %d missing (high watermark %d)", a.tp, v, off, len(recs))
			}
			if string(recs[off].Value) != v {
				t.Fatalf("%s: offset %d holds %q, want acked %q", a.tp, off, recs[off].Value, v)
			}
		}
	}
	for tp, recs := range got {
		seen := map[string]int64{}
		for _, r := range recs {
			if prev, ok := seen[string(r.Value)]; ok {
				t.Fatalf("%s: %q at offsets %d and %d", tp, r.Value, prev, r.Offset)
			}
			seen[string(r.Value)] = r.Offset
		}
	}
}

func TestWALReplayAfterCrash(t *testing.T) { onBackends(t, testWALReplayAfterCrash) }

func testWALReplayAfterCrash(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	dir := t.TempDir()
	topic := e.topic("walreplay", 3, nil)
	ctx := context.Background()

	l1 := e.open(e.walConfig("a1", dir))
	lead(t, l1, topic)
	// Some data committed first, so replay starts above offset 0.
	var want []acked
	for p := int32(0); p < 3; p++ {
		res, err := l1.Append(ctx, tpOf(topic, p), mkBatch(t, fmt.Sprintf("durable%d", p), 2), AckDurable)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, acked{tpOf(topic, p), res.BaseOffset, []string{fmt.Sprintf("durable%d-0", p), fmt.Sprintf("durable%d-1", p)}})
	}
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	want = append(want, appendBuffered(t, l1, topic, "buf", 40)...)
	crash(t, l1)
	bucket.Clear()

	// Flushes spaced an hour apart: replay must not wait for them.
	cfg := e.walConfig("a1", dir)
	cfg.FlushMinInterval, cfg.FlushInterval, cfg.DurableMaxAge = time.Hour, time.Hour, time.Hour
	l2 := e.open(cfg)
	// The start takes back the partitions the WAL holds entries of.
	if tps := l2.WALPartitions(); len(tps) != 3 {
		t.Fatalf("WAL partitions %v, want the topic's 3", tps)
	}
	lead(t, l2, topic)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := l2.ReplayWAL(rctx)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if st.Replayed != 40 || len(st.Dropped) != 0 {
		t.Fatalf("replay stats %+v, want 40 entries replayed and none dropped", st)
	}
	checkAcked(t, l2, want)
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Replayed entries are released: the next start finds nothing.
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(segs) != 0 {
		t.Fatalf("segment files left after replay: %v", segs)
	}
	l3 := e.open(e.walConfig("a1", dir))
	lead(t, l3, topic)
	if st, err := l3.ReplayWAL(ctx); err != nil || st.Entries != 0 {
		t.Fatalf("second replay: %+v, %v", st, err)
	}
	checkAcked(t, l3, want)
}

func TestWALReplayDiscardsOwnCommits(t *testing.T) { onBackends(t, testWALReplayDiscardsOwnCommits) }

// A crash between the commit of an object and the release of its WAL
// entries: replay finds the offsets committed by the very process that
// wrote the entries and discards them silently, also those of a partition
// another agent leads by then (handed over after the commit).
func testWALReplayDiscardsOwnCommits(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	dir := t.TempDir()
	topic := e.topic("walown", 2, nil)
	ctx := context.Background()
	l1 := e.open(e.walConfig("a1", dir))
	lead(t, l1, topic)
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	want := appendBuffered(t, l1, topic, "own", 10)
	// The WAL as a crash right after the commit would leave it.
	snap := t.TempDir()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, filepath.Base(s)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bucket.Clear()
	if err := l1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Partition 1 was handed over meanwhile: a2 leads it.
	e.clock.Advance(time.Minute) // a1's leases expire
	a2 := e.open(e.config("a2"))
	if err := a2.Lead(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	l2 := e.open(e.walConfig("a1", snap))
	if err := l2.Lead(ctx, topic, 0); err != nil {
		t.Fatal(err)
	}
	st, err := l2.ReplayWAL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Released != 10 || st.Replayed != 0 || len(st.Dropped) != 0 {
		t.Fatalf("replay stats %+v, want 10 released as already committed (5 of them of the partition a2 leads now)", st)
	}
	checkAcked(t, l2, want)
}

func TestWALReplayAfterPartitionMoved(t *testing.T) { onBackends(t, testWALReplayAfterPartitionMoved) }

// While a1 is down with WAL entries for partitions 0 and 1, a2 takes both
// (a1's leases expired) and writes at those offsets; it keeps partition 0
// and hands partition 1 back. a1's replay drops every entry (not_leader for
// 0, overwritten for 1), counts them, and a2's records stay.
func testWALReplayAfterPartitionMoved(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	dir := t.TempDir()
	topic := e.topic("walmoved", 2, nil)
	ctx := context.Background()
	l1 := e.open(e.walConfig("a1", dir))
	lead(t, l1, topic)
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	lost := appendBuffered(t, l1, topic, "old", 6)
	crash(t, l1)
	bucket.Clear()

	e.clock.Advance(time.Minute) // a1's leases expire
	l2 := e.open(e.config("a2"))
	lead(t, l2, topic)
	var want []acked
	for p := int32(0); p < 2; p++ {
		var vals []string
		for i := 0; i < 8; i++ {
			vals = append(vals, fmt.Sprintf("new%d-%d", p, i))
		}
		res, err := l2.Append(ctx, tpOf(topic, p), mkBatch(t, fmt.Sprintf("new%d", p), 8), AckDurable)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, acked{tpOf(topic, p), res.BaseOffset, vals})
	}
	if err := l2.Release(ctx, tpOf(topic, 1)); err != nil {
		t.Fatal(err)
	}

	reg := newRegistry()
	cfg := e.walConfig("a1", dir)
	cfg.Metrics = reg
	l3 := e.open(cfg)
	if err := l3.Lead(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	st, err := l3.ReplayWAL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Replayed != 0 || st.Dropped["not_leader"] != 3 || st.Dropped["overwritten"] != 3 {
		t.Fatalf("replay stats %+v, want 3 not_leader and 3 overwritten drops", st)
	}
	if got := counterValue(t, reg, "streamhouse_wal_dropped_entries_total", "overwritten"); got != 3 {
		t.Fatalf("dropped metric (overwritten) %v, want 3", got)
	}
	checkAcked(t, l3, want[1:])
	checkAcked(t, l2, want[:1])
	for _, a := range lost {
		for _, r := range readAll(t, l3, tpOf(topic, 1)) {
			for _, v := range a.values {
				if bytes.Equal(r.Value, []byte(v)) {
					t.Fatalf("dropped record %q stored at %d", v, r.Offset)
				}
			}
		}
	}
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// counterValue reads the counter name{reason=label} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestWALBufferedAckWaitsForFsync(t *testing.T) {
	onBackends(t, testWALBufferedAckWaitsForFsync)
}

// With fsyncs an hour apart (after the first) and nothing committing, a
// buffered append is not acknowledged until its WAL entry is fsynced.
func testWALBufferedAckWaitsForFsync(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	topic := e.topic("walwait", 1, nil)
	cfg := e.walConfig("a1", t.TempDir())
	cfg.WALSyncInterval = time.Hour
	l := e.open(cfg)
	lead(t, l, topic)
	ctx := context.Background()
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	tp := tpOf(topic, 0)
	// The first write is fsynced at once; it starts the interval.
	if _, err := l.Append(ctx, tp, mkBatch(t, "first", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	a, err := l.AppendAsync(ctx, tp, mkBatch(t, "second", 1), AckBuffered)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if res, err := a.Wait(short); err == nil {
		t.Fatalf("buffered append acknowledged at %d before its WAL fsync", res.BaseOffset)
	}
	// Closing the WAL fsyncs what is queued: the ack comes then.
	crash(t, l)
	res, err := a.Wait(ctx)
	if err != nil || res.BaseOffset != 1 {
		t.Fatalf("after the fsync: %+v, %v; want offset 1", res, err)
	}
}

func TestWALIdempotentResendAckedOnce(t *testing.T) {
	onBackends(t, testWALIdempotentResendAckedOnce)
}

// A buffered resend of an idempotent batch whose original is neither
// fsynced in the WAL nor committed is a duplicate: no new entry is
// written, so its ack must not come before the original's would (a crash
// then would lose a record acked twice). With fsyncs an hour apart (after
// the first) and the bucket refusing PUTs, the resend is not acknowledged;
// once PUTs pass the original commits and the resend is acknowledged with
// the original's offsets.
func testWALIdempotentResendAckedOnce(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	topic := e.topic("walresend", 1, nil)
	cfg := e.walConfig("a1", t.TempDir())
	cfg.WALSyncInterval = time.Hour
	l := e.open(cfg)
	lead(t, l, topic)
	ctx := context.Background()
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	tp := tpOf(topic, 0)
	// The first write is fsynced at once; it starts the interval.
	if _, err := l.Append(ctx, tp, mkBatch(t, "first", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	const pid = 42
	orig, err := l.AppendAsync(ctx, tp, idemBatch(t, pid, 0, 0, 2), AckBuffered)
	if err != nil {
		t.Fatal(err)
	}
	resend, err := l.AppendAsync(ctx, tp, idemBatch(t, pid, 0, 0, 2), AckBuffered)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if res, err := orig.Wait(short); err == nil {
		t.Fatalf("original acknowledged at %d before its WAL fsync or commit", res.BaseOffset)
	}
	if res, err := resend.Wait(short); err == nil {
		t.Fatalf("resend acknowledged at %d-%d (duplicate %v) before its original was fsynced or committed", res.BaseOffset, res.LastOffset, res.Duplicate)
	}
	// PUTs pass: the original commits, and both are acknowledged, the
	// resend as a duplicate at the original's offsets.
	bucket.Clear()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	o, err := orig.Wait(wctx)
	if err != nil || o.BaseOffset != 1 || o.LastOffset != 2 || o.Duplicate {
		t.Fatalf("original: %+v, %v; want offsets 1-2", o, err)
	}
	r, err := resend.Wait(wctx)
	if err != nil || r.BaseOffset != 1 || r.LastOffset != 2 || !r.Duplicate {
		t.Fatalf("resend: %+v, %v; want the duplicate of offsets 1-2", r, err)
	}
	if hw, _, err := l.HighWatermark(ctx, tp); err != nil || hw != 3 {
		t.Fatalf("high watermark %d, %v; want 3 (the resend written once)", hw, err)
	}
}

// An entry whose commit failed is released in memory only: the WAL still
// holds it when the partition, led again from the same offset, acks a
// newer entry there. Replay keeps the newer one and drops the older as
// superseded, never replaying it over what was acked later.
func TestWALReplaySupersededEntry(t *testing.T) { onBackends(t, testWALReplaySuperseded) }

func testWALReplaySuperseded(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	dir := t.TempDir()
	topic := e.topic("superseded", 1, nil)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	// An older entry at offset 0 (its commit failed), then the newer one
	// acked after the partition was led again from 0.
	writeWAL(t, dir, topic, mkBatch(t, "old", 1), mkBatch(t, "new", 2))
	l := e.open(e.walConfig("a1", dir))
	lead(t, l, topic)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := l.ReplayWAL(rctx)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if st.Replayed != 1 || st.Dropped["superseded"] != 1 || len(st.Dropped) != 1 {
		t.Fatalf("replay stats %+v, want the newer entry replayed and the older superseded", st)
	}
	checkAcked(t, l, []acked{{tp, 0, []string{"new-0", "new-1"}}})
}

// Replay checks an entry's structure, not the topic's settings of now: a
// batch acked before max.message.bytes shrank is replayed.
func TestWALReplayIgnoresLaterSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, metadatatest.OpenSQLite, nil)
	dir := t.TempDir()
	topic := e.topic("settings", 1, nil)
	ctx := context.Background()
	writeWAL(t, dir, topic, mkBatch(t, "big", 3))
	// Since the ack: the topic's batches may be at most 16 bytes.
	if err := e.store.UpdateTopicConfig(ctx, "settings", map[string]string{"max.message.bytes": "16"}); err != nil {
		t.Fatal(err)
	}
	topic, err := e.store.GetTopic(ctx, "settings")
	if err != nil {
		t.Fatal(err)
	}
	l := e.open(e.walConfig("a1", dir))
	lead(t, l, topic)
	st, err := l.ReplayWAL(ctx)
	if err != nil || st.Replayed != 1 || len(st.Dropped) != 0 {
		t.Fatalf("replay: %+v, %v; want the entry replayed", st, err)
	}
	checkAcked(t, l, []acked{{tpOf(topic, 0), 0, []string{"big-0", "big-1", "big-2"}}})
}

// writeWAL leaves in dir the WAL an earlier process would have: one entry
// per batch, each at offset 0 of the topic's partition 0, in order.
func writeWAL(t *testing.T, dir string, topic metadata.Topic, batches ...[]byte) {
	t.Helper()
	w, _, err := wal.Open(wal.Options{Dir: dir, WriterID: "old-boot"})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		batch.SetBaseOffset(b, 0)
		wh := wal.Header{TopicID: [16]byte(topic.ID), Partition: 0, LeaderEpoch: 1, BaseOffset: 0,
			LastOffset: int64(h.NumRecords - 1), Records: h.NumRecords}
		if err := w.Reserve(context.Background(), wal.FrameSize(len(b))); err != nil {
			t.Fatal(err)
		}
		entry := w.Add(wh, [][]byte{b}, wal.FrameSize(len(b)))
		<-entry.Done()
		if entry.Err() != nil {
			t.Fatal(entry.Err())
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeWALMany writes n one-record entries of tp, at offsets 0 to n-1, as
// an earlier process ("old-boot") would have, waiting for the fsync of the
// last only.
func writeWALMany(t *testing.T, dir string, tp metadata.TopicPartition, n int) {
	t.Helper()
	w, _, err := wal.Open(wal.Options{Dir: dir, WriterID: "old-boot"})
	if err != nil {
		t.Fatal(err)
	}
	var last *wal.Entry
	for i := 0; i < n; i++ {
		b := mkBatch(t, fmt.Sprintf("many%d", i), 1)
		batch.SetBaseOffset(b, int64(i))
		wh := wal.Header{TopicID: [16]byte(tp.TopicID), Partition: tp.Partition, LeaderEpoch: 1,
			BaseOffset: int64(i), LastOffset: int64(i), Records: 1}
		if err := w.Reserve(context.Background(), wal.FrameSize(len(b))); err != nil {
			t.Fatal(err)
		}
		last = w.Add(wh, [][]byte{b}, wal.FrameSize(len(b)))
	}
	<-last.Done()
	if last.Err() != nil {
		t.Fatal(last.Err())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWALReplayManyEntries(t *testing.T) { onBackends(t, testWALReplayManyEntries) }

// A kill -9 after a long run leaves every entry of the WAL's live
// segments, committed long ago or not: tens of thousands. The restarted
// agent serves none of its partitions until replay is over, so replay's
// work per entry must not grow with the entries of its partition (it
// did: 20 to 30 s without a serving leader in the fault-injection test).
// Here 5,000 entries of a partition another agent leads, each dropped
// as not_leader, and logged once for the partition, not once each.
func testWALReplayManyEntries(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	dir := t.TempDir()
	topic := e.topic("many", 1, nil)
	tp := tpOf(topic, 0)
	const n = 5000
	writeWALMany(t, dir, tp, n)
	other := e.open(e.config("a2"))
	lead(t, other, topic)
	reg := prometheus.NewRegistry()
	cfg := e.walConfig("a1", dir)
	cfg.Metrics = reg
	l := e.open(cfg)
	if got := len(l.WALPartitions()); got != 1 {
		t.Fatalf("WALPartitions: %d partitions, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	st, err := l.ReplayWAL(ctx)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if st.Entries != n || st.Dropped["not_leader"] != n || st.Replayed != 0 {
		t.Fatalf("replay stats %+v; want %d entries, all dropped as not_leader", st, n)
	}
	if got := counterValue(t, reg, "streamhouse_wal_dropped_entries_total", "not_leader"); got != n {
		t.Fatalf("dropped metric (not_leader) %v, want %d", got, n)
	}
	t.Logf("replay of %d entries took %v", n, took)
	// Linear work takes well under a second here, even with the race
	// detector on a loaded machine; quadratic work took minutes.
	if took > 15*time.Second {
		t.Fatalf("replay of %d entries of one partition took %v", n, took)
	}
}
