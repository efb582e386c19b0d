package broker

import (
	"context"
	"fmt"
	"maps"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Administrative calls the Kafka admin APIs need beyond topics.go: lookups
// that bypass the topic cache (an admin answer must not be a second stale),
// dry runs, and edits computed from the stored config.

// LookupTopic returns a topic by name from the store, uncached.
func (b *Broker) LookupTopic(ctx context.Context, name string) (metadata.Topic, error) {
	t, err := b.userTopic(ctx, name)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("topic %s: %w", name, mapStoreErr(err))
	}
	return t, nil
}

// TopicByID returns a topic by its ID; ErrUnknownTopic if there is none.
func (b *Broker) TopicByID(ctx context.Context, id metadata.TopicID) (metadata.Topic, error) {
	t, err := b.userTopicByID(ctx, id)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("topic id %s: %w", id, mapStoreErr(err))
	}
	return t, nil
}

// TopicConfigHonoured reports whether StreamHouse enforces a topic config;
// the other accepted configs are stored and reported only.
func TopicConfigHonoured(name string) bool { return topicConfigs[name].honoured }

// EditTopicConfig reads the topic's stored config, lets edit change a copy
// of it, validates the result and stores it (as AlterTopicConfig with
// replace semantics). With validateOnly nothing is stored. An error from
// edit is returned as is, so it should carry a broker sentinel
// (ErrInvalidConfig, ErrInvalidRequest). The edit is not atomic with
// respect to concurrent edits of the same topic: the last writer wins.
func (b *Broker) EditTopicConfig(ctx context.Context, name string, edit func(cfg map[string]string) error, validateOnly bool) (metadata.Topic, error) {
	t, err := b.LookupTopic(ctx, name)
	if err != nil {
		return metadata.Topic{}, err
	}
	next := maps.Clone(t.Config)
	if next == nil {
		next = make(map[string]string)
	}
	if err := edit(next); err != nil {
		return metadata.Topic{}, err
	}
	if err := ValidateTopicConfig(next); err != nil {
		return metadata.Topic{}, err
	}
	if validateOnly {
		t.Config = next
		return t, nil
	}
	changes := make(map[string]*string, len(next))
	for k, v := range next {
		changes[k] = &v
	}
	return b.AlterTopicConfig(ctx, name, changes, false)
}

// GrowTopic grows a topic to total partitions, as AddPartitions, after
// checking the topic exists and total is above its current count. With
// validateOnly it only checks.
func (b *Broker) GrowTopic(ctx context.Context, name string, total int32, validateOnly bool) error {
	t, err := b.LookupTopic(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case total == t.Partitions:
		return fmt.Errorf("%w: topic %s already has %d partitions", ErrInvalidPartitions, name, total)
	case total < t.Partitions:
		return fmt.Errorf("%w: topic %s has %d partitions, more than the %d asked for; partitions cannot be removed", ErrInvalidPartitions, name, t.Partitions, total)
	case total > MaxPartitions:
		return fmt.Errorf("%w: %d partitions; at most %d allowed", ErrInvalidPartitions, total, MaxPartitions)
	}
	if validateOnly {
		return nil
	}
	return b.AddPartitions(ctx, name, total)
}

// LeadsPartition reports whether this agent leads a partition now.
// ErrUnknownTopic or ErrUnknownPartition if it does not exist.
func (b *Broker) LeadsPartition(ctx context.Context, topic string, partition int32) (bool, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return false, err
	}
	return b.plog.Leads(tp), nil
}
