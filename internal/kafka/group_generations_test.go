package kafka

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// Group generations survive a coordinator move, and a coordinator that
// lost its slot writes nothing for the group (issue 11, items 3 and 11).

// eachBackend runs fn once per metadata store backend, each with a fresh
// store and a bucket shared by the agents of the run.
func eachBackend(t *testing.T, fn func(t *testing.T, store metadata.Store, bucket objstore.Bucket)) {
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
			if err != nil {
				t.Fatal(err)
			}
			fn(t, open(t), bucket)
		})
	}
}

// grpRejoin rejoins a group's only member (the leader) with its member id,
// which starts the next generation, and syncs it; it returns the new
// generation.
func grpRejoin(t *testing.T, w *grpWire, group, member string) int32 {
	t.Helper()
	resp := w.do(9, grpJoinReq(group, member)).(*kmsg.JoinGroupResponse)
	grpCode(t, "leader rejoin", resp.ErrorCode, nil)
	if resp.MemberID != member || resp.LeaderID != member {
		t.Fatalf("leader rejoin: %+v", resp)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = group, member, resp.Generation
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = member, []byte("plan")
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	grpCode(t, "leader sync", w.do(5, sync).(*kmsg.SyncGroupResponse).ErrorCode, nil)
	return resp.Generation
}

// grpCommit commits offset for partition 0 of topic t as member at
// generation and returns the partition's error code.
func grpCommit(w *grpWire, group, member string, generation int32, offset int64) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return w.do(8, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// checkCommitted fails t unless the group's committed offset of t/0 in
// the metadata store is want.
func checkCommitted(t *testing.T, store metadata.Store, group string, want int64) {
	t.Helper()
	offs, err := store.FetchGroupOffsets(t.Context(), group)
	if err != nil || len(offs) != 1 || offs[0].Offset != want {
		t.Fatalf("committed offsets of %s: %+v, %v; want t/0 at %d", group, offs, err, want)
	}
}

// A group's slot moves to another agent: the new coordinator knows the
// group's members and generation (heartbeats go on, no rebalance), the
// next generation is above the old one, and a commit at the old
// generation is refused.
func TestGroupGenerationSurvivesSlotMove(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, store metadata.Store, bucket objstore.Bucket) {
		ctx := grpCtx(t)
		s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
		if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "t", Partitions: 1}, false); err != nil {
			t.Fatal(err)
		}
		if err := s1.broker.EnsureGroupSlots(ctx); err != nil {
			t.Fatal(err)
		}
		const group = "g-gen"
		w1 := s1.grpDial(t)
		member, gen := grpJoined(t, w1, group, nil)
		gen2 := grpRejoin(t, w1, group, member)
		gen3 := grpRejoin(t, w1, group, member)
		if gen2 != gen+1 || gen3 != gen+2 {
			t.Fatalf("generations %d, %d, %d at the first coordinator", gen, gen2, gen3)
		}
		grpCode(t, "commit at the first coordinator", grpCommit(w1, group, member, gen3, 1004), nil)

		// The slot moves to agent-2.
		s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
		slot, err := s1.broker.GroupSlot(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if err := s1.log.Release(ctx, slot); err != nil {
			t.Fatal(err)
		}
		s2.broker.Place(ctx)
		if agent, _, err := s2.broker.GroupCoordinator(ctx, group); err != nil || agent != "agent-2" {
			t.Fatalf("coordinator after the move: %q, %v", agent, err)
		}
		w2 := s2.grpDial(t)

		// The member carries on at the new coordinator in its generation.
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = group, member, gen3
		grpCode(t, "heartbeat at the new coordinator", w2.do(4, hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
		grpCode(t, "commit at the new coordinator", grpCommit(w2, group, member, gen3, 1112), nil)
		checkCommitted(t, store, group, 1112)

		// The next generation continues the sequence.
		gen4 := grpRejoin(t, w2, group, member)
		if gen4 != gen3+1 {
			t.Fatalf("first generation at the new coordinator: %d, want %d", gen4, gen3+1)
		}
		grpCode(t, "commit at the old generation", grpCommit(w2, group, member, gen3, 1004), kerr.IllegalGeneration)
		grpCode(t, "commit by an unknown member", grpCommit(w2, group, "ghost", gen4, 1004), kerr.UnknownMemberID)
		grpCode(t, "simple commit to a group with members", grpCommit(w2, group, "", -1, 1004), kerr.UnknownMemberID)
		checkCommitted(t, store, group, 1112)
		grpCode(t, "commit at the current generation", grpCommit(w2, group, member, gen4, 1200), nil)
		checkCommitted(t, store, group, 1200)

		// A member joining anew gets a generation above every earlier one.
		w3 := s2.grpDial(t)
		join := w3.do(9, grpJoinReq(group, "")).(*kmsg.JoinGroupResponse)
		grpCode(t, "new member's first join", join.ErrorCode, kerr.MemberIDRequired)
		done := make(chan *kmsg.JoinGroupResponse, 1)
		go func() { done <- w3.do(9, grpJoinReq(group, join.MemberID)).(*kmsg.JoinGroupResponse) }()
		// The new member's join starts a rebalance; the leader rejoins.
		waitRebalance(t, w2, group, member, gen4)
		lead := w2.do(9, grpJoinReq(group, member)).(*kmsg.JoinGroupResponse)
		grpCode(t, "leader rejoin", lead.ErrorCode, nil)
		other := <-done
		grpCode(t, "new member's join", other.ErrorCode, nil)
		if lead.Generation != gen4+1 || other.Generation != gen4+1 {
			t.Fatalf("generation with a new member: %d and %d, want %d", lead.Generation, other.Generation, gen4+1)
		}
		gen5 := lead.Generation

		// Everyone leaves: the empty group's generation is stored too, and
		// survives the slot moving to a third agent.
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Group = group
		for _, id := range []string{member, other.MemberID} {
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = id
			leave.Members = append(leave.Members, m)
		}
		for _, m := range w2.do(4, leave).(*kmsg.LeaveGroupResponse).Members {
			grpCode(t, "leave", m.ErrorCode, nil)
		}
		testutil.WaitFor(t, "the empty group stored", func() bool {
			st, found, err := store.LoadGroupState(ctx, group)
			return err == nil && found && len(st.Members) == 0 && st.Generation > gen5
		})
		s3 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-3"})
		testutil.WaitFor(t, "agent-3 coordinating", func() bool {
			if err := s2.log.Release(ctx, slot); err != nil { // no-op once released
				t.Fatal(err)
			}
			s3.broker.Place(ctx)
			agent, _, err := s2.broker.GroupCoordinator(ctx, group)
			return err == nil && agent == "agent-3"
		})
		w4 := s3.grpDial(t)
		again, gen6 := grpJoined(t, w4, group, nil)
		if gen6 <= gen5+1 {
			t.Fatalf("first generation after the group emptied and moved: %d, want above %d", gen6, gen5+1)
		}
		grpCode(t, "commit at the old coordinator's last generation", grpCommit(w4, group, again, gen5, 1), kerr.IllegalGeneration)
		checkCommitted(t, store, group, 1200)
	})
}

// waitRebalance heartbeats until the coordinator answers
// REBALANCE_IN_PROGRESS.
func waitRebalance(t *testing.T, w *grpWire, group, member string, gen int32) {
	t.Helper()
	testutil.WaitFor(t, "a rebalance", func() bool {
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = group, member, gen
		code := w.do(4, hb).(*kmsg.HeartbeatResponse).ErrorCode
		if code != kerr.RebalanceInProgress.Code {
			grpCode(t, "heartbeat before the rebalance", code, nil)
		}
		return code == kerr.RebalanceInProgress.Code
	})
}

// A coordinator whose slot another agent took at a higher epoch, while it
// still believes it leads the slot (it has not renewed since), can neither
// commit offsets nor complete a generation: the metadata store refuses
// both in their own transaction, and the committed offset is unchanged.
func TestStaleCoordinatorIsFencedByTheStore(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, store metadata.Store, bucket objstore.Bucket) {
		ctx := grpCtx(t)
		// Renewals every 40 s: within the test, the agent never learns it
		// lost the slot.
		const ttl = 2 * time.Minute
		s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1", leaseTTL: ttl})
		if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "t", Partitions: 1}, false); err != nil {
			t.Fatal(err)
		}
		if err := s1.broker.EnsureGroupSlots(ctx); err != nil {
			t.Fatal(err)
		}
		const group = "g-stale"
		w := s1.grpDial(t)
		member, gen := grpJoined(t, w, group, nil)
		grpCode(t, "commit while coordinating", grpCommit(w, group, member, gen, 1112), nil)
		checkCommitted(t, store, group, 1112)

		slot, err := s1.broker.GroupSlot(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		held, ok := s1.log.LeaderEpoch(slot)
		if !ok {
			t.Fatal("agent-1 does not lead the group's slot")
		}
		// Another agent takes the slot as if agent-1's lease had expired.
		taken, err := store.AcquireLease(ctx, slot, "agent-x", time.Now().Add(ttl+time.Minute), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if taken.Epoch <= held {
			t.Fatalf("takeover at epoch %d, agent-1 held %d", taken.Epoch, held)
		}

		grpCode(t, "stale coordinator's commit", grpCommit(w, group, member, gen, 1004), kerr.NotCoordinator)
		checkCommitted(t, store, group, 1112)
		// The next generation cannot complete either: the leader's
		// SyncGroup is refused and the stale coordinator forgets the group.
		resp := w.do(9, grpJoinReq(group, member)).(*kmsg.JoinGroupResponse)
		grpCode(t, "leader rejoin", resp.ErrorCode, nil)
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.MemberID, sync.Generation = group, member, resp.Generation
		grpCode(t, "stale coordinator's sync", w.do(5, sync).(*kmsg.SyncGroupResponse).ErrorCode, kerr.NotCoordinator)
		if st, found, err := store.LoadGroupState(ctx, group); err != nil || !found || st.Generation != gen {
			t.Fatalf("stored group state %+v, %v, %v; want generation %d", st, found, err, gen)
		}
		// What the store refused, not the agent noticing: it still
		// believes it leads the slot.
		if epoch, ok := s1.log.LeaderEpoch(slot); !ok || epoch != held {
			t.Fatalf("agent-1's view of the slot: epoch %d, %v; want %d still", epoch, ok, held)
		}
	})
}
