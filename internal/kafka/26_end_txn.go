package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn, key 26.
//
// Versions 0-4. v1 is v0; v2 PRODUCER_FENCED (KIP-588; older versions get
// INVALID_PRODUCER_EPOCH); v3 flexible; v4 (KIP-890) only adds
// TRANSACTION_ABORTABLE to the errors a client may see. v5 is KIP-890's
// transactions V2 (an epoch bump per transaction), which needs the
// transaction.version feature: StreamHouse does not advertise it, and
// clients then stay at v4.
//
// The coordinator stores the decision (PrepareCommit or PrepareAbort; the
// transaction's group offsets become visible or are dropped in the same
// metadata transaction) and answers; the markers follow. Ending with no
// open transaction is INVALID_TXN_STATE, except a retried end of the
// transaction just decided the same way, which succeeds, as in Kafka.

const endTxnKey = 26

func init() { register(endTxnKey, 0, 4, handleEndTxn) }

func handleEndTxn(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if code := checkTransactionalID(req.TransactionalID); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	co, err := s.coordinator()
	if err == nil {
		err = co.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	}
	resp.ErrorCode = s.txnCode(err, req.Version, 2, "end txn")
	return resp, nil
}
