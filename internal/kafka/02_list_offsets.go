package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ListOffsets, key 2.
//
// Versions 1-10. v1 one offset per partition, found by record timestamp
// (v0's list of segment offsets is not served: no current client sends
// it); v2 IsolationLevel; v4 CurrentLeaderEpoch (FENCED_LEADER_EPOCH /
// UNKNOWN_LEADER_EPOCH) and LeaderEpoch in the answer; v6 flexible; v7
// timestamp -3, the record with the largest timestamp (KIP-734); v8 -4, the
// earliest local offset (KIP-405): the log start offset, since every
// record is equally "local"; v9 -5, the latest tiered offset (KIP-1005):
// -1, nothing is tiered; v10 TimeoutMillis, which needs no waiting here.
//
// Timestamps: -2 is the log start offset, -1 the high watermark
// (IsolationLevel 0) or the last stable offset (IsolationLevel 1,
// read_committed: the first offset of the oldest open transaction), and
// t >= 0 the first record whose timestamp is at least t, or offset and
// timestamp -1 when there is none. Under read_committed a record found by
// timestamp (t >= 0, and -3) at or past the last stable offset is not
// answered (offset -1), as in Kafka: a consumer may not be sent past the
// LSO. Any other IsolationLevel is INVALID_REQUEST. A special timestamp sent
// below the version that introduced it, or any other negative one, is
// UNSUPPORTED_VERSION for that partition; a partition listed twice is
// INVALID_REQUEST for both, as in Kafka.
//
// LeaderEpoch is the current lease epoch. (Kafka gives the epoch of the
// record at the offset; clients only use it to check later, with
// OffsetForLeaderEpoch, that the log was not truncated below their
// position, and a StreamHouse log is never truncated, so the current epoch
// answers that check correctly.)
//
// OFFSET_NOT_AVAILABLE (KIP-207) is never needed: Kafka sends it while a
// new leader's high watermark catches up with its followers', but here the
// high watermark is the committed one in the metadata store, which a new
// leader starts from.
//
// Consumers (ReplicaID -1) must ask the leader: another agent answers
// NOT_LEADER_OR_FOLLOWER. The debug replica ID -2 may ask any agent, which
// reads the committed state from the metadata store.

const listOffsetsKey = 2

func init() { register(listOffsetsKey, 1, 10, handleListOffsets) }

// listOffsetsMinVersion is the first version that knows each special
// timestamp.
var listOffsetsMinVersion = map[int64]int16{-1: 1, -2: 1, -3: 7, -4: 8, -5: 9}

func handleListOffsets(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)

	type tpKey struct {
		topic string
		part  int32
	}
	count := make(map[tpKey]int)
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			count[tpKey{rt.Topic, rp.Partition}]++
		}
	}
	topics := make(map[string]metadata.Topic)
	topicErr := make(map[string]int16)
	for _, rt := range req.Topics {
		out := kmsg.NewListOffsetsResponseTopic()
		out.Topic = rt.Topic
		denied := !c.allowedTopic(ctx, acl.OpDescribe, rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			if denied {
				p.ErrorCode, p.Offset, p.Timestamp, p.LeaderEpoch = kerr.TopicAuthorizationFailed.Code, -1, -1, -1
				out.Partitions = append(out.Partitions, p)
				continue
			}
			p.ErrorCode = s.listOffset(ctx, req, rt.Topic, rp, count[tpKey{rt.Topic, rp.Partition}], topics, topicErr, &p)
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// listOffset answers one partition into out and returns its error code.
func (s *Server) listOffset(ctx context.Context, req *kmsg.ListOffsetsRequest, topic string, rp kmsg.ListOffsetsRequestTopicPartition,
	count int, topics map[string]metadata.Topic, topicErr map[string]int16, out *kmsg.ListOffsetsResponseTopicPartition) int16 {
	if count > 1 || req.IsolationLevel < 0 || req.IsolationLevel > 1 {
		return kerr.InvalidRequest.Code
	}
	if v, ok := listOffsetsMinVersion[rp.Timestamp]; rp.Timestamp < 0 && (!ok || req.Version < v) {
		return kerr.UnsupportedVersion.Code
	}
	t, ok := topics[topic]
	if !ok {
		if code, failed := topicErr[topic]; failed {
			return code
		}
		var err error
		if t, err = s.broker.Topic(ctx, topic); err != nil {
			topicErr[topic] = s.codeFor(err, "list offsets")
			return topicErr[topic]
		}
		topics[topic] = t
	}
	if rp.Partition < 0 || rp.Partition >= t.Partitions {
		return kerr.UnknownTopicOrPartition.Code
	}
	epoch, leads := s.broker.LeaderEpoch(metadata.TopicPartition{TopicID: t.ID, Partition: rp.Partition})
	if leads {
		// The epoch is checked before leadership, as in Kafka.
		if ce := rp.CurrentLeaderEpoch; ce >= 0 && ce < epoch {
			return kerr.FencedLeaderEpoch.Code
		} else if ce > epoch {
			return kerr.UnknownLeaderEpoch.Code
		}
	} else if req.ReplicaID != -2 {
		return kerr.NotLeaderForPartition.Code
	}
	out.LeaderEpoch = epoch
	var err error
	switch rp.Timestamp {
	case -2, -4:
		out.Offset, _, err = s.broker.Offsets(ctx, topic, rp.Partition)
	case -1:
		if req.IsolationLevel == 1 {
			_, out.Offset, _, err = s.broker.StableOffsets(ctx, topic, rp.Partition)
		} else {
			_, out.Offset, err = s.broker.Offsets(ctx, topic, rp.Partition)
		}
	case -5:
		out.LeaderEpoch = -1
	default:
		var off, ts int64
		var found bool
		if rp.Timestamp == -3 {
			off, ts, found, err = s.broker.MaxTimestampOffset(ctx, topic, rp.Partition)
		} else {
			off, ts, found, err = s.broker.OffsetForTime(ctx, topic, rp.Partition, rp.Timestamp)
		}
		if found && err == nil && req.IsolationLevel == 1 {
			// Only records below the last stable offset are answered.
			var lso int64
			_, lso, _, err = s.broker.StableOffsets(ctx, topic, rp.Partition)
			found = off < lso
		}
		if found {
			out.Offset, out.Timestamp = off, ts
		} else {
			out.LeaderEpoch = -1
		}
	}
	if err != nil {
		out.Offset, out.Timestamp, out.LeaderEpoch = -1, -1, -1
		return s.codeFor(err, "list offsets")
	}
	return 0
}
