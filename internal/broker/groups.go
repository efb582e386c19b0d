package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ValidateGroupID checks a consumer group ID (Kafka allows any non-empty
// string; we bound its length).
func ValidateGroupID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: group id is empty", ErrInvalidRequest)
	}
	if len(id) > 255 {
		return fmt.Errorf("%w: group id is %d bytes, at most 255 allowed", ErrInvalidRequest, len(id))
	}
	return nil
}

// OffsetCommit is one offset to commit for a group.
type OffsetCommit struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    string
}

// CommitOffsets stores a group's offsets in one transaction, after checking
// each topic and partition exists and each offset is not negative. It is
// not fenced: group coordinators commit with CommitGroupOffsets.
func (b *Broker) CommitOffsets(ctx context.Context, group string, commits []OffsetCommit) error {
	rows, err := b.offsetRows(ctx, group, commits)
	if err != nil {
		return err
	}
	if err := b.store.CommitGroupOffsets(ctx, rows); err != nil {
		return fmt.Errorf("commit offsets of %s: %w", group, err)
	}
	return nil
}

func (b *Broker) offsetRows(ctx context.Context, group string, commits []OffsetCommit) ([]metadata.GroupOffset, error) {
	if err := ValidateGroupID(group); err != nil {
		return nil, err
	}
	now := b.now()
	rows := make([]metadata.GroupOffset, 0, len(commits))
	for _, c := range commits {
		if _, _, err := b.partition(ctx, c.Topic, c.Partition); err != nil {
			return nil, err
		}
		if c.Offset < 0 {
			return nil, fmt.Errorf("%w: offset %d is negative", ErrInvalidRequest, c.Offset)
		}
		rows = append(rows, metadata.GroupOffset{
			Group: group, Topic: c.Topic, Partition: c.Partition, Offset: c.Offset,
			LeaderEpoch: c.LeaderEpoch, Metadata: c.Metadata, CommittedAt: now,
		})
	}
	return rows, nil
}

// GroupOffsets returns a group's committed offsets.
func (b *Broker) GroupOffsets(ctx context.Context, group string) ([]metadata.GroupOffset, error) {
	if err := ValidateGroupID(group); err != nil {
		return nil, err
	}
	offs, err := b.store.FetchGroupOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", group, mapStoreErr(err))
	}
	return offs, nil
}

// PartitionLag is one partition's committed offset and lag for a group.
type PartitionLag struct {
	Topic         string
	Partition     int32
	Committed     int64
	HighWatermark int64
	Lag           int64
	Metadata      string
}

// GroupLag describes a group's offsets with their lag.
type GroupLag struct {
	Group      string
	Partitions []PartitionLag
	TotalLag   int64
}

// DescribeGroupLag returns a group's committed offsets, the high watermark
// of each partition and the lag. ErrUnknownGroup if the group has no
// offsets and does not exist.
func (b *Broker) DescribeGroupLag(ctx context.Context, group string) (GroupLag, error) {
	offs, err := b.GroupOffsets(ctx, group)
	if err != nil {
		return GroupLag{}, err
	}
	if len(offs) == 0 {
		exists, err := b.groupExists(ctx, group)
		if err != nil {
			return GroupLag{}, err
		}
		if !exists {
			return GroupLag{}, fmt.Errorf("group %s: %w", group, ErrUnknownGroup)
		}
	}
	out := GroupLag{Group: group}
	for _, o := range offs {
		pl := PartitionLag{Topic: o.Topic, Partition: o.Partition, Committed: o.Offset, Metadata: o.Metadata}
		_, hw, err := b.Offsets(ctx, o.Topic, o.Partition)
		switch {
		case err == nil:
			pl.HighWatermark = hw
			pl.Lag = max(hw-o.Offset, 0)
		case errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrUnknownPartition):
			// The topic went away; report the offset without lag.
		default:
			return GroupLag{}, err
		}
		out.TotalLag += pl.Lag
		out.Partitions = append(out.Partitions, pl)
	}
	return out, nil
}

func (b *Broker) groupExists(ctx context.Context, group string) (bool, error) {
	groups, err := b.store.ListGroups(ctx)
	if err != nil {
		return false, fmt.Errorf("list groups: %w", err)
	}
	for _, g := range groups {
		if g == group {
			return true, nil
		}
	}
	return false, nil
}

// ListGroups returns every group with its lag.
func (b *Broker) ListGroups(ctx context.Context) ([]GroupLag, error) {
	groups, err := b.store.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]GroupLag, 0, len(groups))
	for _, g := range groups {
		gl, err := b.DescribeGroupLag(ctx, g)
		if errors.Is(err, ErrUnknownGroup) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, gl)
	}
	return out, nil
}

// CreateGroup registers an empty group, so it is listed before any commit.
func (b *Broker) CreateGroup(ctx context.Context, group string) error {
	if err := ValidateGroupID(group); err != nil {
		return err
	}
	if err := b.store.CreateGroup(ctx, group); err != nil {
		if errors.Is(err, metadata.ErrGroupExists) {
			return fmt.Errorf("create group %s: %w", group, ErrGroupExists)
		}
		return fmt.Errorf("create group %s: %w", group, err)
	}
	return nil
}

// DeleteGroup deletes a group and its offsets.
func (b *Broker) DeleteGroup(ctx context.Context, group string) error {
	if err := ValidateGroupID(group); err != nil {
		return err
	}
	if err := b.store.DeleteGroup(ctx, group); err != nil {
		return fmt.Errorf("delete group %s: %w", group, mapStoreErr(err))
	}
	return nil
}
