package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// CreateTopics, key 19.
//
// Versions 0-7. v1 added ValidateOnly and per-topic ErrorMessage; v2 the
// throttle; v4 lets NumPartitions and ReplicationFactor be -1 for the
// broker defaults (accepted at every version here); v5 (flexible) returns
// the created topic's partition count, replication factor and configs; v7
// its topic ID.
//
// StreamHouse's durability comes from object storage, not replicas, so:
//   - any ReplicationFactor >= 1 (or -1) is accepted and the topic is
//     reported with replication factor 1, which is what Metadata shows
//     (clients routinely ask for 3; refusing would break them for nothing).
//     0 and below -1 are INVALID_REPLICATION_FACTOR.
//   - a manual ReplicaAssignment is accepted when NumPartitions and
//     ReplicationFactor are -1 and it lists partitions 0..n-1 once each with
//     at least one replica: it sets the partition count, and the broker IDs
//     are ignored (placement decides which agent leads each partition).
//     Anything else is INVALID_REPLICA_ASSIGNMENT or INVALID_REQUEST.
//
// A topic named twice in one request is INVALID_REQUEST for every
// occurrence. Configs are validated as a whole (INVALID_CONFIG with the
// reasons in ErrorMessage); a null config value is INVALID_CONFIG. The
// request timeout is not used: creation is complete, with leaders placed,
// when the answer is sent.

func init() { register(19, 0, 7, handleCreateTopics) }

func handleCreateTopics(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.CreateTopicsRequest)
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := make(map[string]int, len(r.Topics))
	for _, t := range r.Topics {
		seen[t.Topic]++
	}
	for _, t := range r.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		if seen[t.Topic] > 1 {
			setCreateTopicErr(&rt, kerr.InvalidRequest.Code, fmt.Sprintf("topic %s is named more than once in the request", t.Topic))
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if !c.mayCreateTopic(ctx, t.Topic) {
			c.createDenied()
			setCreateTopicErr(&rt, kerr.TopicAuthorizationFailed.Code, "not authorized to CREATE topic "+t.Topic+" (CREATE on the cluster or the topic is needed)")
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		c.s.adminCreateTopic(ctx, r, t, &rt)
		if rt.ErrorCode == 0 && len(rt.Configs) > 0 && !c.allowedTopic(ctx, acl.OpDescribeConfigs, t.Topic) {
			// Created, but its configs are not the principal's to see.
			rt.Configs, rt.ConfigErrorCode = nil, kerr.TopicAuthorizationFailed.Code
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func setCreateTopicErr(rt *kmsg.CreateTopicsResponseTopic, code int16, msg string) {
	rt.ErrorCode = code
	rt.ErrorMessage = &msg
}

// adminCreateTopic creates (or validates) one topic and fills its answer.
func (s *Server) adminCreateTopic(ctx context.Context, r *kmsg.CreateTopicsRequest, t kmsg.CreateTopicsRequestTopic, rt *kmsg.CreateTopicsResponseTopic) {
	partitions := t.NumPartitions
	switch {
	case len(t.ReplicaAssignment) > 0:
		if t.NumPartitions != -1 || t.ReplicationFactor != -1 {
			setCreateTopicErr(rt, kerr.InvalidRequest.Code, "with a replica assignment, NumPartitions and ReplicationFactor must be -1")
			return
		}
		n, msg := checkReplicaAssignment(t.ReplicaAssignment)
		if msg != "" {
			setCreateTopicErr(rt, kerr.InvalidReplicaAssignment.Code, msg)
			return
		}
		partitions = n
	case t.NumPartitions == -1:
		partitions = s.cfg.DefaultPartitions
	case t.NumPartitions < 1:
		setCreateTopicErr(rt, kerr.InvalidPartitions.Code, fmt.Sprintf("%d partitions; at least 1 is needed", t.NumPartitions))
		return
	}
	if len(t.ReplicaAssignment) == 0 && t.ReplicationFactor != -1 && t.ReplicationFactor < 1 {
		setCreateTopicErr(rt, kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor %d; at least 1 (or -1 for the default) is needed", t.ReplicationFactor))
		return
	}
	cfg := make(map[string]string, len(t.Configs))
	for _, kv := range t.Configs {
		if kv.Value == nil {
			setCreateTopicErr(rt, kerr.InvalidConfig.Code, fmt.Sprintf("topic config %s has a null value", kv.Name))
			return
		}
		if _, dup := cfg[kv.Name]; dup {
			setCreateTopicErr(rt, kerr.InvalidConfig.Code, fmt.Sprintf("topic config %s is given more than once", kv.Name))
			return
		}
		cfg[kv.Name] = *kv.Value
	}
	created, err := s.broker.CreateTopic(ctx, broker.TopicSpec{Name: t.Topic, Partitions: partitions, Config: cfg}, r.ValidateOnly)
	if err != nil {
		code := errorCode(err)
		if code == kerr.UnknownServerError.Code {
			s.log.Warn("create topic", "topic", t.Topic, "err", err)
		}
		setCreateTopicErr(rt, code, err.Error())
		return
	}
	rt.TopicID = created.ID
	rt.NumPartitions = created.Partitions
	rt.ReplicationFactor = 1
	for _, e := range topicConfigEntries(created.Config, nil) {
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name, rc.Value, rc.ReadOnly, rc.Source, rc.IsSensitive = e.name, &e.value, false, int8(e.source), false
		rt.Configs = append(rt.Configs, rc)
	}
}

// checkReplicaAssignment checks a manual assignment lists partitions
// 0..n-1 once each, each with at least one distinct replica, and returns n
// or why it is refused.
func checkReplicaAssignment(as []kmsg.CreateTopicsRequestTopicReplicaAssignment) (int32, string) {
	seen := make(map[int32]bool, len(as))
	for _, a := range as {
		if a.Partition < 0 || int(a.Partition) >= len(as) || seen[a.Partition] {
			return 0, fmt.Sprintf("the assignment must list partitions 0..%d once each; partition %d is out of range or repeated", len(as)-1, a.Partition)
		}
		seen[a.Partition] = true
		if msg := checkAssignedReplicas(a.Replicas); msg != "" {
			return 0, fmt.Sprintf("partition %d: %s", a.Partition, msg)
		}
	}
	return int32(len(as)), ""
}

// checkAssignedReplicas checks one partition's replica list of a manual assignment
// (the broker IDs themselves are not used).
func checkAssignedReplicas(replicas []int32) string {
	if len(replicas) == 0 {
		return "no replicas assigned"
	}
	seen := make(map[int32]bool, len(replicas))
	for _, id := range replicas {
		if seen[id] {
			return fmt.Sprintf("broker %d is assigned twice", id)
		}
		seen[id] = true
	}
	return ""
}
