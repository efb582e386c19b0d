package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// A REST or gRPC produce (Broker.ProduceRecords) that reaches an agent not
// leading the partition is forwarded to the leader over Kafka: the records
// land at the leader with dense offsets, whichever agent took them, and
// the leader's errors come back as the broker's.
func TestProduceForwardedToLeader(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "fwd", Partitions: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	s2.broker.Place(ctx)
	led := func(s *testServer, p int32) bool {
		return s.broker.Leads(metadata.TopicPartition{TopicID: topic.ID, Partition: p})
	}
	var at1, at2 int32 = -1, -1
	for p := int32(0); p < 2; p++ {
		switch {
		case led(s1, p):
			at1 = p
		case led(s2, p):
			at2 = p
		}
	}
	if at1 < 0 || at2 < 0 {
		t.Fatalf("each agent should lead one partition: agent-1 %d, agent-2 %d", at1, at2)
	}

	// Through either agent, to the partition the other leads.
	for round, c := range []struct {
		via  *testServer
		part int32
	}{{s1, at2}, {s2, at1}, {s1, at2}} {
		recs := []broker.Record{{Value: []byte(fmt.Sprintf("r%d-a", round))}, {Value: []byte(fmt.Sprintf("r%d-b", round))}}
		offs, err := c.via.broker.ProduceRecords(ctx, "fwd", c.part, recs, broker.AckDurable, batch.DefaultBuildOptions())
		if err != nil {
			t.Fatalf("round %d: produce to partition %d via the other agent: %v", round, c.part, err)
		}
		if len(offs) != 2 || offs[0].Partition != c.part || offs[1].Offset != offs[0].Offset+1 {
			t.Fatalf("round %d: offsets %+v", round, offs)
		}
	}
	got, err := s2.broker.Consume(ctx, "fwd", at2, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, r := range got.Records {
		vals = append(vals, string(r.Value))
	}
	if fmt.Sprint(vals) != "[r0-a r0-b r2-a r2-b]" || got.HighWatermark != 4 {
		t.Fatalf("partition %d at its leader: %v (high watermark %d)", at2, vals, got.HighWatermark)
	}

	// Keyed records spread over both partitions; all are taken.
	var recs []broker.Record
	for i := 0; i < 20; i++ {
		recs = append(recs, broker.Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte("v")})
	}
	offs, err := s1.broker.ProduceRecords(ctx, "fwd", -1, recs, broker.AckDurable, batch.DefaultBuildOptions())
	if err != nil || len(offs) != 20 {
		t.Fatalf("keyed produce over both partitions: %d offsets, %v", len(offs), err)
	}

	// The leader's refusal comes back as the broker's error: a sequence gap
	// of an idempotent batch is out of order at the leader.
	opts := batch.DefaultBuildOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = 77, 0, 5
	_, err = s1.broker.ProduceRecords(ctx, "fwd", at2, []broker.Record{{Value: []byte("x")}}, broker.AckDurable, opts)
	if !errors.Is(err, broker.ErrOutOfOrderSequence) {
		t.Fatalf("forwarded out-of-order batch: %v, want ErrOutOfOrderSequence", err)
	}
}
