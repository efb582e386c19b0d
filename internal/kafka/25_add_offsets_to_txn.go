package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// AddOffsetsToTxn, key 25.
//
// Versions 0-4. v1 is v0; v2 PRODUCER_FENCED (KIP-588; older versions get
// INVALID_PRODUCER_EPOCH); v3 flexible; v4 (KIP-890) only adds
// TRANSACTION_ABORTABLE to the errors a client may see.
//
// Adds the consumer group to the producer's transaction, so that its
// TxnOffsetCommit offsets (sent to the group's coordinator) are committed
// or dropped with the transaction. An empty or oversized group ID is
// INVALID_GROUP_ID.

const addOffsetsToTxnKey = 25

func init() { register(addOffsetsToTxnKey, 0, 4, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(req.TransactionalID)) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if code := checkTransactionalID(req.TransactionalID); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	if broker.ValidateGroupID(req.Group) != nil {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	co, err := s.coordinator()
	if err == nil {
		err = co.AddOffsets(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
	}
	resp.ErrorCode = s.txnCode(err, req.Version, 2, "add offsets to txn")
	return resp, nil
}
