package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// OffsetForLeaderEpoch, key 23.
//
// Versions 2-4. v2 CurrentLeaderEpoch (KIP-320); v3 ReplicaID; v4 flexible.
// Consumers use it after a leader change to check that the log was not
// truncated below their position (they compare EndOffset with it).
//
// CurrentLeaderEpoch is checked first: older than the lease epoch is
// FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH. Then, for the requested
// LeaderEpoch:
//   - the current epoch: (epoch, high watermark);
//   - a newer one: (-1, -1), unknown;
//   - an older one: the end offset of that epoch is the first offset
//     written under a newer one. Every stored batch carries the epoch it
//     was appended under (PartitionLeaderEpoch) and epochs only grow along
//     the log, so a binary search over the committed offsets, reading one
//     batch per step, finds it: the answer is (the epoch of the batch just
//     before it, its offset); (requested epoch, log start offset) when even
//     the first batch is newer; (epoch of the last batch, high watermark)
//     when no batch is. Epochs under which nothing was written are not
//     recorded, which is Kafka's answer too when the epoch cache has no
//     entry between them.
//
// Unlike Kafka, the end of an older epoch is moved past the batches of
// newer epochs that no reader returns records from (transaction markers,
// records of aborted transactions; broker.PastHidden). A read_committed
// reader's position moves past them while the epoch it validates with
// stays that of the last record it returned (franz-go's), so with Kafka's
// answer (the first offset of the newer epoch) such a reader is told the
// log lost what it had read past: franz-go reports "lost records" and moves
// back. An end offset past Kafka's never hides a loss, since a StreamHouse
// log is never truncated.
//
// Only the leader answers (NOT_LEADER_OR_FOLLOWER elsewhere). Requests
// from follower brokers (ReplicaID >= 0) are INVALID_REQUEST: StreamHouse
// has no followers.

const offsetForLeaderEpochKey = 23

func init() { register(offsetForLeaderEpochKey, 2, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		out := kmsg.NewOffsetForLeaderEpochResponseTopic()
		out.Topic = rt.Topic
		denied := !c.allowedTopic(ctx, acl.OpDescribe, rt.Topic)
		var t metadata.Topic
		var terr error
		if !denied {
			t, terr = s.broker.Topic(ctx, rt.Topic)
		}
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			p.Partition = rp.Partition
			switch {
			case req.ReplicaID >= 0:
				p.ErrorCode = kerr.InvalidRequest.Code
			case denied:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case terr != nil:
				p.ErrorCode = s.codeFor(terr, "offset for leader epoch")
			case rp.Partition < 0 || rp.Partition >= t.Partitions:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				p.ErrorCode = s.epochEnd(ctx, t, rp, &p)
			}
			out.Partitions = append(out.Partitions, p)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp, nil
}

// epochEnd answers one partition into out and returns its error code.
func (s *Server) epochEnd(ctx context.Context, t metadata.Topic, rp kmsg.OffsetForLeaderEpochRequestTopicPartition, out *kmsg.OffsetForLeaderEpochResponseTopicPartition) int16 {
	epoch, leads := s.broker.LeaderEpoch(metadata.TopicPartition{TopicID: t.ID, Partition: rp.Partition})
	switch ce := rp.CurrentLeaderEpoch; {
	case !leads:
		return kerr.NotLeaderForPartition.Code
	case ce >= 0 && ce < epoch:
		return kerr.FencedLeaderEpoch.Code
	case ce > epoch:
		return kerr.UnknownLeaderEpoch.Code
	}
	logStart, hw, err := s.broker.Offsets(ctx, t.Name, rp.Partition)
	if err != nil {
		return s.codeFor(err, "offset for leader epoch")
	}
	switch {
	case rp.LeaderEpoch == epoch:
		out.LeaderEpoch, out.EndOffset = epoch, hw
		return 0
	case rp.LeaderEpoch > epoch || rp.LeaderEpoch < 0:
		out.LeaderEpoch, out.EndOffset = -1, -1
		return 0
	}
	// The first offset in [logStart, hw) whose batch is newer than the
	// requested epoch.
	lo, hi := logStart, hw
	for lo < hi {
		mid := lo + (hi-lo)/2
		h, err := s.batchAt(ctx, t.Name, rp.Partition, mid)
		if err != nil {
			return s.codeFor(err, "offset for leader epoch")
		}
		if h.PartitionLeaderEpoch > rp.LeaderEpoch {
			// The batch may start after mid if offsets are missing
			// there; the search must still shrink.
			hi = min(max(h.BaseOffset, lo), mid)
		} else {
			lo = h.LastOffset() + 1
		}
	}
	end := min(lo, hw)
	endEpoch := rp.LeaderEpoch
	if end <= logStart {
		end = logStart
	} else {
		h, err := s.batchAt(ctx, t.Name, rp.Partition, end-1)
		if err != nil {
			return s.codeFor(err, "offset for leader epoch")
		}
		endEpoch = h.PartitionLeaderEpoch
	}
	// Past what no reader returns: a reader stands after those batches
	// while still validating with the epoch of its last record.
	// A failed scan answers the high watermark: an end too far is
	// harmless (see PastHidden), while an error here (say, retention
	// moving the log start during the scan) is fatal to franz-go.
	if past, err := s.broker.PastHidden(ctx, t.Name, rp.Partition, end, hw); err != nil {
		s.log.Debug("offset for leader epoch: scan past hidden batches failed; answering the high watermark", "topic", t.Name, "partition", rp.Partition, "err", err)
		end = hw
	} else {
		end = past
	}
	out.LeaderEpoch, out.EndOffset = endEpoch, end
	return 0
}

// batchAt returns the header of the stored batch holding offset.
func (s *Server) batchAt(ctx context.Context, topic string, partition int32, offset int64) (batch.Header, error) {
	res, err := s.broker.Fetch(ctx, topic, partition, offset, 1, 0)
	if err != nil {
		return batch.Header{}, err
	}
	if res.Size == 0 {
		return batch.Header{}, fmt.Errorf("no batch at offset %d of %s/%d", offset, topic, partition)
	}
	return batch.ParseHeader(res.Bytes()) // the batch may span pieces
}
