package grpcapi

import (
	"context"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Every method, given bad input, answers a precise code: never Unknown or
// Internal.
func TestBadInputCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	e.createTopic(t, "t", 2, nil)
	e.createTopic(t, "small", 1, map[string]string{"max.message.bytes": "200"})
	c := e.c
	one := []*pb.Record{{Value: []byte("x")}}
	otherTxn := txnToken{id: "tx", producerID: 2, startMs: 1}.String() // a well-formed transaction_id of producer 2
	id := ptr("1")
	big := uint32(math.MaxInt32) + 1

	type call func(ctx context.Context) error
	cases := []struct {
		name string
		call call
		want codes.Code
	}{
		// CreateTopic
		{"CreateTopic empty name", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{PartitionCount: 1})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic bad name", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "a b", PartitionCount: 1})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic long name", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: strings.Repeat("x", 250), PartitionCount: 1})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic zero partitions", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z"})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic huge partitions", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z", PartitionCount: math.MaxUint32})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic unknown config", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z", PartitionCount: 1, Config: map[string]string{"no.such": "1"}})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic bad config value", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z", PartitionCount: 1, Config: map[string]string{"retention.ms": "soon"}})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic retention disagrees", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z", PartitionCount: 1, RetentionMs: ptr[uint64](5), Config: map[string]string{"retention.ms": "6"}})
			return err
		}, codes.InvalidArgument},
		{"CreateTopic retention too large", func(ctx context.Context) error {
			_, err := c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "z", PartitionCount: 1, RetentionMs: ptr[uint64](math.MaxUint64)})
			return err
		}, codes.InvalidArgument},
		// GetTopic, DeleteTopic
		{"GetTopic empty name", func(ctx context.Context) error {
			_, err := c.GetTopic(ctx, &pb.GetTopicRequest{})
			return err
		}, codes.InvalidArgument},
		{"GetTopic unknown", func(ctx context.Context) error {
			_, err := c.GetTopic(ctx, &pb.GetTopicRequest{Name: "nope"})
			return err
		}, codes.NotFound},
		{"DeleteTopic bad name", func(ctx context.Context) error {
			_, err := c.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: "a/b"})
			return err
		}, codes.InvalidArgument},
		{"DeleteTopic unknown", func(ctx context.Context) error {
			_, err := c.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: "nope"})
			return err
		}, codes.NotFound},
		// Produce
		{"Produce empty topic", func(ctx context.Context) error {
			_, err := c.Produce(ctx, &pb.ProduceRequest{Value: []byte("x")})
			return err
		}, codes.InvalidArgument},
		{"Produce unknown topic", func(ctx context.Context) error {
			_, err := c.Produce(ctx, &pb.ProduceRequest{Topic: "nope", Value: []byte("x")})
			return err
		}, codes.NotFound},
		{"Produce partition beyond topic", func(ctx context.Context) error {
			_, err := c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: 2, Value: []byte("x")})
			return err
		}, codes.InvalidArgument},
		{"Produce partition beyond int32", func(ctx context.Context) error {
			_, err := c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: big, Value: []byte("x")})
			return err
		}, codes.InvalidArgument},
		{"Produce too large", func(ctx context.Context) error {
			_, err := c.Produce(ctx, &pb.ProduceRequest{Topic: "small", Value: make([]byte, 1000)})
			return err
		}, codes.InvalidArgument},
		// ProduceBatch
		{"ProduceBatch bad topic", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "..", Records: one})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch unknown topic", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "nope", Records: one})
			return err
		}, codes.NotFound},
		{"ProduceBatch no records", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t"})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch partition beyond topic", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Partition: 7, Records: one})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch unknown ack mode", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, AckMode: 7})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch producer id not a number", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: ptr("abc"), ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](0)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch negative producer id", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: ptr("-1"), ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](0)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch producer id without sequence", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: id, ProducerEpoch: ptr[uint32](0)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch sequence without producer id", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, BaseSequence: ptr[int64](0)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch epoch beyond int16", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: id, ProducerEpoch: ptr[uint32](40000), BaseSequence: ptr[int64](0)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch negative sequence", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: id, ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](-1)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch sequence beyond int32", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: id, ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](math.MaxInt32 + 1)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch first sequence not 0", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, ProducerId: ptr("77"), ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](5)})
			return err
		}, codes.FailedPrecondition},
		{"ProduceBatch timestamp beyond int64", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: []*pb.Record{{Value: []byte("x"), Timestamp: math.MaxUint64}}})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch too large", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "small", Records: []*pb.Record{{Value: make([]byte, 1000)}}})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch transaction_id not from BeginTransaction", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, TransactionId: ptr("x")})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch transaction without producer fields", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, TransactionId: ptr(otherTxn)})
			return err
		}, codes.InvalidArgument},
		{"ProduceBatch transaction of another producer", func(ctx context.Context) error {
			_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "t", Records: one, TransactionId: ptr(otherTxn),
				ProducerId: ptr("1"), ProducerEpoch: ptr[uint32](0), BaseSequence: ptr[int64](0)})
			return err
		}, codes.InvalidArgument},
		// Consume
		{"Consume bad topic", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "a b"})
			return err
		}, codes.InvalidArgument},
		{"Consume unknown topic", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "nope"})
			return err
		}, codes.NotFound},
		{"Consume partition beyond topic", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: 2})
			return err
		}, codes.InvalidArgument},
		{"Consume partition beyond int32", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Partition: math.MaxUint32})
			return err
		}, codes.InvalidArgument},
		{"Consume offset beyond int64", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Offset: math.MaxUint64})
			return err
		}, codes.InvalidArgument},
		{"Consume offset past the end", func(ctx context.Context) error {
			_, err := c.Consume(ctx, &pb.ConsumeRequest{Topic: "t", Offset: 1000})
			return err
		}, codes.OutOfRange},
		// CommitOffset, GetOffset
		{"CommitOffset empty group", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{Topic: "t"})
			return err
		}, codes.InvalidArgument},
		{"CommitOffset long group", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: strings.Repeat("g", 256), Topic: "t"})
			return err
		}, codes.InvalidArgument},
		{"CommitOffset bad topic", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g"})
			return err
		}, codes.InvalidArgument},
		{"CommitOffset unknown topic", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "nope"})
			return err
		}, codes.NotFound},
		{"CommitOffset partition beyond topic", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: 5})
			return err
		}, codes.InvalidArgument},
		{"CommitOffset offset beyond int64", func(ctx context.Context) error {
			_, err := c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: "g", Topic: "t", Offset: math.MaxUint64})
			return err
		}, codes.InvalidArgument},
		{"GetOffset empty group", func(ctx context.Context) error {
			_, err := c.GetOffset(ctx, &pb.GetOffsetRequest{Topic: "t"})
			return err
		}, codes.InvalidArgument},
		{"GetOffset bad topic", func(ctx context.Context) error {
			_, err := c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "a b"})
			return err
		}, codes.InvalidArgument},
		{"GetOffset partition beyond int32", func(ctx context.Context) error {
			_, err := c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "t", Partition: big})
			return err
		}, codes.InvalidArgument},
		{"GetOffset uncommitted", func(ctx context.Context) error {
			_, err := c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: "g", Topic: "t"})
			return err
		}, codes.NotFound},
		// Producers and transactions
		{"InitProducer transactional_id too long", func(ctx context.Context) error {
			_, err := c.InitProducer(ctx, &pb.InitProducerRequest{TransactionalId: ptr(strings.Repeat("x", math.MaxInt16+1))})
			return err
		}, codes.InvalidArgument},
		{"InitProducer transaction timeout above the maximum", func(ctx context.Context) error {
			_, err := c.InitProducer(ctx, &pb.InitProducerRequest{TransactionalId: ptr("tx"), TimeoutMs: 16 * 60 * 1000})
			return err
		}, codes.InvalidArgument},
		{"Heartbeat transaction_id not from BeginTransaction", func(ctx context.Context) error {
			_, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: "1", TransactionId: ptr("!!")})
			return err
		}, codes.InvalidArgument},
		{"Heartbeat empty producer id", func(ctx context.Context) error {
			_, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{})
			return err
		}, codes.InvalidArgument},
		{"Heartbeat producer id not a number", func(ctx context.Context) error {
			_, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: "p-1"})
			return err
		}, codes.InvalidArgument},
		{"Heartbeat epoch beyond int16", func(ctx context.Context) error {
			_, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{ProducerId: "1", ProducerEpoch: 70000})
			return err
		}, codes.InvalidArgument},
		{"BeginTransaction bad producer id", func(ctx context.Context) error {
			_, err := c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: "x"})
			return err
		}, codes.InvalidArgument},
		{"BeginTransaction producer without transactional id", func(ctx context.Context) error {
			_, err := c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: "1"})
			return err
		}, codes.NotFound},
		{"CommitTransaction bad producer id", func(ctx context.Context) error {
			_, err := c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: "1.5"})
			return err
		}, codes.InvalidArgument},
		{"CommitTransaction transaction_id not from BeginTransaction", func(ctx context.Context) error {
			_, err := c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: "1", TransactionId: "x"})
			return err
		}, codes.InvalidArgument},
		{"CommitTransaction transaction of another producer", func(ctx context.Context) error {
			_, err := c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: "1", TransactionId: otherTxn})
			return err
		}, codes.InvalidArgument},
		{"AbortTransaction bad epoch", func(ctx context.Context) error {
			_, err := c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: "1", ProducerEpoch: math.MaxUint32})
			return err
		}, codes.InvalidArgument},
		{"AbortTransaction transaction_id not from BeginTransaction", func(ctx context.Context) error {
			_, err := c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: "1", TransactionId: "x"})
			return err
		}, codes.InvalidArgument},
		{"AbortTransaction transaction_id of an unknown version", func(ctx context.Context) error {
			_, err := c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: "2", TransactionId: "Ag" + otherTxn[2:]})
			return err
		}, codes.InvalidArgument},
		// Subscribe: the error ends the stream.
		{"Subscribe bad topic", subscribeErr(c, &pb.SubscribeRequest{Topic: ""}), codes.InvalidArgument},
		{"Subscribe unknown topic", subscribeErr(c, &pb.SubscribeRequest{Topic: "nope"}), codes.NotFound},
		{"Subscribe unknown topic from offset", subscribeErr(c, &pb.SubscribeRequest{Topic: "nope", Offset: ptr[uint64](0)}), codes.NotFound},
		{"Subscribe partition beyond topic", subscribeErr(c, &pb.SubscribeRequest{Topic: "t", Partition: 3}), codes.InvalidArgument},
		{"Subscribe partition beyond int32", subscribeErr(c, &pb.SubscribeRequest{Topic: "t", Partition: big}), codes.InvalidArgument},
		{"Subscribe offset beyond int64", subscribeErr(c, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](math.MaxUint64)}), codes.InvalidArgument},
		{"Subscribe offset past the end", subscribeErr(c, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](1000)}), codes.OutOfRange},
	}
	methods := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(testCtx(t))
			got := status.Code(err)
			if got == codes.Unknown || got == codes.Internal {
				t.Fatalf("%s (%v): bad input must not be %s", tc.name, err, got)
			}
			wantCode(t, tc.name, err, tc.want)
		})
		methods[strings.Fields(tc.name)[0]] = true
	}
	// Every method with input is swept (ListTopics takes none).
	for _, m := range []string{"CreateTopic", "GetTopic", "DeleteTopic", "Produce", "ProduceBatch", "Consume",
		"CommitOffset", "GetOffset", "InitProducer", "BeginTransaction", "CommitTransaction",
		"AbortTransaction", "Heartbeat", "Subscribe"} {
		if !methods[m] {
			t.Errorf("no bad-input case for %s", m)
		}
	}
	// None of it was stored.
	for _, p := range []uint32{0, 1} {
		if got := e.consumeAll(t, "t", p, 0); len(got) != 0 {
			t.Errorf("partition %d has %d records after bad input", p, len(got))
		}
	}
}

// subscribeErr opens a Subscribe stream and returns the error that ends it.
func subscribeErr(c pb.StreamHouseClient, req *pb.SubscribeRequest) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		s, err := c.Subscribe(ctx, req)
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
}
