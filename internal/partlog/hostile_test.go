package partlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// hwOf is tp's committed high watermark in the metadata store.
func (e *env) hwOf(tp metadata.TopicPartition) int64 {
	e.t.Helper()
	st, err := e.store.GetPartition(context.Background(), tp)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.HighWatermark
}

// Invariant 6 for compressed batches: a batch whose CRC is right but whose
// compressed records are garbage, or do not add up, is refused and nothing
// is stored, so no reader of the partition (fetch decoding, REST and gRPC
// consume, ListOffsets by timestamp) can be stuck on it.
func TestAppendRejectsPoisonBatches(t *testing.T) { onBackends(t, testAppendRejectsPoisonBatches) }

func testAppendRejectsPoisonBatches(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	now := e.clock.Now().UnixMilli()

	// Three good records, compressed with zstd but claimed to be four.
	three, err := batch.Build([]batch.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}},
		batch.BuildOptions{Codec: batch.CodecZstd, ProducerID: -1})
	if err != nil {
		t.Fatal(err)
	}
	miscounted := testutil.FramedBatch(batch.CodecZstd, 4, three[batch.HeaderSize:], now, now)

	cases := []struct {
		name    string
		records []byte
		want    error
	}{
		{"zstd garbage", testutil.GarbageBatch(batch.CodecZstd, now), batch.ErrCorrupt},
		{"gzip garbage", testutil.GarbageBatch(batch.CodecGzip, now), batch.ErrCorrupt},
		{"snappy garbage", testutil.GarbageBatch(batch.CodecSnappy, now), batch.ErrCorrupt},
		{"lz4 garbage", testutil.GarbageBatch(batch.CodecLZ4, now), batch.ErrCorrupt},
		{"zstd record count", miscounted, batch.ErrInvalidRecord},
	}
	for _, c := range cases {
		if _, err := l.Append(ctx, tp, c.records, AckDurable); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
		if hw := e.hwOf(tp); hw != 0 {
			t.Fatalf("%s: high watermark %d after a refused append, want 0", c.name, hw)
		}
	}

	// The partition still serves every reader.
	if _, err := l.Append(ctx, tp, three, AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, tp); len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	if off, _, ok, err := l.OffsetForTime(ctx, tp, 0); err != nil || !ok || off != 0 {
		t.Fatalf("offset for time: %d %v %v", off, ok, err)
	}
}

// A compressed batch whose records decompress past 32 times the topic's
// max.message.bytes is MESSAGE_TOO_LARGE, whatever codec, and nothing is
// stored.
func TestAppendRejectsDecompressionBombs(t *testing.T) {
	onBackends(t, testAppendRejectsDecompressionBombs)
}

func testAppendRejectsDecompressionBombs(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	// 32 * 16 KiB = 512 KiB of records at most.
	topic := e.topic("t", 1, map[string]string{"max.message.bytes": "16384"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	now := e.clock.Now().UnixMilli()
	// Snappy expands at most about 22 times, so it cannot go past 32.
	for _, codec := range []batch.Codec{batch.CodecGzip, batch.CodecLZ4, batch.CodecZstd} {
		bomb := testutil.BombBatch(t, codec, 2, 1<<20, now)
		if len(bomb) > 16384 {
			t.Fatalf("%s bomb is %d bytes, over max.message.bytes", codec, len(bomb))
		}
		if _, err := l.Append(ctx, tp, bomb, AckDurable); !errors.Is(err, batch.ErrTooLarge) {
			t.Errorf("%s: err %v, want ErrTooLarge", codec, err)
		}
		// Within the bound the same codec is fine.
		ok := testutil.BombBatch(t, codec, 2, 100<<10, now)
		if _, err := l.Append(ctx, tp, ok, AckDurable); err != nil {
			t.Errorf("%s: a batch within the bound: %v", codec, err)
		}
	}
	if hw := e.hwOf(tp); hw != 6 {
		t.Fatalf("high watermark %d, want the 6 records within the bound", hw)
	}
}

// With message.timestamp.type=CreateTime, records whose timestamps are
// outside [now - message.timestamp.before.max.ms, now +
// message.timestamp.after.max.ms] are refused (Kafka INVALID_TIMESTAMP),
// with Kafka 4's defaults (unbounded, one hour); records without a
// timestamp and LogAppendTime topics are not checked.
func TestAppendTimestampBounds(t *testing.T) { onBackends(t, testAppendTimestampBounds) }

func testAppendTimestampBounds(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	ctx := context.Background()
	def := e.topic("default", 1, nil)
	tight := e.topic("tight", 1, map[string]string{"message.timestamp.before.max.ms": "60000", "message.timestamp.after.max.ms": "1000"})
	lat := e.topic("lat", 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	for _, topic := range []metadata.Topic{def, tight, lat} {
		lead(t, l, topic)
	}
	now := e.clock.Now()
	at := func(ts ...int64) []byte {
		recs := make([]batch.Record, len(ts))
		for i, v := range ts {
			recs[i] = batch.Record{Value: []byte(strconv.Itoa(i)), Timestamp: v}
		}
		b, err := batch.Build(recs, batch.BuildOptions{Codec: batch.CodecLZ4, ProducerID: -1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	cases := []struct {
		name  string
		topic metadata.Topic
		b     []byte
		ok    bool
	}{
		{"default: two hours ahead", def, at(ms(0), ms(2*time.Hour)), false},
		{"default: far future", def, at(math.MaxInt64 / 2), false},
		{"default: half an hour ahead", def, at(ms(30 * time.Minute)), true},
		{"default: years ago", def, at(1, ms(0)), true},
		{"default: no timestamp", def, testutil.FramedBatch(batch.CodecNone, 1, noTimestampRecord(), -1, -1), true},
		{"tight: ten minutes ago", tight, at(ms(0), ms(-10*time.Minute)), false},
		{"tight: a minute ahead", tight, at(ms(time.Minute)), false},
		{"tight: now", tight, at(ms(0)), true},
		{"log append time: far future", lat, at(ms(1000 * time.Hour)), true},
	}
	for _, c := range cases {
		tp := tpOf(c.topic, 0)
		before := e.hwOf(tp)
		_, err := l.Append(ctx, tp, c.b, AckDurable)
		if c.ok != (err == nil) {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidTimestamp) || !errors.Is(err, batch.ErrInvalidRecord) {
				t.Errorf("%s: err %v, want ErrInvalidTimestamp", c.name, err)
			}
			if hw := e.hwOf(tp); hw != before {
				t.Errorf("%s: high watermark moved from %d to %d", c.name, before, hw)
			}
		}
	}
}

// noTimestampRecord is one uncompressed record with timestamp delta 0, for
// a batch whose timestamps are -1.
func noTimestampRecord() []byte {
	b, err := batch.Build([]batch.Record{{Value: []byte("x"), Timestamp: 1}}, batch.DefaultBuildOptions())
	if err != nil {
		panic(err)
	}
	return b[batch.HeaderSize:]
}

// A run whose timestamp is -1, or further ahead of its object's creation
// than message.timestamp.after.max.ms, counts for retention.ms from its
// object's creation: it neither stays forever nor stops time retention of
// the runs after it.
func TestRetentionFallsBackToObjectTime(t *testing.T) {
	onBackends(t, testRetentionFallsBackToObjectTime)
}

func testRetentionFallsBackToObjectTime(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	ctx := context.Background()
	// Future timestamps are let in at first (as before this check
	// existed, or under a lax config), then the topic gets Kafka's
	// default bound.
	lax := map[string]string{"retention.ms": "60000", "message.timestamp.after.max.ms": fmt.Sprint(int64(math.MaxInt64))}
	topic := e.topic("t", 1, lax)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	now := e.clock.Now().UnixMilli()
	appendOne := func(b []byte) {
		t.Helper()
		if _, err := l.Append(ctx, tp, b, AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(testutil.FramedBatch(batch.CodecNone, 1, noTimestampRecord(), -1, -1)) // offset 0: no timestamp
	appendOne(mkTimedBatch(t, now+10*365*24*3600*1000))                              // offset 1: ten years ahead
	appendOne(mkTimedBatch(t, now-10*60*1000))                                       // offset 2: ten minutes old
	topic.Config = map[string]string{"retention.ms": "60000"}
	if err := e.store.UpdateTopicConfig(ctx, topic.Name, topic.Config); err != nil {
		t.Fatal(err)
	}
	l.UpdateTopic(topic)

	// Fresh objects: the first two runs count from their creation, now.
	if n, err := l.EnforceRetention(ctx); err != nil || n != 0 {
		t.Fatalf("retention of fresh objects trimmed %d (%v)", n, err)
	}
	// Two minutes on, all three are past retention.ms; a newer run stays.
	e.clock.Advance(2 * time.Minute)
	// The renewals a running agent makes in two minutes, in one: the jump
	// of the test clock would otherwise leave the lease deadline behind.
	if err := l.renew(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	appendOne(mkTimedBatch(t, e.clock.Now().UnixMilli())) // offset 3
	if n, err := l.EnforceRetention(ctx); err != nil || n != 1 {
		t.Fatalf("retention trimmed %d partitions (%v), want 1", n, err)
	}
	if _, ls, err := l.HighWatermark(ctx, tp); err != nil || ls != 3 {
		t.Fatalf("log start %d (%v), want 3", ls, err)
	}
}

// mkTimedBatch is one uncompressed record at ts.
func mkTimedBatch(t *testing.T, ts int64) []byte {
	t.Helper()
	b, err := batch.Build([]batch.Record{{Value: []byte("v"), Timestamp: ts}}, batch.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Checks of compressed batches share the agent's decompression budget:
// while it is spent, a compressed produce waits (bounded by its context),
// an uncompressed one does not, and the compressed one goes through once
// the budget is back. However many connections send small bombs at once,
// what their checks hold together stays within MaxDecompressBytes.
func TestCompressedChecksShareTheDecompressionBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, metadatatest.OpenSQLite, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	now := e.clock.Now().UnixMilli()
	zstd := testutil.BombBatch(t, batch.CodecZstd, 2, 1<<10, now)
	if !l.decompress.TryAcquire(l.cfg.MaxDecompressBytes) {
		t.Fatal("the decompression budget is not free at the start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := l.Append(ctx, tp, zstd, AckDurable); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("compressed produce with the budget spent: %v, want to wait until its deadline", err)
	}
	if _, err := l.Append(context.Background(), tp, mkTimedBatch(t, now), AckDurable); err != nil {
		t.Fatalf("uncompressed produce with the budget spent: %v", err)
	}
	l.decompress.Release(l.cfg.MaxDecompressBytes)
	if _, err := l.Append(context.Background(), tp, zstd, AckDurable); err != nil {
		t.Fatalf("compressed produce with the budget back: %v", err)
	}
	if hw := e.hwOf(tp); hw != 3 {
		t.Fatalf("high watermark %d, want 3", hw)
	}
}
