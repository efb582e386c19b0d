package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// LedPartition names a partition of a user topic.
type LedPartition struct {
	Topic     string
	Partition int32
}

// AgentLoad is a live agent with the partitions of user topics it leads
// under a live lease, ordered by topic and partition.
type AgentLoad struct {
	metadata.Agent
	Led []LedPartition
}

// ClusterAgents returns the live agents (as Agents does, by ID) with the
// partitions each leads. A partition whose lease holder is not a live agent
// (its heartbeat lapsed while the lease has not yet) is not listed. It
// reads the agents, the topics and each topic's partitions: one query per
// topic, as placement does.
func (b *Broker) ClusterAgents(ctx context.Context) ([]AgentLoad, error) {
	agents, err := b.Agents(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AgentLoad, len(agents))
	index := make(map[string]int, len(agents))
	for i, a := range agents {
		out[i].Agent = a
		index[a.ID] = i
	}
	topics, err := b.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	now := b.now()
	for _, t := range topics {
		parts, err := b.store.ListPartitions(ctx, t.ID)
		if errors.Is(err, metadata.ErrTopicNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("topic %s: partitions: %w", t.Name, err)
		}
		for _, p := range parts {
			if p.Leader == "" || !p.LeaseExpiresAt.After(now) {
				continue
			}
			if i, ok := index[p.Leader]; ok {
				out[i].Led = append(out[i].Led, LedPartition{Topic: t.Name, Partition: p.Partition})
			}
		}
	}
	return out, nil
}

// ClusterSummary counts what the cluster holds.
type ClusterSummary struct {
	Topics     int // user topics
	Partitions int // of user topics
	Groups     int // consumer groups registered or with committed offsets
	Agents     int // live agents
	// StoredBytes is the bytes of record batches the index references
	// (every topic, internal ones included).
	StoredBytes int64
}

// Summary counts topics, partitions, groups and live agents, and the bytes
// stored: four metadata queries whatever the cluster's size.
func (b *Broker) Summary(ctx context.Context) (ClusterSummary, error) {
	var s ClusterSummary
	topics, err := b.ListTopics(ctx)
	if err != nil {
		return s, err
	}
	s.Topics = len(topics)
	for _, t := range topics {
		s.Partitions += int(t.Partitions)
	}
	groups, err := b.store.ListGroups(ctx)
	if err != nil {
		return s, fmt.Errorf("list groups: %w", err)
	}
	s.Groups = len(groups)
	agents, err := b.Agents(ctx)
	if err != nil {
		return s, err
	}
	s.Agents = len(agents)
	if s.StoredBytes, err = b.store.StoredBytes(ctx); err != nil {
		return s, fmt.Errorf("stored bytes: %w", err)
	}
	return s, nil
}
