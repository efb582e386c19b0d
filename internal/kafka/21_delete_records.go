package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// DeleteRecords, key 21.
//
// Versions 0-2. v1 only moved the throttle; v2 is flexible. Each partition's
// log start offset moves up to the given offset (-1: the high watermark)
// and the answer's LowWatermark is the resulting log start offset (an
// offset below the current one changes nothing). An offset above the high
// watermark, or below -1, is OFFSET_OUT_OF_RANGE. Clients send each
// partition to its leader; a partition this agent does not lead is
// NOT_LEADER_FOR_PARTITION, so the client refreshes its metadata and
// retries. The request timeout is not used: the new log start offset is in
// the metadata store when the answer is sent.

func init() { register(21, 0, 2, handleDeleteRecords) }

func handleDeleteRecords(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.DeleteRecordsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		denied := !c.allowedTopic(ctx, acl.OpDelete, t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LowWatermark = -1
			if denied {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			lw, err := c.s.adminDeleteRecords(ctx, t.Topic, p.Partition, p.Offset)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				if rp.ErrorCode == kerr.UnknownServerError.Code {
					c.s.log.Warn("delete records", "topic", t.Topic, "partition", p.Partition, "err", err)
				}
			} else {
				rp.LowWatermark = lw
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (s *Server) adminDeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error) {
	leads, err := s.broker.LeadsPartition(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	if !leads {
		return 0, kerr.NotLeaderForPartition
	}
	if offset < -1 {
		return 0, kerr.OffsetOutOfRange
	}
	return s.broker.DeleteRecords(ctx, topic, partition, offset)
}
