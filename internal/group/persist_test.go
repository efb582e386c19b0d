package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// faultyStore keeps group state in memory, as the metadata store would
// (an older generation never replaces a newer one), and fails the saves
// the test asks it to.
type faultyStore struct {
	mu     sync.Mutex
	states map[string]metadata.GroupState
	fail   error // returned by the next save
	lost   bool  // Holds answers false: the slot is gone
	// loaded, when set, runs after a load has read the state and before
	// it returns (outside s.mu).
	loaded func()
}

func newFaultyStore() *faultyStore {
	return &faultyStore{states: make(map[string]metadata.GroupState)}
}

func (s *faultyStore) LoadGroup(_ context.Context, group string) (metadata.GroupFence, metadata.GroupState, bool, error) {
	s.mu.Lock()
	st, ok := s.states[group]
	hook := s.loaded
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return metadata.GroupFence{AgentID: "a", Epoch: 1}, st, ok, nil
}

func (s *faultyStore) SaveGroup(_ context.Context, _ metadata.GroupFence, st metadata.GroupState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail; err != nil {
		s.fail = nil
		return err
	}
	if cur, ok := s.states[st.Group]; ok && cur.Generation > st.Generation {
		return fmt.Errorf("%w: %w", broker.ErrNotCoordinator, metadata.ErrGroupFenced)
	}
	s.states[st.Group] = st
	return nil
}

func (s *faultyStore) Holds(metadata.GroupFence) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.lost
}

func (s *faultyStore) loseSlot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = true
}

func (s *faultyStore) failNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *faultyStore) state(group string) (metadata.GroupState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[group]
	return st, ok
}

// A coordinator that meets a group another coordinator ran (the slot
// moved) carries on with its members and generation, and later
// generations, the empty one included, continue the sequence.
func TestStoredGroupCarriesOn(t *testing.T) {
	t.Parallel()
	store := newFaultyStore()
	h1 := newHarness(t, Config{Store: store})
	res := h1.form(consumerReq("g", "a"), consumerReq("g", "b"))
	plan := h1.stabilize("g", res)
	a, b := res[0].MemberID, res[1].MemberID
	st, ok := store.state("g")
	if !ok || st.Generation != 1 || len(st.Members) != 2 || st.Leader != a || string(st.Members[1].Assignment) != string(plan[b]) {
		t.Fatalf("stored after the first generation: %+v, %v", st, ok)
	}

	h2 := newHarness(t, Config{Store: store})
	wantErr(t, "a's heartbeat at the new coordinator", h2.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), nil)
	d, ok := h2.c.Describe(t.Context(), "g")
	if !ok || d.State != Stable || d.Generation != 1 || d.Leader != a || len(d.Members) != 2 || string(d.Members[1].Assignment) != string(plan[b]) ||
		string(d.Members[0].Metadata) != "a/range" {
		t.Fatalf("loaded group: %+v, %v", d, ok)
	}
	wantErr(t, "b's commit", h2.validateCommit("g", 1, b, ""), nil)
	wantErr(t, "simple commit", h2.validateCommit("g", -1, "", ""), kerr.UnknownMemberID)

	// b stops heartbeating at the new coordinator: its session there
	// expires and a rebalance continues the generations.
	h2.clk.Advance(testSession / 2)
	wantErr(t, "a's heartbeat", h2.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), nil)
	h2.clk.Advance(testSession/2 + 1)
	wantErr(t, "a's heartbeat after b expired", h2.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), kerr.RebalanceInProgress)
	req := consumerReq("g", "a")
	req.MemberID = a
	if r := recv(t, h2.joinAsync(req)); r.Err != nil || r.Generation != 2 {
		t.Fatalf("a's rejoin: %+v", r)
	}
	wantErr(t, "b's commit at its old generation", h2.validateCommit("g", 1, b, ""), kerr.UnknownMemberID)
	wantErr(t, "a's commit at its old generation", h2.validateCommit("g", 1, a, ""), kerr.IllegalGeneration)

	// a leaves: the empty group's generation is stored in the background.
	errs, err := h2.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: a}})
	if err != nil || errs[0] != nil {
		t.Fatalf("leave: %v, %v", errs, err)
	}
	testutil.WaitFor(t, "the empty group stored", func() bool {
		st, ok := store.state("g")
		return ok && st.Generation == 3 && len(st.Members) == 0
	})
	h3 := newHarness(t, Config{Store: store})
	r := h3.form(consumerReq("g", "c"))
	if r[0].Generation != 4 {
		t.Fatalf("first generation at a third coordinator: %d, want 4", r[0].Generation)
	}
}

// The leader's assignment is handed out only once stored: a store failure
// rebalances the group, and a store that says this agent no longer
// coordinates the group makes it drop the group.
func TestSaveFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		want    error
		state   State
		dropped bool
	}{
		{"store unavailable", errors.New("connection refused"), kerr.RebalanceInProgress, PreparingRebalance, false},
		{"fenced", fmt.Errorf("%w: %w", broker.ErrNotCoordinator, metadata.ErrGroupFenced), kerr.NotCoordinator, Dead, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newFaultyStore()
			h := newHarness(t, Config{Store: store})
			res := h.form(consumerReq("g", "a"), consumerReq("g", "b"))
			a, b := res[0].MemberID, res[1].MemberID
			follower := h.syncAsync(SyncRequest{Group: "g", MemberID: b, Generation: 1})
			testutil.WaitFor(t, "follower sync to park", func() bool { return h.parkedSync("g", b) })
			store.failNext(tc.err)
			lr := h.c.Sync(t.Context(), SyncRequest{Group: "g", MemberID: a, Generation: 1, Assignments: map[string][]byte{a: []byte("x"), b: []byte("y")}})
			wantErr(t, "leader's sync", lr.Err, tc.want)
			wantErr(t, "follower's sync", recv(t, follower).Err, tc.want)
			if _, ok := store.state("g"); ok {
				t.Fatal("a refused save stored the generation")
			}
			h.c.mu.Lock()
			g := h.c.groups["g"]
			h.c.mu.Unlock()
			if tc.dropped != (g == nil) {
				t.Fatalf("group in memory after the failed save: %v, want dropped %v", g != nil, tc.dropped)
			}
			if g != nil && h.state("g") != tc.state {
				t.Fatalf("state %v, want %v", h.state("g"), tc.state)
			}
		})
	}
}

// A coordinator that no longer holds the group's slot (lost, or its lease
// deadline passed while it was paused) acts on no timer: a rebalance it
// was waiting on does not complete into a generation of its own, and
// sessions do not expire there. The group is dropped and its waiting
// members are sent to look for the coordinator again.
func TestTimersStopWhenTheSlotIsLost(t *testing.T) {
	t.Parallel()
	store := newFaultyStore()
	h := newHarness(t, Config{Store: store})
	res := h.form(consumerReq("g", "a"), consumerReq("g", "b"))
	h.stabilize("g", res)
	stored, _ := store.state("g")

	// c joins: the barrier waits for a and b until the rebalance timeout.
	req := consumerReq("g", "c")
	req.MemberID = h.memberID(req)
	joined := h.joinAsync(req)
	testutil.WaitFor(t, "c parked at the barrier", func() bool { return h.parkedJoin("g", req.MemberID) })
	store.loseSlot()
	h.clk.Advance(testRebalance + testSession)
	if r := recv(t, joined); !errors.Is(r.Err, kerr.NotCoordinator) {
		t.Fatalf("join waiting at a coordinator that lost the slot: %+v, want NOT_COORDINATOR", r)
	}
	if st, _ := store.state("g"); st.Generation != stored.Generation {
		t.Fatalf("stored generation moved from %d to %d after the slot was lost", stored.Generation, st.Generation)
	}
}

// A load that read the store before the group was dropped from memory
// (its last member left and the empty generation was saved meanwhile)
// does not restore what it read: that older state would hand its next
// generation number out a second time.
func TestStaleLoadIsNotRestored(t *testing.T) {
	t.Parallel()
	store := newFaultyStore()
	h1 := newHarness(t, Config{Store: store})
	res := h1.form(consumerReq("g", "a"))
	h1.stabilize("g", res)
	a := res[0].MemberID

	h2 := newHarness(t, Config{Store: store})
	// The first load at h2 reads generation 1 (a a member) and waits.
	reading, proceed := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	store.mu.Lock()
	store.loaded = func() {
		if first.CompareAndSwap(false, true) {
			close(reading)
			<-proceed
		}
	}
	store.mu.Unlock()
	stale := make(chan error, 1)
	go func() {
		stale <- h2.c.Heartbeat(context.Background(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1})
	}()
	<-reading
	// Meanwhile another request restores the group, a leaves, and the
	// empty generation 2 is saved and the group dropped from memory.
	if errs, err := h2.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: a}}); err != nil || errs[0] != nil {
		t.Fatalf("leave: %v, %v", errs, err)
	}
	testutil.WaitFor(t, "the empty group stored", func() bool {
		st, ok := store.state("g")
		return ok && st.Generation == 2 && len(st.Members) == 0
	})
	testutil.WaitFor(t, "the empty group dropped", func() bool {
		h2.c.mu.Lock()
		defer h2.c.mu.Unlock()
		return h2.c.groups["g"] == nil
	})
	close(proceed)
	if err := <-stale; !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("heartbeat of a member that left, answered from a stale load: %v, want UNKNOWN_MEMBER_ID", err)
	}
	r := h2.form(consumerReq("g", "b"))
	if r[0].Generation != 3 {
		t.Fatalf("next generation %d, want 3", r[0].Generation)
	}
}
