package metadatatest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Group coordinator writes: stored group state, and offsets and state
// fenced by the coordinator slot's lease in the write's own transaction.
var groupStateTests = []suiteTest{
	{"GroupStateRoundTrip", testGroupStateRoundTrip},
	{"GroupWritesFenced", testGroupWritesFenced},
}

func groupState(group string, generation int32, members ...string) metadata.GroupState {
	st := metadata.GroupState{Group: group, Generation: generation, ProtocolType: "consumer", UpdatedAt: now}
	if len(members) > 0 {
		st.Protocol, st.Leader = "cooperative-sticky", members[0]
	}
	for i, m := range members {
		st.Members = append(st.Members, metadata.GroupMemberState{
			MemberID: m, ClientID: "client-" + m, ClientHost: "/127.0.0.1",
			SessionTimeout: 45 * time.Second, RebalanceTimeout: time.Minute,
			Subscription: []byte{0, 1, byte(i)}, Assignment: []byte{2, 3, byte(i)},
		})
	}
	if len(members) > 1 {
		st.Members[1].InstanceID = "static-1"
	}
	return st
}

func mustLoadGroupState(t *testing.T, s metadata.Store, group string) (metadata.GroupState, bool) {
	t.Helper()
	st, found, err := s.LoadGroupState(t.Context(), group)
	if err != nil {
		t.Fatalf("LoadGroupState(%s): %v", group, err)
	}
	return st, found
}

func checkGroupState(t *testing.T, s metadata.Store, want metadata.GroupState) {
	t.Helper()
	got, found := mustLoadGroupState(t, s, want.Group)
	if !found {
		t.Fatalf("LoadGroupState(%s): not found", want.Group)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, want.UpdatedAt)
	}
	got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadGroupState(%s) = %+v, want %+v", want.Group, got, want)
	}
}

func testGroupStateRoundTrip(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	slots := mustCreateTopic(t, s, "slots", 2)
	lease := mustAcquire(t, s, tpOf(slots, 1), "a1", now)
	fence := metadata.GroupFence{Slot: lease.TopicPartition, AgentID: "a1", Epoch: lease.Epoch}

	if _, found := mustLoadGroupState(t, s, "g"); found {
		t.Fatal("LoadGroupState of a group never saved: found")
	}
	st := groupState("g", 3, "m1", "m2")
	if err := s.SaveGroupState(ctx, fence, st); err != nil {
		t.Fatalf("SaveGroupState: %v", err)
	}
	checkGroupState(t, s, st)

	// A later generation replaces it, the same generation too (a static
	// member replaced without a rebalance); an empty group keeps its
	// generation.
	st = groupState("g", 4, "m2")
	if err := s.SaveGroupState(ctx, fence, st); err != nil {
		t.Fatalf("SaveGroupState of generation 4: %v", err)
	}
	st.Members[0].MemberID, st.Leader = "m2-new", "m2-new"
	if err := s.SaveGroupState(ctx, fence, st); err != nil {
		t.Fatalf("SaveGroupState of generation 4 again: %v", err)
	}
	checkGroupState(t, s, st)
	empty := groupState("g", 5)
	if err := s.SaveGroupState(ctx, fence, empty); err != nil {
		t.Fatalf("SaveGroupState of the empty group: %v", err)
	}
	checkGroupState(t, s, empty)

	// An older generation never overwrites a newer one.
	if err := s.SaveGroupState(ctx, fence, groupState("g", 4, "late")); !errors.Is(err, metadata.ErrGroupFenced) {
		t.Errorf("SaveGroupState of an older generation: %v, want ErrGroupFenced", err)
	}
	checkGroupState(t, s, empty)

	// Deleting the group deletes its state; the state alone does not make
	// a group listed or deletable.
	if err := s.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, found := mustLoadGroupState(t, s, "g"); found {
		t.Error("group state survived DeleteGroup")
	}
}

func testGroupWritesFenced(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	slots := mustCreateTopic(t, s, "slots", 2)
	slot := tpOf(slots, 0)
	old := mustAcquire(t, s, slot, "a1", now)
	oldFence := metadata.GroupFence{Slot: slot, AgentID: "a1", Epoch: old.Epoch}
	off := func(offset int64) metadata.GroupOffset {
		return metadata.GroupOffset{Group: "g", Topic: "t", Partition: 0, Offset: offset, LeaderEpoch: -1, CommittedAt: now}
	}
	checkOffset := func(what string, want int64) {
		t.Helper()
		offs, err := s.FetchGroupOffsets(ctx, "g")
		if err != nil || len(offs) != 1 || offs[0].Offset != want {
			t.Errorf("%s: offsets %+v, %v; want one at %d", what, offs, err, want)
		}
	}
	if err := s.CommitFencedGroupOffsets(ctx, oldFence, []metadata.GroupOffset{off(1112)}); err != nil {
		t.Fatalf("CommitFencedGroupOffsets by the slot's holder: %v", err)
	}
	checkOffset("holder's commit", 1112)
	if err := s.SaveGroupState(ctx, oldFence, groupState("g", 7, "m1")); err != nil {
		t.Fatalf("SaveGroupState by the slot's holder: %v", err)
	}

	// Another agent takes the slot after the lease expired; the former
	// holder still believes it coordinates the group.
	taken := mustAcquire(t, s, slot, "a2", now.Add(ttl+time.Second))
	if taken.Epoch <= old.Epoch {
		t.Fatalf("takeover epoch %d, want above %d", taken.Epoch, old.Epoch)
	}
	if err := s.CommitFencedGroupOffsets(ctx, oldFence, []metadata.GroupOffset{off(1004)}); !errors.Is(err, metadata.ErrGroupFenced) {
		t.Errorf("commit by the former holder: %v, want ErrGroupFenced", err)
	}
	checkOffset("after the former holder's commit", 1112)
	if err := s.SaveGroupState(ctx, oldFence, groupState("g", 8, "m1")); !errors.Is(err, metadata.ErrGroupFenced) {
		t.Errorf("SaveGroupState by the former holder: %v, want ErrGroupFenced", err)
	}
	checkGroupState(t, s, groupState("g", 7, "m1"))

	// The right agent with a wrong epoch, a wrong agent, a slot that does
	// not exist: all fenced.
	for _, f := range []metadata.GroupFence{
		{Slot: slot, AgentID: "a2", Epoch: taken.Epoch + 1},
		{Slot: slot, AgentID: "a1", Epoch: taken.Epoch},
		{Slot: tpOf(slots, 5), AgentID: "a2", Epoch: taken.Epoch},
	} {
		if err := s.CommitFencedGroupOffsets(ctx, f, []metadata.GroupOffset{off(1)}); !errors.Is(err, metadata.ErrGroupFenced) {
			t.Errorf("commit under %+v: %v, want ErrGroupFenced", f, err)
		}
	}
	checkOffset("after fenced commits", 1112)

	newFence := metadata.GroupFence{Slot: slot, AgentID: "a2", Epoch: taken.Epoch}
	if err := s.CommitFencedGroupOffsets(ctx, newFence, []metadata.GroupOffset{off(1200)}); err != nil {
		t.Fatalf("commit by the new holder: %v", err)
	}
	checkOffset("new holder's commit", 1200)
	if err := s.SaveGroupState(ctx, newFence, groupState("g", 8, "m2")); err != nil {
		t.Fatalf("SaveGroupState by the new holder: %v", err)
	}
	checkGroupState(t, s, groupState("g", 8, "m2"))
}
