package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// What a group coordinator writes, fenced by its slot's lease. The
// coordinator (internal/group) holds a group under the fence it got when
// it loaded the group; every write it makes for the group (offsets,
// state) carries that fence, and the metadata store checks it in the
// write's own transaction. An agent that lost the slot, or whose lease
// deadline passed, therefore writes nothing for the group, whatever its
// memory still says.

// ErrNotCoordinator means this agent does not coordinate the group: it
// does not lead the group's coordinator slot (or its lease deadline has
// passed), or the metadata store refused a write made under a slot lease
// the agent no longer holds. Kafka's NOT_COORDINATOR.
var ErrNotCoordinator = errors.New("not the group's coordinator")

// GroupFence returns the fence under which this agent coordinates group
// now: the group's slot, this agent and the slot's lease epoch.
// ErrNotCoordinator when this agent does not lead the slot.
func (b *Broker) GroupFence(ctx context.Context, group string) (metadata.GroupFence, error) {
	tp, err := b.GroupSlot(ctx, group)
	if err != nil {
		return metadata.GroupFence{}, err
	}
	epoch, ok := b.plog.LeaderEpoch(tp)
	if !ok {
		return metadata.GroupFence{}, fmt.Errorf("group %s: slot %d: %w", group, tp.Partition, ErrNotCoordinator)
	}
	return metadata.GroupFence{Slot: tp, AgentID: b.agentID, Epoch: epoch}, nil
}

// Holds reports whether this agent still coordinates under fence: it
// leads the slot at the fence's epoch and its lease deadline has not
// passed (partlog.Log.LeaderEpoch is deadline-aware). No I/O.
func (b *Broker) Holds(fence metadata.GroupFence) bool {
	epoch, ok := b.plog.LeaderEpoch(fence.Slot)
	return ok && epoch == fence.Epoch && fence.AgentID == b.agentID
}

// LoadGroup returns the fence under which this agent coordinates group
// (as GroupFence) and the group's stored state, if any. The fence is taken
// before the state is read, so a state saved by a later holder of the slot
// is never loaded under an older fence without the next write failing.
func (b *Broker) LoadGroup(ctx context.Context, group string) (metadata.GroupFence, metadata.GroupState, bool, error) {
	fence, err := b.GroupFence(ctx, group)
	if err != nil {
		return metadata.GroupFence{}, metadata.GroupState{}, false, err
	}
	st, found, err := b.store.LoadGroupState(ctx, group)
	if err != nil {
		return metadata.GroupFence{}, metadata.GroupState{}, false, fmt.Errorf("load group %s: %w", group, err)
	}
	return fence, st, found, nil
}

// SaveGroup stores a group's state under fence.
func (b *Broker) SaveGroup(ctx context.Context, fence metadata.GroupFence, st metadata.GroupState) error {
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = b.now()
	}
	if err := b.store.SaveGroupState(ctx, fence, st); err != nil {
		return fmt.Errorf("save group %s: %w", st.Group, fencedErr(err))
	}
	return nil
}

// CommitGroupOffsets is CommitOffsets for a group coordinator: the write
// happens only if fence still holds, checked in the same transaction.
func (b *Broker) CommitGroupOffsets(ctx context.Context, fence metadata.GroupFence, group string, commits []OffsetCommit) error {
	rows, err := b.offsetRows(ctx, group, commits)
	if err != nil {
		return err
	}
	if err := b.store.CommitFencedGroupOffsets(ctx, fence, rows); err != nil {
		return fmt.Errorf("commit offsets of %s: %w", group, fencedErr(err))
	}
	return nil
}

// fencedErr adds ErrNotCoordinator to a store error that is a fence.
func fencedErr(err error) error {
	if errors.Is(err, metadata.ErrGroupFenced) {
		return fmt.Errorf("%w: %w", ErrNotCoordinator, err)
	}
	return err
}
