package grpcapi

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

func TestTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	before := time.Now().Add(-time.Minute)

	created, err := e.c.CreateTopic(ctx, &pb.CreateTopicRequest{
		Name: "orders", PartitionCount: 3, RetentionMs: ptr[uint64](3600000),
		Config: map[string]string{"cleanup.policy": "delete"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.PartitionCount != 3 || len(created.TopicId) != 36 || strings.Count(created.TopicId, "-") != 4 {
		t.Fatalf("create: %+v", created)
	}
	_, err = e.c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "orders", PartitionCount: 1})
	wantCode(t, "create again", err, codes.AlreadyExists)

	got, err := e.c.GetTopic(ctx, &pb.GetTopicRequest{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	tp := got.Topic
	if tp.Name != "orders" || tp.PartitionCount != 3 || tp.GetRetentionMs() != 3600000 ||
		tp.Config["retention.ms"] != "3600000" || tp.Config["cleanup.policy"] != "delete" ||
		tp.CreatedAt < uint64(before.UnixMilli()) || tp.CreatedAt > uint64(time.Now().UnixMilli()) {
		t.Fatalf("get: %+v", tp)
	}

	// Defaults: Kafka's retention; -1 (forever) leaves retention_ms unset.
	e.createTopic(t, "plain", 1, nil)
	e.createTopic(t, "forever", 1, map[string]string{"retention.ms": "-1"})
	list, err := e.c.ListTopics(ctx, &pb.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*pb.Topic{}
	for _, tp := range list.Topics {
		byName[tp.Name] = tp
	}
	if len(byName) != 3 || byName["plain"].GetRetentionMs() != 604800000 || byName["forever"].RetentionMs != nil {
		t.Fatalf("list: %v", list.Topics)
	}

	del, err := e.c.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: "orders"})
	if err != nil || !del.Success {
		t.Fatalf("delete: %v %v", del, err)
	}
	_, err = e.c.GetTopic(ctx, &pb.GetTopicRequest{Name: "orders"})
	wantCode(t, "get deleted", err, codes.NotFound)
	_, err = e.c.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: "orders"})
	wantCode(t, "delete deleted", err, codes.NotFound)

	if n := counterValue(t, e.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/CreateTopic", "AlreadyExists")); n != 1 {
		t.Fatalf("metric of CreateTopic AlreadyExists = %v, want 1", n)
	}
}

func TestProduceAndConsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "t", 2, nil)

	start := time.Now().UnixMilli()
	for i := range 3 {
		res, err := e.c.Produce(ctx, &pb.ProduceRequest{
			Topic: "t", Partition: 1, Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i)),
			Headers: map[string]string{"h": strconv.Itoa(i), "trace": "x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Offset != uint64(i) || res.Timestamp < uint64(start) || res.Timestamp > uint64(time.Now().UnixMilli()) {
			t.Fatalf("produce %d: %+v", i, res)
		}
	}
	// Produce is durable: the records are readable at once.
	res, err := e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: 1, Offset: 0, ConsumerGroup: ptr("ignored")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 3 || res.HighWatermark != 3 || res.HasMore {
		t.Fatalf("consume: %+v", res)
	}
	for i, r := range res.Records {
		if r.Offset != uint64(i) || string(r.Key) != "k"+strconv.Itoa(i) || string(r.Value) != "v"+strconv.Itoa(i) ||
			r.Headers["h"] != strconv.Itoa(i) || r.Headers["trace"] != "x" || r.Timestamp < uint64(start) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	// max_records bounds the answer and has_more says there is more.
	res, err = e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: 1, Offset: 1, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0].Offset != 1 || !res.HasMore || res.HighWatermark != 3 {
		t.Fatalf("consume max 1: %+v", res)
	}
	// At the high watermark: nothing, no error; past it: OutOfRange.
	res, err = e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: 1, Offset: 3})
	if err != nil || len(res.Records) != 0 || res.HasMore {
		t.Fatalf("consume at hw: %+v %v", res, err)
	}
	_, err = e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: 1, Offset: 4})
	wantCode(t, "consume past hw", err, codes.OutOfRange)
	// Nothing went to the other partition.
	if got := e.consumeAll(t, "t", 0, 0); len(got) != 0 {
		t.Fatalf("partition 0 has %d records", len(got))
	}

	// ProduceBatch in every ack mode; all of it becomes visible.
	ts := uint64(time.Now().Add(-time.Hour).UnixMilli())
	for i, mode := range []pb.AckMode{pb.AckMode_ACK_DURABLE, pb.AckMode_ACK_BUFFERED, pb.AckMode_ACK_NONE} {
		br, err := e.c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Partition: 0, AckMode: mode, Records: []*pb.Record{
			{Key: []byte("a"), Value: []byte(mode.String() + "-1"), Timestamp: ts},
			{Value: []byte(mode.String() + "-2"), Headers: map[string]string{"m": mode.String()}},
		}})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if br.FirstOffset != uint64(2*i) || br.LastOffset != uint64(2*i+1) || br.Count != 2 || br.DuplicatesFiltered {
			t.Fatalf("%s: %+v", mode, br)
		}
	}
	var got []*pb.ConsumedRecord
	testutil.WaitFor(t, "6 records on partition 0", func() bool {
		got = e.consumeAll(t, "t", 0, 0)
		return len(got) == 6
	})
	if got[0].Timestamp != ts || string(got[1].Value) != "ACK_DURABLE-2" || got[5].Headers["m"] != "ACK_NONE" {
		t.Fatalf("batch records: %v", got)
	}

	// An empty key is a null key; an empty value stays an empty value.
	pr, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: 1})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.b.Consume(ctx, "t", 1, int64(pr.Offset), 1, 0)
	if err != nil || len(raw.Records) != 1 {
		t.Fatalf("broker consume: %+v %v", raw, err)
	}
	if r := raw.Records[0]; r.Key != nil || r.Value == nil || len(r.Value) != 0 {
		t.Fatalf("empty key and value stored as key %#v value %#v", r.Key, r.Value)
	}
}

// A resent idempotent batch is answered with the original offsets and
// stored once.
func TestProduceBatchIdempotentResend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "idem", 1, nil)
	ip, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.ParseInt(ip.ProducerId, 10, 64); err != nil || ip.Epoch != 0 {
		t.Fatalf("init producer: %+v", ip)
	}
	send := func(seq int64, epoch uint32, mode pb.AckMode, values ...string) (*pb.ProduceBatchResponse, error) {
		req := &pb.ProduceBatchRequest{Topic: "idem", ProducerId: ptr(ip.ProducerId), ProducerEpoch: ptr(epoch), BaseSequence: ptr(seq), AckMode: mode}
		for _, v := range values {
			req.Records = append(req.Records, &pb.Record{Value: []byte(v)})
		}
		return e.c.ProduceBatch(ctx, req)
	}
	first, err := send(0, 0, pb.AckMode_ACK_DURABLE, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if first.FirstOffset != 0 || first.LastOffset != 2 || first.DuplicatesFiltered {
		t.Fatalf("first: %+v", first)
	}
	for _, mode := range []pb.AckMode{pb.AckMode_ACK_DURABLE, pb.AckMode_ACK_BUFFERED} {
		again, err := send(0, 0, mode, "a", "b", "c")
		if err != nil {
			t.Fatal(err)
		}
		if again.FirstOffset != 0 || again.LastOffset != 2 || again.Count != 3 || !again.DuplicatesFiltered {
			t.Fatalf("resend (%s): %+v", mode, again)
		}
	}
	next, err := send(3, 0, pb.AckMode_ACK_DURABLE, "d", "e")
	if err != nil || next.FirstOffset != 3 || next.LastOffset != 4 || next.DuplicatesFiltered {
		t.Fatalf("next: %+v %v", next, err)
	}
	// A gap in the sequence and a fenced epoch are FailedPrecondition.
	_, err = send(9, 0, pb.AckMode_ACK_DURABLE, "gap")
	wantCode(t, "sequence gap", err, codes.FailedPrecondition)
	if _, err := send(0, 1, pb.AckMode_ACK_DURABLE, "f"); err != nil {
		t.Fatalf("new epoch: %v", err)
	}
	_, err = send(5, 0, pb.AckMode_ACK_DURABLE, "old")
	wantCode(t, "old epoch", err, codes.FailedPrecondition)

	got := e.consumeAll(t, "idem", 0, 0)
	var vals []string
	for _, r := range got {
		vals = append(vals, string(r.Value))
	}
	if strings.Join(vals, ",") != "a,b,c,d,e,f" {
		t.Fatalf("stored %v, want a..f once each", vals)
	}
}

func TestGroupOffsets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "t", 2, nil)
	res, err := e.c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 1, Offset: 42, Metadata: ptr("note")})
	if err != nil || !res.Success {
		t.Fatalf("commit: %v %v", res, err)
	}
	got, err := e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 1})
	if err != nil || got.Offset != 42 || got.GetMetadata() != "note" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := e.c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 1, Offset: 50}); err != nil {
		t.Fatal(err)
	}
	got, err = e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 1})
	if err != nil || got.Offset != 50 || got.Metadata != nil {
		t.Fatalf("get after recommit: %+v %v", got, err)
	}
	_, err = e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 0})
	wantCode(t, "uncommitted partition", err, codes.NotFound)
	_, err = e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "nobody", Topic: "t", Partition: 1})
	wantCode(t, "unknown group", err, codes.NotFound)
	_, err = e.c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "nope", Partition: 0, Offset: 1})
	wantCode(t, "commit to unknown topic", err, codes.NotFound)
}

func TestProducerLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	a, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{TimeoutMs: 30000, OrganizationId: ptr("org"), Metadata: map[string]string{"app": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ProducerId == b.ProducerId {
		t.Fatalf("two producers got id %s", a.ProducerId)
	}
	hb, err := e.c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: a.ProducerId, ProducerEpoch: 0})
	if err != nil || !hb.Valid || hb.Error != nil {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}
	hb, err = e.c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: a.ProducerId, ProducerEpoch: 1})
	if err != nil || hb.Valid || !strings.Contains(hb.GetError(), "epoch") {
		t.Fatalf("heartbeat wrong epoch: %+v %v", hb, err)
	}
	hb, err = e.c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: "999999999"})
	if err != nil || hb.Valid || !strings.Contains(hb.GetError(), "unknown") {
		t.Fatalf("heartbeat unknown producer: %+v %v", hb, err)
	}

	// An idempotent producer has no transactional ID: it cannot begin a
	// transaction, and a transaction_id that is not one is bad input.
	_, err = e.c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: a.ProducerId})
	wantCode(t, "BeginTransaction of an idempotent producer", err, codes.NotFound)
	_, err = e.c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: a.ProducerId, TransactionId: ptr("t")})
	wantCode(t, "Heartbeat with a made-up transaction_id", err, codes.InvalidArgument)
}

// Producer sessions expire after their timeout unless kept alive.
func TestProducerSessionsExpire(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	ps := newProducerSessions(func() time.Time { return now })
	ps.add(1, 0, 10*time.Second)
	ps.add(2, 0, 10*time.Second)
	now = now.Add(8 * time.Second)
	if ok, why := ps.check(1, 0); !ok {
		t.Fatalf("producer 1 after 8s: %s", why)
	}
	ps.touch(2, 0)
	now = now.Add(8 * time.Second)
	for _, id := range []int64{1, 2} {
		if ok, why := ps.check(id, 0); !ok {
			t.Fatalf("producer %d kept alive: %s", id, why)
		}
	}
	now = now.Add(11 * time.Second)
	if ok, why := ps.check(1, 0); ok || !strings.Contains(why, "expired") {
		t.Fatalf("producer 1 after 11s of silence: %v %q", ok, why)
	}
	// The expired session is gone, and a minute later the sweep drops the
	// others.
	now = now.Add(2 * time.Minute)
	ps.add(3, 0, time.Second)
	ps.mu.Lock()
	n := len(ps.sessions)
	ps.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sessions after the sweep, want 1", n)
	}
}

// codeOf never answers Unknown, and Internal only for the unexpected.
func TestCodeOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{broker.ErrNotLeader, codes.Unavailable},
		{broker.ErrClosed, codes.Unavailable},
		{broker.ErrOffsetOutOfRange, codes.OutOfRange},
		{broker.ErrOutOfOrderSequence, codes.FailedPrecondition},
		{broker.ErrInvalidProducerEpoch, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{bytes.ErrTooLarge, codes.Internal},
		{fmt.Errorf("topic: %w: connection refused", metadata.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("read: %w", objstore.ErrInjected), codes.Unavailable},
	} {
		if got := codeOf(c.err); got != c.code {
			t.Errorf("%v: %s, want %s", c.err, got, c.code)
		}
	}
}

// Answers stay under gRPC's default 4 MiB client receive limit: Consume
// and Subscribe trim the records and Consume says there is more.
func TestLargeRecordsFitTheDefaultClientLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "big", 1, nil)
	value := bytes.Repeat([]byte("v"), 900<<10)
	for range 6 {
		if _, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "big", Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Records); n == 0 || n >= 6 || !res.HasMore {
		t.Fatalf("first answer: %d records, has_more %v", n, res.HasMore)
	}
	if got := e.consumeAll(t, "big", 0, 0); len(got) != 6 {
		t.Fatalf("consumed %d records, want 6", len(got))
	}
	sub, err := e.c.Subscribe(ctx, &pb.SubscribeRequest{Topic: "big", Offset: ptr[uint64](0)})
	if err != nil {
		t.Fatal(err)
	}
	for next := uint64(0); next < 6; {
		m, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range m.Records {
			if r.Offset != next || !bytes.Equal(r.Value, value) {
				t.Fatalf("subscribe: record %d at offset %d", next, r.Offset)
			}
			next++
		}
	}
}

// max_records 0 (unset) asks for the default, 100, and more than 10000 is
// capped: the rule REST's maxRecords follows too (broker.ConsumeRecordsLimit).
func TestConsumeMaxRecordsRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "many", 1, nil)
	var recs []*pb.Record
	for i := range 150 {
		recs = append(recs, &pb.Record{Value: []byte(strconv.Itoa(i))})
	}
	if _, err := e.c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "many", Records: recs, AckMode: pb.AckMode_ACK_DURABLE}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		max  uint32
		want int
	}{{0, 100}, {7, 7}, {1 << 31, 150}} {
		res, err := e.c.Consume(ctx, &pb.ConsumeRequest{Topic: "many", MaxRecords: c.max})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != c.want || res.HasMore != (c.want < 150) {
			t.Errorf("max_records %d: %d records (has_more %v, hw %d), want %d", c.max, len(res.Records), res.HasMore, res.HighWatermark, c.want)
		}
	}
}
