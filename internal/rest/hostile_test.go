package rest_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A batch a Kafka client sends with garbage compressed records and a right
// CRC is refused, and REST consumers of the partition are not stuck on it.
func TestConsumeAfterPoisonBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTopic("poison", 1)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	e.produce(`{"topic":"poison","partition":0,"value":"before"}`)
	_, err := e.b.Produce(ctx, "poison", 0, testutil.GarbageBatch(batch.CodecZstd, now), broker.AckDurable)
	if !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("poison batch: %v, want ErrCorrupt", err)
	}
	e.produce(`{"topic":"poison","partition":0,"value":"after"}`)
	got := e.consume("topic=poison&partition=0&offset=0")
	if len(got.Records) != 2 || *got.Records[0].Value != "before" || *got.Records[1].Value != "after" || got.HighWatermark != 2 {
		t.Fatalf("consume: %+v", got)
	}
}

// A default REST consume over many stored batches that each decompress to
// 8 MiB decodes one of them, not all: what the request allocates stays
// within its byte budget plus one batch, whatever the partition holds.
// Not parallel: it measures the process's allocations.
func TestConsumeBoundsDecompressedBytes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// max.message.bytes 2 MiB lets batches decompress to 64 MiB.
	if _, err := e.b.CreateTopic(ctx, broker.TopicSpec{Name: "bombs", Partitions: 1, Config: map[string]string{"max.message.bytes": "2097152"}}, false); err != nil {
		t.Fatal(err)
	}
	const (
		batches   = 20
		perBatch  = 1000
		valueSize = 8 << 10 // 8 MiB per batch, a few KB compressed
	)
	bomb := testutil.BombBatch(t, batch.CodecZstd, perBatch, valueSize, time.Now().UnixMilli())
	t.Logf("each batch: %d bytes stored, %d decompressed", len(bomb), perBatch*valueSize)
	for range batches {
		// Produce takes the bytes over (it writes the offsets in).
		if _, err := e.b.Produce(ctx, "bombs", 0, bytes.Clone(bomb), broker.AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	e.consume("topic=bombs&partition=0&offset=0&maxRecords=1") // warm up pools and caches

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := e.get("/api/v1/consume?topic=bombs&partition=0&offset=0")
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	got := decodeInto[consumed](t, e.must(r, 200).body)
	t.Logf("consume of %d records allocated %d bytes", len(got.Records), alloc)
	if len(got.Records) != 100 || got.NextOffset != 100 {
		t.Fatalf("%d records, next offset %d; want the default 100", len(got.Records), got.NextOffset)
	}
	// The budget (4 MiB) plus one batch (8 MiB) plus one read (1 MiB),
	// with room for the JSON answer; decoding every batch read would be
	// 160 MiB.
	const bound = 32 << 20
	if alloc > bound {
		t.Fatalf("consume allocated %d bytes, want under %d", alloc, bound)
	}
	// The budget is per request: a smaller max_bytes returns fewer records.
	small := e.consume("topic=bombs&partition=0&offset=0&max_bytes=65536")
	if len(small.Records) != 8 || small.NextOffset != 8 {
		t.Fatalf("max_bytes 64 KiB: %d records, next offset %d; want 8 records of 8 KiB", len(small.Records), small.NextOffset)
	}
	// The first record comes back whatever the budget.
	if one := e.consume("topic=bombs&partition=0&offset=3&max_bytes=1"); len(one.Records) != 1 || one.Records[0].Offset != 3 || one.NextOffset != 4 {
		t.Fatalf("max_bytes 1: %d records, next offset %d; want the record at 3", len(one.Records), one.NextOffset)
	}
	checkError(t, e.get("/api/v1/consume?topic=bombs&partition=0&max_bytes=0"), 400, "bad_request", "max_bytes")
}
