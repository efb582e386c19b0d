package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A group's coordinator is the holder of its slot's lease: when the slot
// moves to another agent, both agents name the new one, the old one
// refuses the group, and a consumer in the group carries on through the
// move without losing a record.
func TestGroupFollowsItsSlot(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "mv", Partitions: 2}, false); err != nil {
		t.Fatal(err)
	}
	if err := s1.broker.EnsureGroupSlots(ctx); err != nil {
		t.Fatal(err)
	}
	const group = "g-moves"
	if agent, _, err := s1.broker.GroupCoordinator(ctx, group); err != nil || agent != "agent-1" {
		t.Fatalf("alone, the coordinator is %q, %v", agent, err)
	}

	prod := s1.client()
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "mv", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[string]bool{}
	cons := s1.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics("mv"),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.AutoCommitInterval(100*time.Millisecond))
	consumeUntil := func(n int) {
		t.Helper()
		testutil.WaitFor(t, fmt.Sprintf("%d records consumed", n), func() bool {
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer pcancel()
			cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
			return len(got) >= n
		})
	}
	produce(0, 10)
	consumeUntil(10)

	// A second agent; agent-1 hands the group's slot over and agent-2
	// takes it.
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	slot, err := s1.broker.GroupSlot(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.log.Release(ctx, slot); err != nil {
		t.Fatal(err)
	}
	s2.broker.Place(ctx)
	for _, s := range []*testServer{s1, s2} {
		if agent, _, err := s.broker.GroupCoordinator(ctx, group); err != nil || agent != "agent-2" {
			t.Fatalf("%s names coordinator %q, %v; want agent-2", s.broker.AgentID(), agent, err)
		}
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = group, "m", 1
	resp, err := s1.client().Broker(int(s1.srv.nodeID)).Request(ctx, hb)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat at the old coordinator: code %d, want NOT_COORDINATOR", code)
	}

	// The consumer finds agent-2, rejoins and reads on.
	produce(10, 20)
	consumeUntil(20)
	for i := 0; i < 20; i++ {
		if !got[fmt.Sprint(i)] {
			t.Fatalf("record %d never consumed", i)
		}
	}
}
