package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Group coordinator slots (DESIGN §5). A consumer group hashes to one of
// GroupSlots slots, and a slot is leased like a partition: the slots are
// the partitions of the internal topic GroupsTopic, placed, balanced,
// handed over and fenced by the same leases as every other partition. The
// agent leading a group's slot coordinates the group; every agent finds
// that agent in the lease table, so there is never more than one
// coordinator for a group (a lease is held by one agent at a time), and
// coordinators move with the same handover as partitions when agents join
// or leave. Nothing is ever appended to the internal topic, and it is
// hidden from every API: clients cannot see, create, produce to or delete
// it.

const (
	// GroupsTopic is the internal topic whose partitions are the slots.
	GroupsTopic = internalTopicPrefix + "groups"
	// GroupSlots is the number of slots. Fixed: changing it would move
	// every group.
	GroupSlots = 50

	internalTopicPrefix = "__streamhouse_"
)

// IsInternalTopic reports whether name is reserved for StreamHouse itself.
func IsInternalTopic(name string) bool { return strings.HasPrefix(name, internalTopicPrefix) }

// groupSlots caches the internal topic's ID.
type groupSlots struct {
	mu sync.Mutex
	id metadata.TopicID
	ok bool
}

// EnsureGroupSlots creates the slot topic if it does not exist yet (every
// agent calls it at start; the first one creates it).
func (b *Broker) EnsureGroupSlots(ctx context.Context) error {
	t, err := b.store.CreateTopic(ctx, metadata.Topic{Name: GroupsTopic, Partitions: GroupSlots})
	switch {
	case err == nil:
		b.log.Info("group coordinator slots created", "slots", GroupSlots)
	case errors.Is(err, metadata.ErrTopicExists):
		if t, err = b.store.GetTopic(ctx, GroupsTopic); err != nil {
			return fmt.Errorf("group slots: %w", err)
		}
	default:
		return fmt.Errorf("group slots: %w", err)
	}
	if t.Partitions != GroupSlots {
		return fmt.Errorf("group slots: %s has %d partitions, want %d", GroupsTopic, t.Partitions, GroupSlots)
	}
	b.slots.mu.Lock()
	b.slots.id, b.slots.ok = t.ID, true
	b.slots.mu.Unlock()
	b.placeNow(ctx)
	return nil
}

// GroupSlot returns the slot of a group: a partition of GroupsTopic.
func (b *Broker) GroupSlot(ctx context.Context, group string) (metadata.TopicPartition, error) {
	b.slots.mu.Lock()
	id, ok := b.slots.id, b.slots.ok
	b.slots.mu.Unlock()
	if !ok {
		// Not created yet (an agent started without EnsureGroupSlots, as
		// in tests): create it now.
		if err := b.EnsureGroupSlots(ctx); err != nil {
			return metadata.TopicPartition{}, err
		}
		b.slots.mu.Lock()
		id = b.slots.id
		b.slots.mu.Unlock()
	}
	slot := int32(crc32.ChecksumIEEE([]byte(group)) % GroupSlots)
	return metadata.TopicPartition{TopicID: id, Partition: slot}, nil
}

// GroupCoordinator returns the agent coordinating group: the holder of
// its slot's lease, "" when no live agent holds it (the slot is being
// handed over), and the lease epoch, which changes whenever the slot
// changes hands (an agent that sees it change drops what it knew of the
// slot's groups).
func (b *Broker) GroupCoordinator(ctx context.Context, group string) (agent string, epoch int32, err error) {
	tp, err := b.GroupSlot(ctx, group)
	if err != nil {
		return "", 0, err
	}
	if epoch, ok := b.plog.LeaderEpoch(tp); ok {
		return b.agentID, epoch, nil
	}
	p, err := b.store.GetPartition(ctx, tp)
	if err != nil {
		return "", 0, fmt.Errorf("group %s: slot %d: %w", group, tp.Partition, err)
	}
	if p.Leader == "" || p.Leader == b.agentID || !p.LeaseExpiresAt.After(b.now()) {
		return "", 0, nil
	}
	return p.Leader, p.LeaderEpoch, nil
}

// userTopic is store.GetTopic for the topics clients may see: an internal
// topic is not found.
func (b *Broker) userTopic(ctx context.Context, name string) (metadata.Topic, error) {
	if IsInternalTopic(name) {
		return metadata.Topic{}, fmt.Errorf("topic %s: %w", name, metadata.ErrTopicNotFound)
	}
	return b.store.GetTopic(ctx, name)
}

// userTopicByID is store.GetTopicByID for the topics clients may see.
func (b *Broker) userTopicByID(ctx context.Context, id metadata.TopicID) (metadata.Topic, error) {
	t, err := b.store.GetTopicByID(ctx, id)
	if err == nil && IsInternalTopic(t.Name) {
		return metadata.Topic{}, fmt.Errorf("topic id %s: %w", id, metadata.ErrTopicNotFound)
	}
	return t, err
}
