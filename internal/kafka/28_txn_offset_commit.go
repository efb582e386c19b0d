package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// TxnOffsetCommit, key 28.
//
// Versions 0-5. v2 LeaderEpoch; v3 (KIP-447) Generation, MemberID and
// InstanceID, flexible, and PRODUCER_FENCED (KIP-588; older versions get
// INVALID_PRODUCER_EPOCH); v4 (KIP-890) only adds TRANSACTION_ABORTABLE
// to the errors a client may see; v5 is transactions V2 (KIP-890 part 2):
// the client sends no AddOffsetsToTxn, and the group is added to the
// producer's transaction (opening it) at the transaction coordinator
// before the offsets are stored (txn.Coordinator.AddImplicitly).
//
// Sent to the GROUP's coordinator (an agent that does not coordinate the
// group answers NOT_COORDINATOR). The offsets are stored as pending
// offsets of the transaction, fenced by the group's coordinator slot
// lease: they become the group's offsets when the transaction commits and
// are dropped when it aborts (metadata.TxnStore.PutTxn). The store checks,
// in the same metadata transaction, that the transaction exists
// (INVALID_PRODUCER_ID_MAPPING otherwise), has the request's producer ID
// and epoch (PRODUCER_FENCED), is ongoing and has added the group with
// AddOffsetsToTxn (INVALID_TXN_STATE).
//
// KIP-447 fencing of zombie consumers, as Kafka's coordinator does it: a
// MemberID the group does not know is UNKNOWN_MEMBER_ID, a Generation
// (when not negative) other than the group's is ILLEGAL_GENERATION, a
// fenced InstanceID is FENCED_INSTANCE_ID. A request naming no member and
// generation -1 (every version below 3) is not checked against the
// membership.
//
// Per partition, as OffsetCommit: an unknown topic or partition is
// UNKNOWN_TOPIC_OR_PARTITION, metadata over 4 KiB OFFSET_METADATA_TOO_LARGE,
// a negative offset INVALID_REQUEST; the other partitions are written.

const txnOffsetCommitKey = 28

func init() { register(txnOffsetCommitKey, 0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewTxnOffsetCommitResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			p.Partition = rp.Partition
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
	}
	if !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(req.TransactionalID)) {
		setAll(kerr.TransactionalIDAuthorizationFailed.Code)
		return resp, nil
	}
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		setAll(kerr.GroupAuthorizationFailed.Code)
		return resp, nil
	}
	if broker.ValidateGroupID(req.Group) != nil {
		setAll(kerr.InvalidGroupID.Code)
		return resp, nil
	}
	if code := checkTransactionalID(req.TransactionalID); code != 0 {
		setAll(code)
		return resp, nil
	}
	if code := s.notCoordinator(ctx, req.Group); code != 0 {
		setAll(code)
		return resp, nil
	}
	var (
		fence metadata.GroupFence
		err   error
	)
	instance := deref(req.InstanceID)
	if req.MemberID == "" && instance == "" && req.Generation < 0 {
		fence, err = s.broker.GroupFence(ctx, req.Group)
	} else {
		fence, err = s.groups.ValidateCommit(ctx, req.Group, req.Generation, req.MemberID, instance)
		if errors.Is(err, kerr.GroupIDNotFound) {
			err = kerr.IllegalGeneration // a generation of a group this coordinator does not run
		}
	}
	if err != nil {
		setAll(s.txnCode(err, req.Version, 3, "txn offset commit"))
		return resp, nil
	}

	var commits []broker.OffsetCommit
	for i, rt := range req.Topics {
		rtopic := &resp.Topics[i]
		topic, err := c.offsetTopic(ctx, acl.OpRead, false, rt.Topic, [16]byte{})
		for j, rp := range rt.Partitions {
			epoch := rp.LeaderEpoch
			if req.Version < 2 {
				epoch = -1
			}
			c, code := offsetCommitOf(topic, err, rp.Partition, rp.Metadata, rp.Offset, epoch)
			if rtopic.Partitions[j].ErrorCode = code; code == 0 {
				commits = append(commits, c)
			}
		}
	}
	if len(commits) == 0 {
		return resp, nil
	}
	if req.Version >= 5 {
		co, err := s.coordinator()
		if err == nil {
			err = co.AddImplicitly(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, nil, req.Group)
		}
		if err != nil {
			setAll(s.implicitAddCode(err, kerr.CoordinatorLoadInProgress.Code, req.Version, 3, "txn offset commit: add the group to the transaction"))
			return resp, nil
		}
	}
	err = s.broker.CommitTxnOffsets(ctx, fence, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, commits)
	if err != nil {
		setAll(s.txnCode(err, req.Version, 3, "txn offset commit"))
	}
	return resp, nil
}
