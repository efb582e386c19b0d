package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Transactions: what the transaction coordinator (internal/txn, through
// its Backend interface) and the front ends need from the agent. A
// transactional ID hashes to the same leased coordinator slots as consumer
// groups (GroupSlot), so the slot leader coordinates both, and every
// coordinator write is fenced by the slot's lease.

// TxnFence returns the fence under which this agent coordinates the
// transactional ID id now; an error wrapping ErrNotCoordinator when it does
// not lead the ID's slot.
func (b *Broker) TxnFence(ctx context.Context, id string) (metadata.GroupFence, error) {
	tp, err := b.GroupSlot(ctx, id)
	if err != nil {
		return metadata.GroupFence{}, err
	}
	epoch, ok := b.plog.LeaderEpoch(tp)
	if !ok {
		return metadata.GroupFence{}, fmt.Errorf("transactional id %s: slot %d: %w", id, tp.Partition, ErrNotCoordinator)
	}
	return metadata.GroupFence{Slot: tp, AgentID: b.agentID, Epoch: epoch}, nil
}

// TxnSlot returns the coordinator slot of the transactional ID id.
func (b *Broker) TxnSlot(ctx context.Context, id string) (metadata.TopicPartition, error) {
	return b.GroupSlot(ctx, id)
}

// TxnCoordinator returns the agent coordinating the transactional ID id:
// the holder of its slot's lease, "" when no live agent holds it, and the
// lease epoch (as GroupCoordinator).
func (b *Broker) TxnCoordinator(ctx context.Context, id string) (agent string, epoch int32, err error) {
	return b.GroupCoordinator(ctx, id)
}

// TxnCoordinatorAgent returns the live agent other than this one that
// coordinates the transactional ID id (the leader of its slot; only its ID
// when it is not among the live agents) and every live agent. ok is false
// when no other agent holds its slot's lease.
func (b *Broker) TxnCoordinatorAgent(ctx context.Context, id string) (coord metadata.Agent, live []metadata.Agent, ok bool, err error) {
	tp, err := b.TxnSlot(ctx, id)
	if err != nil {
		return metadata.Agent{}, nil, false, err
	}
	coord, live, ok, err = b.liveLeader(ctx, tp)
	if err != nil {
		return metadata.Agent{}, nil, false, fmt.Errorf("coordinator of transactional id %s: %w", id, err)
	}
	return coord, live, ok, nil
}

// WriteMarker writes transaction marker m to partition p at its leader and
// returns once it is durable: through the local log when this agent leads
// p, else as a WriteTxnMarkers request (Kafka key 27) to the leader's
// advertised Kafka address. Retriable outcomes are returned as such:
// ErrNotLeader (no live leader, or leadership moved while the request was
// in flight) and errors wrapping metadata.ErrUnavailable (the leader's
// store was unreachable). ErrUnknownTopic/ErrUnknownPartition mean the
// partition no longer exists (nothing to mark). partlog's
// ErrInvalidProducerEpoch and ErrInvalidTxnState are refusals by the log
// or by the leader's marker check, ErrCoordinatorFenced a marker from an
// older coordinator epoch than the last one written for the producer.
func (b *Broker) WriteMarker(ctx context.Context, p metadata.TxnPartition, m partlog.Marker) error {
	tp := p.TP()
	if b.plog.Leads(tp) {
		_, err := b.plog.WriteMarker(ctx, tp, m)
		if !errors.Is(err, partlog.ErrNotLeader) {
			return err
		}
		// Lost meanwhile: the new leader writes it.
	}
	return b.remoteMarker(ctx, p, m)
}

// TxnOpen reports whether producerID has a transaction open at epoch on
// partition p of topic in this agent's log (false when p is not led here).
func (b *Broker) TxnOpen(topicID metadata.TopicID, p int32, producerID int64, epoch int16) bool {
	return b.plog.TxnOpen(metadata.TopicPartition{TopicID: topicID, Partition: p}, producerID, epoch)
}

// WriteLocalMarker writes m to tp only if this agent leads it, else
// ErrNotLeader (the WriteTxnMarkers handler: one hop, never forwarded).
func (b *Broker) WriteLocalMarker(ctx context.Context, tp metadata.TopicPartition, m partlog.Marker) (partlog.MarkerResult, error) {
	return b.plog.WriteMarker(ctx, tp, m)
}

// remoteMarker sends m for p to p's leader over the Kafka protocol.
func (b *Broker) remoteMarker(ctx context.Context, p metadata.TxnPartition, m partlog.Marker) error {
	tp := p.TP()
	t, err := b.store.GetTopicByID(ctx, p.TopicID)
	if err != nil {
		return fmt.Errorf("marker for %s/%d: %w", p.Topic, p.Partition, mapStoreErr(err))
	}
	leader, _, ok, err := b.liveLeader(ctx, tp)
	if err != nil {
		return fmt.Errorf("marker for %s/%d: %w", t.Name, p.Partition, mapStoreErr(err))
	}
	if !ok {
		return fmt.Errorf("marker for %s/%d: no live leader: %w", t.Name, p.Partition, partlog.ErrNotLeader)
	}
	addr := leader.Addr
	if addr == "" {
		return fmt.Errorf("marker for %s/%d: leader %s has no Kafka address: %w", t.Name, p.Partition, leader.ID, partlog.ErrNotLeader)
	}
	cl, err := b.fwd.client(addr)
	if err != nil {
		return fmt.Errorf("marker for %s/%d: %w", t.Name, p.Partition, err)
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	rm.TransactionVersion = m.TransactionVersion
	rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	rt.Topic, rt.Partitions = t.Name, []int32{p.Partition}
	rm.Topics = append(rm.Topics, rt)
	req.Markers = append(req.Markers, rm)
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		// The leader did not answer: as retriable as a store outage.
		return fmt.Errorf("marker for %s/%d to %s at %s: %w: %w", t.Name, p.Partition, leader.ID, addr, metadata.ErrUnavailable, err)
	}
	resp := kresp.(*kmsg.WriteTxnMarkersResponse)
	if len(resp.Markers) != 1 || len(resp.Markers[0].Topics) != 1 || len(resp.Markers[0].Topics[0].Partitions) != 1 {
		return fmt.Errorf("marker for %s/%d to %s: malformed WriteTxnMarkers response", t.Name, p.Partition, leader.ID)
	}
	code := resp.Markers[0].Topics[0].Partitions[0].ErrorCode
	if code == 0 {
		return nil
	}
	return markerError(t.Name, p.Partition, leader.ID, code)
}

// markerError maps a leader's WriteTxnMarkers error code to the broker's
// errors.
func markerError(topic string, p int32, leader string, code int16) error {
	kind := kerr.ErrorForCode(code)
	var base error
	switch code {
	case kerr.NotLeaderForPartition.Code, kerr.NotCoordinator.Code:
		base = partlog.ErrNotLeader
	case kerr.UnknownTopicOrPartition.Code:
		base = ErrUnknownPartition
	case kerr.KafkaStorageError.Code, kerr.CoordinatorNotAvailable.Code, kerr.RequestTimedOut.Code, kerr.CoordinatorLoadInProgress.Code:
		base = metadata.ErrUnavailable
	case kerr.InvalidProducerEpoch.Code, kerr.ProducerFenced.Code:
		base = partlog.ErrInvalidProducerEpoch
	case kerr.InvalidTxnState.Code:
		base = partlog.ErrInvalidTxnState
	case kerr.TransactionCoordinatorFenced.Code:
		base = partlog.ErrCoordinatorFenced
	default:
		return fmt.Errorf("marker for %s/%d: the leader %s answered %w", topic, p, leader, kind)
	}
	return fmt.Errorf("marker for %s/%d: the leader %s answered %v: %w", topic, p, leader, kind, base)
}

// FetchWith reads raw batches (the Kafka path) with options: the
// isolation level decides whether the read stops at the last stable
// offset (ReadCommitted, with the aborted transactions of the range) or at
// the high watermark; both report the LSO.
func (b *Broker) FetchWith(ctx context.Context, topic string, partition int32, offset int64, opts ReadOptions) (ReadResult, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return ReadResult{}, err
	}
	res, err := b.plog.ReadWith(ctx, tp, offset, opts)
	b.metrics.addOut(topic, res.Size)
	return res, err
}

// StableOffsets returns a partition's log start offset, last stable offset
// and high watermark.
func (b *Broker) StableOffsets(ctx context.Context, topic string, partition int32) (logStart, lso, hw int64, err error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, 0, 0, err
	}
	return b.plog.StableOffsets(ctx, tp)
}

// Producers returns a partition's producer state (DescribeProducers).
func (b *Broker) Producers(ctx context.Context, topic string, partition int32) ([]metadata.ProducerState, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	return b.plog.Producers(ctx, tp)
}

// CommitTxnOffsets stores offsets of group as pending offsets of the
// transaction txnID (Kafka's TxnOffsetCommit), fenced by the group
// coordinator's fence: they become the group's offsets when the
// transaction commits and are dropped when it aborts. Errors wrap
// ErrNotCoordinator (fence lost), metadata.ErrTxnNotFound, ErrTxnFenced or
// ErrTxnState.
func (b *Broker) CommitTxnOffsets(ctx context.Context, fence metadata.GroupFence, txnID string, producerID int64, epoch int16, group string, commits []OffsetCommit) error {
	rows, err := b.offsetRows(ctx, group, commits)
	if err != nil {
		return err
	}
	if err := b.store.AddTxnOffsets(ctx, fence, txnID, producerID, epoch, rows); err != nil {
		return fmt.Errorf("transactional offsets of %s for %s: %w", group, txnID, fencedErr(err))
	}
	return nil
}

// PendingTxnOffsets returns the group's transactional offsets not yet
// committed or aborted (OffsetFetch's require_stable).
func (b *Broker) PendingTxnOffsets(ctx context.Context, group string) ([]metadata.GroupOffset, error) {
	if err := ValidateGroupID(group); err != nil {
		return nil, err
	}
	offs, err := b.store.PendingTxnOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("pending transactional offsets of %s: %w", group, err)
	}
	return offs, nil
}
