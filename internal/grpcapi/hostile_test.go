package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/testutil"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Record timestamps outside the topic's bounds (message.timestamp.
// before.max.ms, after.max.ms) are InvalidArgument and change nothing;
// a poison batch from a Kafka client leaves gRPC consumers unharmed.
func TestProduceHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	e.createTopic(t, "t", 1, nil)
	e.createTopic(t, "tight", 1, map[string]string{"message.timestamp.before.max.ms": "60000"})
	ctx := testCtx(t)
	now := time.Now()
	produce := func(topic string, ts time.Time) error {
		_, err := e.c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: topic, AckMode: pb.AckMode_ACK_DURABLE, Records: []*pb.Record{
			{Value: []byte("ok")}, {Value: []byte("x"), Timestamp: uint64(ts.UnixMilli())},
		}})
		return err
	}
	wantCode(t, "two hours ahead", produce("t", now.Add(2*time.Hour)), codes.InvalidArgument)
	wantCode(t, "ten minutes back, before.max.ms one minute", produce("tight", now.Add(-10*time.Minute)), codes.InvalidArgument)
	wantCode(t, "a minute ahead", produce("t", now.Add(time.Minute)), codes.OK)
	wantCode(t, "ten years back, default before.max.ms", produce("t", now.AddDate(-10, 0, 0)), codes.OK)

	_, err := e.b.Produce(ctx, "t", 0, testutil.GarbageBatch(batch.CodecZstd, now.UnixMilli()), broker.AckDurable)
	if !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("poison batch: %v, want ErrCorrupt", err)
	}
	if codeOf(err) != codes.InvalidArgument {
		t.Fatalf("poison batch maps to %s", codeOf(err))
	}
	if got := e.consumeAll(t, "t", 0, 0); len(got) != 4 {
		t.Fatalf("consumed %d records, want the 4 accepted", len(got))
	}
	for _, name := range []string{"t", "tight"} {
		if _, hw, err := e.b.Offsets(ctx, name, 0); err != nil || (name == "tight" && hw != 0) {
			t.Fatalf("%s: high watermark %d (%v)", name, hw, err)
		}
	}
}

// A Consume over many stored batches that each decompress to 8 MiB
// decodes one of them, not all. Not parallel: it measures the process's
// allocations.
func TestConsumeBoundsDecompressedBytes(t *testing.T) {
	e := newEnv(t, ServerOptions{})
	e.createTopic(t, "bombs", 1, map[string]string{"max.message.bytes": "2097152"})
	ctx := context.Background()
	// 1000 records of 8 KiB: 8 MiB decompressed, a few KB stored.
	bomb := testutil.BombBatch(t, batch.CodecZstd, 1000, 8<<10, time.Now().UnixMilli())
	for range 20 {
		// Produce takes the bytes over (it writes the offsets in).
		if _, err := e.b.Produce(ctx, "bombs", 0, bytes.Clone(bomb), broker.AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.c.Consume(testCtx(t), &pb.ConsumeRequest{Topic: "bombs", MaxRecords: 1}); err != nil {
		t.Fatal(err) // warm up
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := e.c.Consume(testCtx(t), &pb.ConsumeRequest{Topic: "bombs", MaxRecords: 10000})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("consume of %d records allocated %d bytes", len(res.Records), alloc)
	if len(res.Records) == 0 || !res.HasMore {
		t.Fatalf("%d records, has_more %v", len(res.Records), res.HasMore)
	}
	// The 4 MiB budget plus one batch (8 MiB) plus one read (1 MiB), with
	// room for the answer; decoding every batch read would be 160 MiB.
	const bound = 40 << 20
	if alloc > bound {
		t.Fatalf("consume allocated %d bytes, want under %d", alloc, bound)
	}
}
