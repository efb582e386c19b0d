package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// MaxTopicNameLength is Kafka's limit.
const MaxTopicNameLength = 249

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", ErrInvalidTopic, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: topic name is %d characters, at most %d allowed", ErrInvalidTopic, len(name), MaxTopicNameLength)
	case IsInternalTopic(name):
		return fmt.Errorf("%w: topic names starting with %q are reserved", ErrInvalidTopic, internalTopicPrefix)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q has %q; only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// topicConfig describes one topic config StreamHouse accepts.
type topicConfig struct {
	def      string
	validate func(string) error
	honoured bool // enforced (the rest are stored and reported only)
}

func intAtLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
	}
}

func cleanupPolicy(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
			return fmt.Errorf("%q is not a list of delete and compact", v)
		}
	}
	return nil
}

func anyValue(string) error { return nil }

// ratio accepts a number from 0 to 1 (min.cleanable.dirty.ratio).
func ratio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("%q is not a number from 0 to 1", v)
	}
	return nil
}

// TopicConfigs are the topic configs StreamHouse accepts, with Kafka's
// defaults. Unknown names are refused, as Kafka does.
var topicConfigs = map[string]topicConfig{
	"retention.ms":                        {def: "604800000", validate: intAtLeast(-1), honoured: true},
	"retention.bytes":                     {def: "-1", validate: intAtLeast(-1), honoured: true},
	"cleanup.policy":                      {def: "delete", validate: cleanupPolicy, honoured: true},
	"max.message.bytes":                   {def: "1048588", validate: intAtLeast(0), honoured: true},
	"message.timestamp.type":              {def: "CreateTime", validate: oneOf("CreateTime", "LogAppendTime"), honoured: true},
	"message.timestamp.before.max.ms":     {def: "9223372036854775807", validate: intAtLeast(0), honoured: true},
	"message.timestamp.after.max.ms":      {def: "3600000", validate: intAtLeast(0), honoured: true},
	"compression.type":                    {def: "producer", validate: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	"segment.bytes":                       {def: "1073741824", validate: intAtLeast(14)},
	"segment.ms":                          {def: "604800000", validate: intAtLeast(1), honoured: true},
	"min.insync.replicas":                 {def: "1", validate: intAtLeast(1)},
	"delete.retention.ms":                 {def: "86400000", validate: intAtLeast(0), honoured: true},
	"min.compaction.lag.ms":               {def: "0", validate: intAtLeast(0), honoured: true},
	"max.compaction.lag.ms":               {def: "9223372036854775807", validate: intAtLeast(1), honoured: true},
	"min.cleanable.dirty.ratio":           {def: "0.5", validate: ratio, honoured: true},
	"message.timestamp.difference.max.ms": {def: "9223372036854775807", validate: intAtLeast(0)},
	"unclean.leader.election.enable":      {def: "false", validate: oneOf("true", "false")},
	"flush.messages":                      {def: "9223372036854775807", validate: intAtLeast(1)},
	"flush.ms":                            {def: "9223372036854775807", validate: intAtLeast(0)},
	"index.interval.bytes":                {def: "4096", validate: intAtLeast(0)},
	"preallocate":                         {def: "false", validate: oneOf("true", "false")},
	"segment.index.bytes":                 {def: "10485760", validate: intAtLeast(4)},
	"segment.jitter.ms":                   {def: "0", validate: intAtLeast(0)},
	"file.delete.delay.ms":                {def: "60000", validate: intAtLeast(0)},
	"message.downconversion.enable":       {def: "true", validate: oneOf("true", "false")},
	SchemaValidationConfig:                {def: "false", validate: oneOf("true", "false"), honoured: true},
}

// ValidateTopicConfig checks every name and value of cfg.
func ValidateTopicConfig(cfg map[string]string) error {
	var errs []error
	names := make([]string, 0, len(cfg))
	for k := range cfg {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		tc, ok := topicConfigs[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown topic config %q", k))
			continue
		}
		if err := tc.validate(cfg[k]); err != nil {
			errs = append(errs, fmt.Errorf("topic config %s: %w", k, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// TopicConfigDefault returns Kafka's default for a known topic config.
func TopicConfigDefault(name string) (string, bool) {
	tc, ok := topicConfigs[name]
	return tc.def, ok
}

// TopicConfigNames lists every accepted topic config, sorted.
func TopicConfigNames() []string {
	out := make([]string, 0, len(topicConfigs))
	for k := range topicConfigs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TopicSpec is a request to create a topic.
type TopicSpec struct {
	Name       string
	Partitions int32
	Config     map[string]string
}

// TopicInfo is a topic with its partitions' state.
type TopicInfo struct {
	metadata.Topic
	PartitionStates []PartitionInfo
}

// PartitionInfo is one partition as clients see it.
type PartitionInfo struct {
	Partition      int32
	Leader         string // agent ID, "" if none
	LeaderEpoch    int32
	LogStartOffset int64
	HighWatermark  int64
}

// MaxPartitions bounds the partitions of one topic.
const MaxPartitions = 100000

// CreateTopic validates and creates a topic, then leads its partitions
// according to the placement rules. With validateOnly it only validates.
func (b *Broker) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (metadata.Topic, error) {
	if err := ValidateTopicName(spec.Name); err != nil {
		return metadata.Topic{}, err
	}
	if spec.Partitions < 1 || spec.Partitions > MaxPartitions {
		return metadata.Topic{}, fmt.Errorf("%w: %d partitions; between 1 and %d allowed", ErrInvalidPartitions, spec.Partitions, MaxPartitions)
	}
	if err := ValidateTopicConfig(spec.Config); err != nil {
		return metadata.Topic{}, err
	}
	if validateOnly {
		if _, err := b.store.GetTopic(ctx, spec.Name); err == nil {
			return metadata.Topic{}, fmt.Errorf("create topic %s: %w", spec.Name, ErrTopicExists)
		} else if !errors.Is(err, metadata.ErrTopicNotFound) {
			return metadata.Topic{}, fmt.Errorf("create topic %s: %w", spec.Name, err)
		}
		return metadata.Topic{Name: spec.Name, Partitions: spec.Partitions, Config: spec.Config}, nil
	}
	t, err := b.store.CreateTopic(ctx, metadata.Topic{Name: spec.Name, Partitions: spec.Partitions, Config: spec.Config})
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("create topic %s: %w", spec.Name, mapStoreErr(err))
	}
	b.forgetTopic(spec.Name)
	b.log.Info("topic created", "topic", t.Name, "partitions", t.Partitions)
	b.placeNow(ctx)
	return t, nil
}

// Topic returns a topic by name (cached briefly).
func (b *Broker) Topic(ctx context.Context, name string) (metadata.Topic, error) {
	if t, ok := b.cachedTopic(name); ok {
		return t, nil
	}
	t, err := b.userTopic(ctx, name)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("topic %s: %w", name, mapStoreErr(err))
	}
	b.cacheTopic(t)
	return t, nil
}

// ListTopics returns every topic, by name.
func (b *Broker) ListTopics(ctx context.Context) ([]metadata.Topic, error) {
	ts, err := b.store.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return slices.DeleteFunc(ts, func(t metadata.Topic) bool { return IsInternalTopic(t.Name) }), nil
}

// DescribeTopic returns a topic with the state of each partition.
func (b *Broker) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	t, err := b.userTopic(ctx, name)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("topic %s: %w", name, mapStoreErr(err))
	}
	parts, err := b.store.ListPartitions(ctx, t.ID)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("topic %s: partitions: %w", name, err)
	}
	info := TopicInfo{Topic: t}
	now := b.now()
	for _, p := range parts {
		pi := PartitionInfo{Partition: p.Partition, LeaderEpoch: p.LeaderEpoch, LogStartOffset: p.LogStartOffset, HighWatermark: p.HighWatermark}
		if p.Leader != "" && p.LeaseExpiresAt.After(now) {
			pi.Leader = p.Leader
		}
		info.PartitionStates = append(info.PartitionStates, pi)
	}
	return info, nil
}

// DeleteTopic deletes a topic; its objects are collected later.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	t, err := b.userTopic(ctx, name)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", name, mapStoreErr(err))
	}
	for p := int32(0); p < t.Partitions; p++ {
		b.plog.Forget(metadata.TopicPartition{TopicID: t.ID, Partition: p})
	}
	if err := b.store.DeleteTopic(ctx, name); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, mapStoreErr(err))
	}
	b.forgetTopic(name)
	b.log.Info("topic deleted", "topic", name)
	return nil
}

// AlterTopicConfig replaces (incremental=false) or merges (incremental=true,
// an empty value deleting the key) the topic's config.
func (b *Broker) AlterTopicConfig(ctx context.Context, name string, changes map[string]*string, incremental bool) (metadata.Topic, error) {
	t, err := b.userTopic(ctx, name)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("alter topic %s: %w", name, mapStoreErr(err))
	}
	next := make(map[string]string)
	if incremental {
		for k, v := range t.Config {
			next[k] = v
		}
	}
	for k, v := range changes {
		if v == nil {
			delete(next, k)
		} else {
			next[k] = *v
		}
	}
	if err := ValidateTopicConfig(next); err != nil {
		return metadata.Topic{}, err
	}
	if err := b.store.UpdateTopicConfig(ctx, name, next); err != nil {
		return metadata.Topic{}, fmt.Errorf("alter topic %s: %w", name, mapStoreErr(err))
	}
	t.Config = next
	b.forgetTopic(name)
	b.plog.UpdateTopic(t)
	return t, nil
}

// AddPartitions grows a topic to total partitions.
func (b *Broker) AddPartitions(ctx context.Context, name string, total int32) error {
	if total > MaxPartitions {
		return fmt.Errorf("%w: %d partitions; at most %d allowed", ErrInvalidPartitions, total, MaxPartitions)
	}
	if err := b.store.AddPartitions(ctx, name, total); err != nil {
		return fmt.Errorf("add partitions to %s: %w", name, mapStoreErr(err))
	}
	b.forgetTopic(name)
	b.placeNow(ctx)
	return nil
}
