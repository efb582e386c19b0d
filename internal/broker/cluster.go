package broker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

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
// (its heartbeat lapsed while the lease has not yet) is not listed. Three
// metadata queries whatever the cluster's size: the agents, the topics and
// every partition.
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
	names, parts, err := b.userPartitions(ctx)
	if err != nil {
		return nil, err
	}
	now := b.now()
	for _, p := range parts {
		if p.Leader == "" || !p.LeaseExpiresAt.After(now) {
			continue
		}
		if i, ok := index[p.Leader]; ok {
			out[i].Led = append(out[i].Led, LedPartition{Topic: names[p.TopicID], Partition: p.Partition})
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Led, func(x, y LedPartition) int {
			if c := cmp.Compare(x.Topic, y.Topic); c != 0 {
				return c
			}
			return cmp.Compare(x.Partition, y.Partition)
		})
	}
	return out, nil
}

// userPartitions returns the user topics' names by ID and their
// partitions (two queries). A topic created between the two is left out.
func (b *Broker) userPartitions(ctx context.Context) (map[metadata.TopicID]string, []metadata.PartitionState, error) {
	topics, err := b.ListTopics(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make(map[metadata.TopicID]string, len(topics))
	for _, t := range topics {
		names[t.ID] = t.Name
	}
	all, err := b.store.ListAllPartitions(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list partitions: %w", err)
	}
	return names, slices.DeleteFunc(all, func(p metadata.PartitionState) bool {
		_, ok := names[p.TopicID]
		return !ok
	}), nil
}

// ClusterSummary counts what the cluster holds.
type ClusterSummary struct {
	Topics     int // user topics
	Partitions int // of user topics
	Groups     int // consumer groups registered or with committed offsets
	Agents     int // live agents
	// Messages is the sum of the user topics' high watermarks: the
	// offsets ever assigned (records, and the markers of transactions),
	// retained or not.
	Messages int64
	// StoredBytes is the bytes of record batches the index references
	// (every topic, internal ones included).
	StoredBytes int64
}

// summaryTTL is how long a computed summary is served: its queries (one
// of them sums the whole index) run at most once per summaryTTL per agent,
// however often clients ask.
const summaryTTL = 5 * time.Second

// summaryCache holds the last summary; one computation runs at a time.
type summaryCache struct {
	flight singleflight.Group
	mu     sync.Mutex
	val    ClusterSummary
	at     time.Time // zero: none yet
}

// Summary counts topics, partitions, groups, live agents and messages, and
// the bytes stored: five metadata queries whatever the cluster's size, run
// at most once per summaryTTL (concurrent callers share one run); within
// it, the last summary is served.
func (b *Broker) Summary(ctx context.Context) (ClusterSummary, error) {
	c := &b.summary
	c.mu.Lock()
	if !c.at.IsZero() && b.now().Sub(c.at) < summaryTTL {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err, _ := c.flight.Do("summary", func() (any, error) {
		// Detached from one caller's cancellation: others share the run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s, err := b.computeSummary(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.val, c.at = s, b.now()
		c.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return ClusterSummary{}, err
	}
	return v.(ClusterSummary), nil
}

// computeSummary runs Summary's queries.
func (b *Broker) computeSummary(ctx context.Context) (ClusterSummary, error) {
	var s ClusterSummary
	names, parts, err := b.userPartitions(ctx)
	if err != nil {
		return s, err
	}
	s.Topics, s.Partitions = len(names), len(parts)
	for _, p := range parts {
		s.Messages += p.HighWatermark
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
