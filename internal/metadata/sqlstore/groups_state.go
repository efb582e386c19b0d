package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Writes of a group coordinator: offsets and group state, fenced by the
// lease of the group's coordinator slot in the same transaction, so an
// agent that lost the slot (paused past its lease, cut off, or simply
// slower than the handover) can never write for the group again, whatever
// it still believes.

// slotShareLock is appended to the fence's SELECT of the slot's partition
// row. On PostgreSQL a share lock makes a lease takeover (an UPDATE of
// that row) wait for fenced writes that already checked the old holder, so
// none of them can land after the new holder starts; concurrent commits of
// the slot's groups do not block each other. SQLite's writers are serial.
func (s *Store) slotShareLock() string {
	if _, ok := s.b.(*pgBackend); ok {
		return " FOR SHARE"
	}
	return ""
}

// checkGroupFence fails with ErrGroupFenced unless the slot's partition
// row names the fence's agent and epoch.
func (s *Store) checkGroupFence(ctx context.Context, q querier, f metadata.GroupFence) error {
	var (
		leader string
		epoch  int32
	)
	found, err := queryOne(ctx, q, []any{&leader, &epoch},
		`SELECT leader_agent, leader_epoch FROM partitions WHERE topic_id = $1 AND partition_id = $2`+s.slotShareLock(),
		f.Slot.TopicID[:], f.Slot.Partition)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: coordinator slot %s does not exist", metadata.ErrGroupFenced, f.Slot)
	}
	if leader != f.AgentID || epoch != f.Epoch {
		return fmt.Errorf("%w: slot %s is led by %q at epoch %d, not by %q at epoch %d",
			metadata.ErrGroupFenced, f.Slot, leader, epoch, f.AgentID, f.Epoch)
	}
	return nil
}

// CommitFencedGroupOffsets upserts offsets if the fence holds, in one
// transaction.
func (s *Store) CommitFencedGroupOffsets(ctx context.Context, fence metadata.GroupFence, offsets []metadata.GroupOffset) error {
	return s.commitGroupOffsets(ctx, &fence, offsets)
}

// commitGroupOffsets upserts offsets in one transaction, after checking
// the fence when there is one.
func (s *Store) commitGroupOffsets(ctx context.Context, fence *metadata.GroupFence, offsets []metadata.GroupOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	// One statement may not upsert a row twice (PostgreSQL refuses it):
	// the last offset for a key wins, as if committed in order.
	type key struct {
		group, topic string
		partition    int32
	}
	last := make(map[key]int, len(offsets))
	for i, o := range offsets {
		last[key{o.Group, o.Topic, o.Partition}] = i
	}
	kept := make([]metadata.GroupOffset, 0, len(last))
	for i, o := range offsets {
		if last[key{o.Group, o.Topic, o.Partition}] == i {
			kept = append(kept, o)
		}
	}
	// In key order, so two commits of one group lock its rows in the same
	// order.
	slices.SortFunc(kept, func(a, b metadata.GroupOffset) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	rows := make([][]any, 0, len(kept))
	for _, o := range kept {
		committed := o.CommittedAt
		if committed.IsZero() {
			committed = time.Now()
		}
		rows = append(rows, []any{o.Group, o.Topic, o.Partition, o.Offset, o.LeaderEpoch, o.Metadata, toMillis(committed)})
	}
	err := s.b.tx(ctx, func(q querier) error {
		if fence != nil {
			if err := s.checkGroupFence(ctx, q, *fence); err != nil {
				return err
			}
		}
		return insertRows(ctx, q,
			`INSERT INTO group_offsets (group_id, topic, partition_id, committed_offset, leader_epoch, metadata, committed_at)`,
			`ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET committed_offset = excluded.committed_offset,
				leader_epoch = excluded.leader_epoch, metadata = excluded.metadata, committed_at = excluded.committed_at`,
			rows)
	})
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", offsets[0].Group, err)
	}
	return nil
}

// storedMember is one member in group_state.members.
type storedMember struct {
	MemberID         string `json:"member_id"`
	InstanceID       string `json:"instance_id,omitempty"`
	ClientID         string `json:"client_id"`
	ClientHost       string `json:"client_host"`
	SessionTimeoutMs int64  `json:"session_timeout_ms"`
	RebalanceTimeMs  int64  `json:"rebalance_timeout_ms"`
	Subscription     []byte `json:"subscription"`
	Assignment       []byte `json:"assignment"`
}

// SaveGroupState replaces a group's stored state if the fence holds and
// the stored generation is not newer.
func (s *Store) SaveGroupState(ctx context.Context, fence metadata.GroupFence, st metadata.GroupState) error {
	if st.Group == "" {
		return fmt.Errorf("save group state: empty group id")
	}
	members := make([]storedMember, len(st.Members))
	for i, m := range st.Members {
		members[i] = storedMember{
			MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			SessionTimeoutMs: m.SessionTimeout.Milliseconds(), RebalanceTimeMs: m.RebalanceTimeout.Milliseconds(),
			Subscription: m.Subscription, Assignment: m.Assignment,
		}
	}
	enc, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("save state of group %q: %w", st.Group, err)
	}
	updated := st.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	err = s.b.tx(ctx, func(q querier) error {
		if err := s.checkGroupFence(ctx, q, fence); err != nil {
			return err
		}
		n, err := q.exec(ctx, `INSERT INTO group_state (group_id, generation, protocol_type, protocol, leader, members, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (group_id) DO UPDATE SET generation = excluded.generation, protocol_type = excluded.protocol_type,
				protocol = excluded.protocol, leader = excluded.leader, members = excluded.members, updated_at = excluded.updated_at
			WHERE group_state.generation <= excluded.generation`,
			st.Group, st.Generation, st.ProtocolType, st.Protocol, st.Leader, string(enc), toMillis(updated))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: a newer generation than %d is stored", metadata.ErrGroupFenced, st.Generation)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state of group %q: %w", st.Group, err)
	}
	return nil
}

// LoadGroupState returns a group's stored state.
func (s *Store) LoadGroupState(ctx context.Context, group string) (metadata.GroupState, bool, error) {
	st := metadata.GroupState{Group: group}
	var (
		members string
		updated int64
	)
	found, err := queryOne(ctx, s.b.reader(), []any{&st.Generation, &st.ProtocolType, &st.Protocol, &st.Leader, &members, &updated},
		`SELECT generation, protocol_type, protocol, leader, members, updated_at FROM group_state WHERE group_id = $1`, group)
	if err != nil {
		return metadata.GroupState{}, false, fmt.Errorf("load state of group %q: %w", group, err)
	}
	if !found {
		return metadata.GroupState{}, false, nil
	}
	st.UpdatedAt = fromMillis(updated)
	var stored []storedMember
	if err := json.Unmarshal([]byte(members), &stored); err != nil {
		return metadata.GroupState{}, false, fmt.Errorf("load state of group %q: members: %w", group, err)
	}
	for _, m := range stored {
		st.Members = append(st.Members, metadata.GroupMemberState{
			MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			SessionTimeout:   time.Duration(m.SessionTimeoutMs) * time.Millisecond,
			RebalanceTimeout: time.Duration(m.RebalanceTimeMs) * time.Millisecond,
			Subscription:     m.Subscription, Assignment: m.Assignment,
		})
	}
	return st, true, nil
}
