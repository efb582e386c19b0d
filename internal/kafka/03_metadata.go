package kafka

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Metadata, key 3.
//
// Versions 0-13. v0: an empty topic list means all topics; v1+: null means
// all, empty means none; v1 ControllerID, IsInternal, Rack; v2 ClusterID;
// v4 AllowAutoTopicCreation (always allowed below v4, as in Kafka); v5
// OfflineReplicas; v7 LeaderEpoch; v8 authorized operations (cluster ones
// until v10); v9 flexible; v10 TopicID (topics may be asked for by ID);
// v13 a top-level ErrorCode (KIP-1102), always 0 here.
//
// Brokers are the live agents, each with NodeID(agent ID); this agent is
// always listed, at its advertised address. A partition's leader is the
// agent holding its lease, replicas and ISR are just the leader (the data
// is replicated by the object store, not by agents); a partition whose
// lease holder is not live is LEADER_NOT_AVAILABLE with leader -1. The
// controller is the agent answering, since any agent can serve every admin
// request. Authorized operations, when asked for, are those the
// principal may perform on the cluster or topic (KIP-430).
//
// Authorization (with AUTH_ENABLED): a request for all topics lists only
// those the principal may DESCRIBE; a topic asked for by name that it may
// not DESCRIBE is TOPIC_AUTHORIZATION_FAILED whether it exists or not (no
// ID, no partitions), one asked for by a known ID is too (with the ID, no
// name). Auto-creation needs CREATE on the cluster or the topic, else
// TOPIC_AUTHORIZATION_FAILED, as in Kafka.
//
// An unknown topic is created with cfg.DefaultPartitions when
// cfg.AutoCreateTopics is on and the request allows it, and then described
// like any other (its partitions are led as soon as CreateTopic returns);
// otherwise it is UNKNOWN_TOPIC_OR_PARTITION. A name Kafka would refuse is
// INVALID_TOPIC_EXCEPTION either way.

const metadataKey = 3

// clusterID is reported by Metadata and DescribeCluster. Every agent of a
// cluster must report the same one; the metadata store is what makes them
// one cluster, and there is one store per cluster.
const clusterID = "streamhouse"

func init() { register(metadataKey, 0, 13, handleMetadata) }

// Authorized operation bitfields (KIP-430) with no authorizer: everything a
// topic or the cluster supports.
const (
	allTopicOps = 1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationWrite | 1<<kmsg.ACLOperationCreate |
		1<<kmsg.ACLOperationDelete | 1<<kmsg.ACLOperationAlter | 1<<kmsg.ACLOperationDescribe |
		1<<kmsg.ACLOperationDescribeConfigs | 1<<kmsg.ACLOperationAlterConfigs
	allClusterOps = 1<<kmsg.ACLOperationCreate | 1<<kmsg.ACLOperationAlter | 1<<kmsg.ACLOperationDescribe |
		1<<kmsg.ACLOperationClusterAction | 1<<kmsg.ACLOperationDescribeConfigs | 1<<kmsg.ACLOperationAlterConfigs |
		1<<kmsg.ACLOperationIdempotentWrite | 1<<kmsg.ACLOperationCreateTokens | 1<<kmsg.ACLOperationDescribeTokens
)

func handleMetadata(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	live := s.liveBrokers(ctx)
	for _, b := range live.sorted() {
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = b.node, b.host, b.port, b.rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	cid := clusterID
	resp.ClusterID = &cid
	resp.ControllerID = s.nodeID
	if req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = c.authorizedOps(ctx, acl.Cluster(), allClusterOps)
	}

	allowAuto := s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	all := req.Topics == nil || req.Version == 0 && len(req.Topics) == 0
	if all {
		topics, err := s.broker.ListTopics(ctx)
		if err != nil {
			// Without the topic list the answer would be a lie that the
			// cluster is empty; close the connection so the client retries.
			return nil, err
		}
		for _, t := range topics {
			if c.permits(ctx, acl.OpDescribe, acl.Topic(t.Name)) {
				resp.Topics = append(resp.Topics, c.topicMetadata(ctx, req, t.Name, false, live))
			}
		}
		return resp, nil
	}
	seen := make(map[string]bool, len(req.Topics))
	for _, rt := range req.Topics {
		var name string
		switch {
		case req.Version >= 10 && rt.TopicID != [16]byte{}:
			t, err := s.broker.CachedTopicByID(ctx, rt.TopicID)
			if err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = s.codeFor(err, "metadata")
				if errors.Is(err, broker.ErrUnknownTopic) {
					mt.ErrorCode = kerr.UnknownTopicID.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			name = t.Name
			if !c.allowedTopic(ctx, acl.OpDescribe, name) {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID, mt.ErrorCode = rt.TopicID, kerr.TopicAuthorizationFailed.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		case rt.Topic == nil:
			continue
		default:
			name = *rt.Topic
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		resp.Topics = append(resp.Topics, c.topicMetadata(ctx, req, name, allowAuto, live))
	}
	return resp, nil
}

// topicMetadata describes one topic the principal may DESCRIBE, creating
// it first if allowed.
func (c *conn) topicMetadata(ctx context.Context, req *kmsg.MetadataRequest, name string, allowAuto bool, live liveBrokers) kmsg.MetadataResponseTopic {
	s := c.s
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = &name
	if !c.allowedTopic(ctx, acl.OpDescribe, name) {
		mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		return mt
	}
	if req.IncludeTopicAuthorizedOperations {
		mt.AuthorizedOperations = c.authorizedOps(ctx, acl.Topic(name), allTopicOps)
	}
	if err := broker.ValidateTopicName(name); err != nil {
		mt.ErrorCode = kerr.InvalidTopicException.Code
		return mt
	}
	info, err := s.broker.DescribeTopic(ctx, name)
	if errors.Is(err, broker.ErrUnknownTopic) && allowAuto {
		if !c.mayCreateTopic(ctx, name) {
			c.createDenied()
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			return mt
		}
		if err = s.autoCreate(ctx, name); err == nil {
			info, err = s.broker.DescribeTopic(ctx, name)
		}
	}
	if err != nil {
		mt.ErrorCode = s.codeFor(err, "metadata")
		return mt
	}
	mt.TopicID = info.ID
	parts := info.PartitionStates
	sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, len(parts))
	for _, p := range parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Partition
		mp.LeaderEpoch = p.LeaderEpoch
		if b, ok := live[p.Leader]; ok && p.Leader != "" {
			mp.Leader = b.node
			mp.Replicas = []int32{b.node}
			mp.ISR = []int32{b.node}
		} else {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
			mp.Replicas = []int32{}
			mp.ISR = []int32{}
		}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// autoCreate creates a topic with the default partition count; a topic
// that appeared meanwhile is fine.
func (s *Server) autoCreate(ctx context.Context, name string) error {
	_, err := s.broker.CreateTopic(ctx, broker.TopicSpec{Name: name, Partitions: s.cfg.DefaultPartitions}, false)
	if err != nil && !errors.Is(err, broker.ErrTopicExists) {
		return err
	}
	if err == nil {
		s.log.Info("topic auto-created", "topic", name, "partitions", s.cfg.DefaultPartitions)
	}
	return nil
}

// brokerInfo is one agent as Kafka clients see it.
type brokerInfo struct {
	node int32
	host string
	port int32
	rack *string
}

// liveBrokers maps live agent IDs to their Kafka identity.
type liveBrokers map[string]brokerInfo

func (l liveBrokers) sorted() []brokerInfo {
	out := make([]brokerInfo, 0, len(l))
	for _, b := range l {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out
}

// liveBrokers returns the live agents, always including this one at its
// advertised address. When the store cannot be read, this agent alone is
// returned: clients keep a working connection and ask again.
func (s *Server) liveBrokers(ctx context.Context) liveBrokers {
	out := make(liveBrokers)
	agents, err := s.broker.Agents(ctx)
	if err != nil {
		s.log.Warn("kafka metadata: list agents", "err", err)
	}
	for _, a := range agents {
		if a.Addr == "" {
			continue
		}
		out[a.ID] = agentBroker(a)
	}
	self := s.broker.Self()
	self.Addr = s.cfg.AdvertisedAddr
	out[self.ID] = agentBroker(self)
	return out
}

func agentBroker(a metadata.Agent) brokerInfo {
	host, port := splitAddr(a.Addr)
	b := brokerInfo{node: NodeID(a.ID), host: host, port: port}
	if a.Rack != "" {
		rack := a.Rack
		b.rack = &rack
	}
	return b
}

// leaderHint is where a partition this agent does not lead is led, for the
// CurrentLeader and NodeEndpoints fields of KIP-951 (Produce v10+, Fetch
// v12+/v16+), so clients can move without a Metadata round trip.
type leaderHint struct {
	node, epoch int32
	broker      *brokerInfo // nil if no live leader
}

// leaderHints looks leaders up once per topic for one request.
type leaderHints struct {
	s      *Server
	live   liveBrokers
	topics map[string]broker.TopicInfo
}

func (s *Server) newLeaderHints() *leaderHints {
	return &leaderHints{s: s, topics: make(map[string]broker.TopicInfo)}
}

func (h *leaderHints) get(ctx context.Context, topic string, partition int32) leaderHint {
	out := leaderHint{node: -1, epoch: -1}
	info, ok := h.topics[topic]
	if !ok {
		var err error
		if info, err = h.s.broker.DescribeTopic(ctx, topic); err != nil {
			return out
		}
		h.topics[topic] = info
	}
	if h.live == nil {
		h.live = h.s.liveBrokers(ctx)
	}
	for _, p := range info.PartitionStates {
		if p.Partition != partition {
			continue
		}
		out.epoch = p.LeaderEpoch
		if b, ok := h.live[p.Leader]; ok && p.Leader != "" {
			out.node = b.node
			out.broker = &b
		}
	}
	return out
}

// endpoints returns the brokers of every leader handed out, deduplicated.
func endpoints(hints []leaderHint) []brokerInfo {
	seen := make(map[int32]bool)
	var out []brokerInfo
	for _, h := range hints {
		if h.broker != nil && !seen[h.node] {
			seen[h.node] = true
			out = append(out, *h.broker)
		}
	}
	return out
}
