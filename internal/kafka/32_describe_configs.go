package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// DescribeConfigs, key 32.
//
// Versions 0-4. v0 reports IsDefault; v1 replaced it with Source and added
// IncludeSynonyms; v2 only moved the throttle; v3 added ConfigType and
// IncludeDocumentation; v4 is flexible.
//
// TOPIC resources list every topic config StreamHouse accepts
// (broker.TopicConfigNames): an explicit value has source
// DYNAMIC_TOPIC_CONFIG, the rest Kafka's default with source
// DEFAULT_CONFIG. Synonyms are the topic value (if set) followed by the
// default under the broker's name for it (log.retention.ms for
// retention.ms), as Kafka lists them. Nothing is read-only or sensitive.
//
// BROKER resources describe this agent, read-only: broker configs come from
// environment variables at start and cannot be altered over the protocol.
// The resource name is this agent's node ID; an empty name also means this
// agent (Kafka would answer with the cluster's dynamic defaults, of which
// StreamHouse has none). Another node ID, or a name that is not a number,
// is INVALID_REQUEST: clients send broker resources to that broker.
// BROKER_LOGGER and the other resource types are INVALID_REQUEST.
//
// A null or empty ConfigNames means every config; unknown names are left
// out of the answer, as Kafka does.

func init() { register(32, 0, 4, handleDescribeConfigs) }

// configInfo is what DescribeConfigs says about one config beyond its
// value.
type configInfo struct {
	typ kmsg.ConfigType
	// brokerName is the broker config supplying the topic config's default.
	brokerName string
	doc        string
}

// topicConfigInfo covers every name in broker.TopicConfigNames (a test
// checks it).
var topicConfigInfo = map[string]configInfo{
	"retention.ms":                        {kmsg.ConfigTypeLong, "log.retention.ms", "How long records are kept before they are deleted (-1: forever)."},
	"retention.bytes":                     {kmsg.ConfigTypeLong, "log.retention.bytes", "How many bytes a partition keeps before the oldest records are deleted (-1: no limit)."},
	"cleanup.policy":                      {kmsg.ConfigTypeList, "log.cleanup.policy", "delete (by retention), compact (keep the latest record per key), or both."},
	"max.message.bytes":                   {kmsg.ConfigTypeInt, "message.max.bytes", "The largest record batch the topic accepts, in bytes."},
	"message.timestamp.type":              {kmsg.ConfigTypeString, "log.message.timestamp.type", "CreateTime keeps the producer's timestamp; LogAppendTime stamps records on append."},
	"message.timestamp.before.max.ms":     {kmsg.ConfigTypeLong, "log.message.timestamp.before.max.ms", "With CreateTime, the furthest a record's timestamp may be behind the broker's clock (INVALID_TIMESTAMP beyond)."},
	"message.timestamp.after.max.ms":      {kmsg.ConfigTypeLong, "log.message.timestamp.after.max.ms", "With CreateTime, the furthest a record's timestamp may be ahead of the broker's clock (INVALID_TIMESTAMP beyond); time retention also distrusts stored timestamps further ahead than this."},
	"compression.type":                    {kmsg.ConfigTypeString, "compression.type", "Stored and reported; StreamHouse keeps batches as the producer compressed them."},
	"segment.bytes":                       {kmsg.ConfigTypeInt, "log.segment.bytes", "Stored and reported; StreamHouse sizes its segment objects itself."},
	"segment.ms":                          {kmsg.ConfigTypeLong, "log.roll.ms", "Key compaction: data sealed longer ago than this is never held back as the active part (which is at most object compaction's minimum age, 5 s)."},
	"min.insync.replicas":                 {kmsg.ConfigTypeInt, "min.insync.replicas", "Stored and reported; durability comes from object storage, not replicas."},
	"delete.retention.ms":                 {kmsg.ConfigTypeLong, "log.cleaner.delete.retention.ms", "Key compaction keeps a tombstone (null value) at least this long after it was written (its timestamp and its object's creation), then removes it."},
	"min.compaction.lag.ms":               {kmsg.ConfigTypeLong, "log.cleaner.min.compaction.lag.ms", "Key compaction leaves records younger than this (by timestamp) alone."},
	"max.compaction.lag.ms":               {kmsg.ConfigTypeLong, "log.cleaner.max.compaction.lag.ms", "Key compaction runs a pass, whatever the dirty ratio, once not-yet-compacted data is older than this."},
	"min.cleanable.dirty.ratio":           {kmsg.ConfigTypeDouble, "log.cleaner.min.cleanable.ratio", "Key compaction runs a pass when the bytes not yet key-compacted exceed this share of the cleanable bytes."},
	"message.timestamp.difference.max.ms": {kmsg.ConfigTypeLong, "log.message.timestamp.difference.max.ms", "Stored and reported: the largest allowed gap between a record's timestamp and the broker's clock in Kafka."},
	"unclean.leader.election.enable":      {kmsg.ConfigTypeBoolean, "unclean.leader.election.enable", "Stored and reported; StreamHouse has no replicas to elect from."},
	"flush.messages":                      {kmsg.ConfigTypeLong, "log.flush.interval.messages", "Stored and reported; StreamHouse flushes to object storage on its own schedule."},
	"flush.ms":                            {kmsg.ConfigTypeLong, "log.flush.interval.ms", "Stored and reported; StreamHouse flushes to object storage on its own schedule."},
	"index.interval.bytes":                {kmsg.ConfigTypeInt, "log.index.interval.bytes", "Stored and reported; StreamHouse indexes every batch run."},
	"preallocate":                         {kmsg.ConfigTypeBoolean, "log.preallocate", "Stored and reported; there are no local segment files to preallocate."},
	"segment.index.bytes":                 {kmsg.ConfigTypeInt, "log.index.size.max.bytes", "Stored and reported; the index lives in the metadata store."},
	"segment.jitter.ms":                   {kmsg.ConfigTypeLong, "log.roll.jitter.ms", "Stored and reported; StreamHouse rolls segment objects itself."},
	"file.delete.delay.ms":                {kmsg.ConfigTypeLong, "log.segment.delete.delay.ms", "Stored and reported; unreferenced objects are collected after a grace period."},
	"message.downconversion.enable":       {kmsg.ConfigTypeBoolean, "log.message.downconversion.enable", "Stored and reported; StreamHouse serves record batches as stored."},
	"confluent.value.schema.validation":   {kmsg.ConfigTypeBoolean, "confluent.value.schema.validation", "true: values must carry the Confluent wire format with a schema id registered under {topic}-value (INVALID_RECORD otherwise)."},
}

// configEntry is one described config, independent of message version.
type configEntry struct {
	name     string
	value    string
	source   kmsg.ConfigSource
	readOnly bool
	synonyms []configSynonym
	typ      kmsg.ConfigType
	doc      string
}

type configSynonym struct {
	name   string
	value  string
	source kmsg.ConfigSource
}

// configNameFilter turns a ConfigNames filter into a set; nil means everything.
func configNameFilter(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// topicConfigEntries describes a topic whose explicit config is cfg,
// limited to the names in filter (nil: all), in name order.
func topicConfigEntries(cfg map[string]string, filter map[string]bool) []configEntry {
	var out []configEntry
	for _, name := range broker.TopicConfigNames() {
		if filter != nil && !filter[name] {
			continue
		}
		def, _ := broker.TopicConfigDefault(name)
		info := topicConfigInfo[name]
		if info.typ == kmsg.ConfigTypeUnknown {
			info = configInfo{typ: kmsg.ConfigTypeString, brokerName: name}
		}
		e := configEntry{name: name, value: def, source: kmsg.ConfigSourceDefaultConfig, typ: info.typ, doc: info.doc}
		if v, ok := cfg[name]; ok {
			e.value, e.source = v, kmsg.ConfigSourceDynamicTopicConfig
			e.synonyms = append(e.synonyms, configSynonym{name, v, kmsg.ConfigSourceDynamicTopicConfig})
		}
		e.synonyms = append(e.synonyms, configSynonym{info.brokerName, def, kmsg.ConfigSourceDefaultConfig})
		out = append(out, e)
	}
	return out
}

// brokerConfigEntries describes this agent, read-only, limited to filter
// (nil: all), in name order.
func (s *Server) brokerConfigEntries(filter map[string]bool) []configEntry {
	static := func(name, value string, typ kmsg.ConfigType, doc string) configEntry {
		return configEntry{name: name, value: value, source: kmsg.ConfigSourceStaticBrokerConfig, typ: typ, doc: doc}
	}
	fixed := func(name, value string, typ kmsg.ConfigType, doc string) configEntry {
		return configEntry{name: name, value: value, source: kmsg.ConfigSourceDefaultConfig, typ: typ, doc: doc}
	}
	self := s.broker.Self()
	id := strconv.Itoa(int(s.nodeID))
	entries := []configEntry{
		static("broker.id", id, kmsg.ConfigTypeInt, "This agent's node ID, a stable hash of its agent ID."),
		static("node.id", id, kmsg.ConfigTypeInt, "This agent's node ID, a stable hash of its agent ID."),
		static("advertised.listeners", "PLAINTEXT://"+s.cfg.AdvertisedAddr, kmsg.ConfigTypeList, "The Kafka address handed to clients (KAFKA_ADVERTISED_ADDR)."),
		static("auto.create.topics.enable", strconv.FormatBool(s.cfg.AutoCreateTopics), kmsg.ConfigTypeBoolean, "Whether Metadata and Produce create unknown topics."),
		static("num.partitions", strconv.Itoa(int(s.cfg.DefaultPartitions)), kmsg.ConfigTypeInt, "Partitions of a topic created without a partition count."),
		static("socket.request.max.bytes", strconv.Itoa(int(s.cfg.MaxRequestBytes)), kmsg.ConfigTypeInt, "The largest request accepted, in bytes."),
		fixed("default.replication.factor", "1", kmsg.ConfigTypeInt, "Every partition has one replica, its leader; durability comes from object storage."),
		fixed("offsets.topic.replication.factor", "1", kmsg.ConfigTypeShort, "Consumer group offsets live in the metadata store."),
		fixed("transaction.state.log.replication.factor", "1", kmsg.ConfigTypeShort, "Transaction state lives in the metadata store."),
		fixed("delete.topic.enable", "true", kmsg.ConfigTypeBoolean, "Topics can be deleted."),
	}
	if self.Rack != "" {
		entries = append(entries, static("broker.rack", self.Rack, kmsg.ConfigTypeString, "This agent's rack."))
	}
	// The broker-level defaults of the topic configs.
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		have[e.name] = true
	}
	for _, name := range broker.TopicConfigNames() {
		info, ok := topicConfigInfo[name]
		if !ok || have[info.brokerName] {
			continue
		}
		def, _ := broker.TopicConfigDefault(name)
		entries = append(entries, fixed(info.brokerName, def, info.typ, "Default of topic config "+name+". "+info.doc))
		have[info.brokerName] = true
	}
	out := entries[:0]
	for _, e := range entries {
		if filter == nil || filter[e.name] {
			e.readOnly = true
			e.synonyms = []configSynonym{{e.name, e.value, e.source}}
			out = append(out, e)
		}
	}
	sortEntries(out)
	return out
}

func sortEntries(es []configEntry) {
	slices.SortFunc(es, func(a, b configEntry) int { return strings.Compare(a.name, b.name) })
}

// brokerResource checks a BROKER resource name refers to this agent and
// returns why not otherwise.
func (s *Server) brokerResource(name string) string {
	if name == "" {
		return ""
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return fmt.Sprintf("broker resource name %q is not a node ID", name)
	}
	if int32(id) != s.nodeID {
		return fmt.Sprintf("this is broker %d, not %d; send broker resources to the broker they name", s.nodeID, id)
	}
	return ""
}

func handleDescribeConfigs(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DescribeConfigsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, res := range r.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		entries, code, msg := c.configsDenied(ctx, res.ResourceType, res.ResourceName, acl.OpDescribeConfigs)
		if code == 0 {
			entries, code, msg = c.s.describeResource(ctx, res)
		}
		if code != 0 {
			rr.ErrorCode, rr.ErrorMessage = code, &msg
		}
		for _, e := range entries {
			rr.Configs = append(rr.Configs, e.toKmsg(r))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp, nil
}

// describeResource returns the entries of one resource, or an error code
// and message.
func (s *Server) describeResource(ctx context.Context, res kmsg.DescribeConfigsRequestResource) ([]configEntry, int16, string) {
	filter := configNameFilter(res.ConfigNames)
	switch res.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		if err := broker.ValidateTopicName(res.ResourceName); err != nil {
			return nil, kerr.InvalidTopicException.Code, err.Error()
		}
		t, err := s.broker.LookupTopic(ctx, res.ResourceName)
		if err != nil {
			code := errorCode(err)
			if code == kerr.UnknownServerError.Code {
				s.log.Warn("describe configs", "topic", res.ResourceName, "err", err)
			}
			return nil, code, err.Error()
		}
		return topicConfigEntries(t.Config, filter), 0, ""
	case kmsg.ConfigResourceTypeBroker:
		if msg := s.brokerResource(res.ResourceName); msg != "" {
			return nil, kerr.InvalidRequest.Code, msg
		}
		return s.brokerConfigEntries(filter), 0, ""
	}
	return nil, kerr.InvalidRequest.Code, fmt.Sprintf("StreamHouse describes TOPIC (2) and BROKER (4) configs, not resource type %d", res.ResourceType)
}

func (e configEntry) toKmsg(r *kmsg.DescribeConfigsRequest) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value, c.ReadOnly, c.Source = e.name, &e.value, e.readOnly, e.source
	c.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig
	c.ConfigType = e.typ
	if r.IncludeSynonyms {
		for _, syn := range e.synonyms {
			cs := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			cs.Name, cs.Value, cs.Source = syn.name, &syn.value, syn.source
			c.ConfigSynonyms = append(c.ConfigSynonyms, cs)
		}
	}
	if r.IncludeDocumentation && e.doc != "" {
		c.Documentation = &e.doc
	}
	return c
}
