package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// An admin commit (REST reset and seek) is made at the group's
// coordinator, here or at the agent holding the group's slot, and is
// refused there while the group has members.
func TestAdminCommitOffsets(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "ac", Partitions: 2}, false); err != nil {
		t.Fatal(err)
	}
	if err := s1.broker.EnsureGroupSlots(ctx); err != nil {
		t.Fatal(err)
	}
	const group = "g-admin"
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	slot, err := s1.broker.GroupSlot(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	// Hand the group's slot to agent-2: agent-1's own placement may take
	// a freed slot back first, so release and place until agent-2 has it.
	testutil.WaitFor(t, "agent-2 coordinating the group", func() bool {
		if agent, _, err := s1.broker.GroupCoordinator(ctx, group); err == nil && agent == "agent-2" {
			return true
		}
		_ = s1.log.Release(ctx, slot) // not held: nothing to release
		s2.broker.Place(ctx)
		agent, _, err := s1.broker.GroupCoordinator(ctx, group)
		return err == nil && agent == "agent-2"
	})
	admin := func(s *testServer) broker.GroupOffsetAdmin { return s.srv.GroupMembers().(broker.GroupOffsetAdmin) }
	committed := func() map[int32]int64 {
		offs, err := s1.broker.GroupOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		for _, o := range offs {
			out[o.Partition] = o.Offset
		}
		return out
	}

	// agent-1 sends it to agent-2; agent-2 commits it itself.
	if err := admin(s1).AdminCommitOffsets(ctx, group, []broker.OffsetCommit{
		{Topic: "ac", Partition: 0, Offset: 0, LeaderEpoch: -1}, {Topic: "ac", Partition: 1, Offset: 0, LeaderEpoch: -1},
	}); err != nil {
		t.Fatalf("commit through agent-1: %v", err)
	}
	if err := admin(s2).AdminCommitOffsets(ctx, group, []broker.OffsetCommit{{Topic: "ac", Partition: 1, Offset: 0, LeaderEpoch: -1, Metadata: "m"}}); err != nil {
		t.Fatalf("commit at agent-2: %v", err)
	}
	if got := committed(); len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Fatalf("committed %v", got)
	}
	if err := admin(s1).AdminCommitOffsets(ctx, group, []broker.OffsetCommit{{Topic: "ac", Partition: 5, Offset: 0, LeaderEpoch: -1}}); !errors.Is(err, broker.ErrUnknownPartition) {
		t.Fatalf("commit of an unknown partition through agent-1: %v", err)
	}

	// A member joins at agent-2: both agents' admin commits are refused.
	cons := s1.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics("ac"), kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	testutil.WaitFor(t, "the member to join", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer pcancel()
		cons.PollFetches(pctx)
		m, ok := s2.srv.GroupMembers().GroupMembers(ctx, group)
		return ok && m.State == "Stable" && len(m.Members) == 1
	})
	for _, s := range []*testServer{s1, s2} {
		err := admin(s).AdminCommitOffsets(ctx, group, []broker.OffsetCommit{{Topic: "ac", Partition: 0, Offset: 0, LeaderEpoch: -1}})
		if !errors.Is(err, broker.ErrGroupNotEmpty) {
			t.Fatalf("%s: admin commit to a group with a member: %v", s.broker.AgentID(), err)
		}
	}

	// agent-2's Kafka listener is gone while it still holds the group's
	// slot: agent-1's forward fails in transport, which is
	// ErrNotCoordinator (REST answers 503, retry), within the bound.
	if err := s2.srv.Close(); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	err = admin(s1).AdminCommitOffsets(dctx, group, []broker.OffsetCommit{{Topic: "ac", Partition: 0, Offset: 0, LeaderEpoch: -1}})
	if !errors.Is(err, broker.ErrNotCoordinator) {
		t.Fatalf("admin commit with the coordinator unreachable: %v", err)
	}
}

// The coordinator's refusals map to the broker's errors.
func TestAdminCommitErr(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want error
	}{
		{kerr.UnknownTopicID, broker.ErrUnknownTopic},
		{kerr.UnknownTopicOrPartition, broker.ErrUnknownPartition},
		{kerr.UnknownMemberID, broker.ErrGroupNotEmpty},
		{kerr.RebalanceInProgress, broker.ErrGroupNotEmpty},
		{kerr.NotCoordinator, broker.ErrNotCoordinator},
		{kerr.CoordinatorNotAvailable, broker.ErrNotCoordinator},
	} {
		if err := adminCommitErr("g", c.in); !errors.Is(err, c.want) {
			t.Errorf("adminCommitErr(%v) = %v, want %v", c.in, err, c.want)
		}
	}
}
