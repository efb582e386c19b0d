package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// WriteTxnMarkers, key 27.
//
// Versions 0-2 (v1 flexible; v2 TransactionVersion, KIP-1228: 2 for a
// transactions V2 marker, whose epoch is above every batch of its
// transaction, so a late retry of it cannot close the producer's next
// transaction; see partlog.Marker). Sent by a transaction coordinator to the
// leader of each partition of a decided transaction (broker.WriteMarker,
// when another agent leads the partition). Each marker is checked with the
// coordinator's stored decision first (txn.Coordinator.CheckMarker: the
// producer's transaction is decided that way at that epoch and includes
// the partition), so a WriteTxnMarkers from anything else, or for a
// transaction not yet decided, changes nothing: INVALID_TXN_STATE. Only
// the partition's leader writes: any other agent answers
// NOT_LEADER_OR_FOLLOWER and the coordinator retries at the new leader. A
// marker for a producer with no transaction open on the partition (already
// written) succeeds without writing. Errors are per partition. Writing
// the markers of one request is bounded by markerHandleTimeout (the
// coordinator's default marker timeout, txn.Config.MarkerTimeout), so a
// request the coordinator gave up on is not still writing when its retry
// arrives.

const writeTxnMarkersKey = 27

func init() { register(writeTxnMarkersKey, 0, 2, handleWriteTxnMarkers) }

// markerHandleTimeout bounds one WriteTxnMarkers request's writes.
const markerHandleTimeout = txn.DefaultMarkerTimeout

func handleWriteTxnMarkers(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	co, coErr := s.coordinator()
	// Only agents write markers: CLUSTER_ACTION on the cluster (the
	// agents' own users have it), else CLUSTER_AUTHORIZATION_FAILED for
	// every partition.
	denied := !c.allowed(ctx, acl.OpClusterAction, acl.Cluster())
	ctx, cancel := context.WithTimeout(ctx, markerHandleTimeout)
	defer cancel()
	for _, rm := range req.Markers {
		om := kmsg.NewWriteTxnMarkersResponseMarker()
		om.ProducerID = rm.ProducerID
		m := broker.Marker{ProducerID: rm.ProducerID, ProducerEpoch: rm.ProducerEpoch, Commit: rm.Committed,
			CoordinatorEpoch: rm.CoordinatorEpoch, TransactionVersion: rm.TransactionVersion}
		for _, rt := range rm.Topics {
			ot := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			ot.Topic = rt.Topic
			var t metadata.Topic
			var terr error
			if !denied {
				t, terr = s.broker.Topic(ctx, rt.Topic)
			}
			for _, p := range rt.Partitions {
				op := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				op.Partition = p
				switch {
				case denied:
					op.ErrorCode = kerr.ClusterAuthorizationFailed.Code
				case coErr != nil:
					op.ErrorCode = kerr.CoordinatorNotAvailable.Code
				case terr != nil:
					op.ErrorCode = s.codeFor(terr, "write txn markers")
				case p < 0 || p >= t.Partitions:
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					op.ErrorCode = s.writeMarker(ctx, co, t, p, m)
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			om.Topics = append(om.Topics, ot)
		}
		resp.Markers = append(resp.Markers, om)
	}
	return resp, nil
}

// writeMarker checks and writes one marker to partition p of t, which this
// agent must lead.
func (s *Server) writeMarker(ctx context.Context, co *txn.Coordinator, t metadata.Topic, p int32, m broker.Marker) int16 {
	tp := metadata.TopicPartition{TopicID: t.ID, Partition: p}
	if !s.broker.Leads(tp) {
		return kerr.NotLeaderForPartition.Code
	}
	if err := co.CheckMarker(ctx, tp, m); err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return ke.Code
		}
		return s.codeFor(err, "write txn markers")
	}
	_, err := s.broker.WriteLocalMarker(ctx, tp, m)
	return s.codeFor(err, "write txn markers")
}
