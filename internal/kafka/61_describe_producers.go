package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// DescribeProducers, key 61 (KIP-664).
//
// Version 0 (flexible). For each partition, the producers the log keeps
// state for (idempotent and transactional): producer ID and epoch, the
// last sequence and timestamp of its last batch (-1 when none is kept),
// the coordinator epoch of the last marker written for it (-1 if none),
// and the first offset of its transaction open on the partition (-1 if
// none; what holds the last stable offset back, the thing an operator
// looks for when read_committed consumers stall). Only the partition's
// leader answers (its state includes appends not committed yet), as in
// Kafka: another agent answers NOT_LEADER_OR_FOLLOWER.

const describeProducersKey = 61

func init() { register(describeProducersKey, 0, 0, handleDescribeProducers) }

func handleDescribeProducers(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewDescribeProducersResponseTopic()
		ot.Topic = rt.Topic
		denied := !c.allowedTopic(ctx, acl.OpRead, rt.Topic)
		var t metadata.Topic
		var terr error
		if !denied {
			t, terr = s.broker.Topic(ctx, rt.Topic)
		}
		for _, p := range rt.Partitions {
			op := kmsg.NewDescribeProducersResponseTopicPartition()
			op.Partition = p
			switch {
			case denied:
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case terr != nil:
				op.ErrorCode = s.codeFor(terr, "describe producers")
			case p < 0 || p >= t.Partitions:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !s.broker.Leads(metadata.TopicPartition{TopicID: t.ID, Partition: p}):
				op.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				producers, err := s.broker.Producers(ctx, t.Name, p)
				if err != nil {
					op.ErrorCode = s.codeFor(err, "describe producers")
					break
				}
				for _, ps := range producers {
					op.ActiveProducers = append(op.ActiveProducers, activeProducer(ps))
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, nil
}

func activeProducer(ps metadata.ProducerState) kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
	ap.ProducerID, ap.ProducerEpoch = ps.ProducerID, int32(ps.Epoch)
	ap.LastSequence, ap.LastTimestamp = -1, -1
	if n := len(ps.Batches); n > 0 {
		last := ps.Batches[n-1]
		ap.LastSequence, ap.LastTimestamp = last.LastSeq, last.Timestamp
	}
	ap.CoordinatorEpoch = ps.CoordinatorEpoch
	ap.CurrentTxnStartOffset = -1
	if ps.InTxn {
		ap.CurrentTxnStartOffset = ps.TxnFirstOffset
	}
	return ap
}
