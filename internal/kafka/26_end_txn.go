package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// EndTxn, key 26.
//
// Versions 0-5. v1 is v0; v2 PRODUCER_FENCED (KIP-588; older versions get
// INVALID_PRODUCER_EPOCH); v3 flexible; v4 (KIP-890) only adds
// TRANSACTION_ABORTABLE to the errors a client may see; v5 is transactions
// V2 (KIP-890 part 2): every end bumps the producer epoch, the response
// carries the producer ID and epoch to use next (a new producer ID at
// epoch 0 when the epoch is exhausted), aborting with nothing open is
// allowed (it just bumps the epoch), and a retry carrying the epoch before
// the bump is recognised (txn.Coordinator.EndTxnV2). Clients send v5 only
// when transaction.version 2 is finalized (18_api_versions.go).
//
// The coordinator stores the decision (PrepareCommit or PrepareAbort; the
// transaction's group offsets become visible or are dropped in the same
// metadata transaction) and answers; the markers follow. Before v5, ending
// with no open transaction is INVALID_TXN_STATE, except a retried end of
// the transaction just decided the same way, which succeeds, as in Kafka.

const endTxnKey = 26

func init() { register(endTxnKey, 0, 5, handleEndTxn) }

func handleEndTxn(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(req.TransactionalID)) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if code := checkTransactionalID(req.TransactionalID); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	co, err := s.coordinator()
	if err == nil {
		if req.Version >= 5 {
			resp.ProducerID, resp.ProducerEpoch, err = co.EndTxnV2(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
		} else {
			err = co.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
		}
	}
	if resp.ErrorCode = s.txnCode(err, req.Version, 2, "end txn"); resp.ErrorCode != 0 {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
	}
	return resp, nil
}
