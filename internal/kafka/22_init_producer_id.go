package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// InitProducerId, key 22.
//
// Versions 0-5. v1 is v0; v2 flexible; v3 ProducerID and ProducerEpoch of
// the caller (KIP-360); v4 PRODUCER_FENCED (KIP-588; older versions get
// INVALID_PRODUCER_EPOCH instead); v5 (KIP-890) only changes what a
// transactional producer may expect.
//
// Idempotent producers (no TransactionalID) get a new producer ID with
// epoch 0 on every call, including a KIP-360 call that names its current ID
// and epoch: that is what Kafka's coordinator does for a null
// transactional ID ("blindly accept the request and return a new
// producerId"), and a fresh ID can never collide with sequence state left
// on any partition, where a bumped epoch would need that state checked.
// IDs come from the metadata store and are never reused.
//
// A TransactionalID goes to the transaction coordinator (internal/txn): a
// new ID gets a producer ID at epoch 0, a known one its epoch bumped
// (fencing the older producer), after its open transaction is aborted
// (CONCURRENT_TRANSACTIONS until the abort's markers are written). An
// empty TransactionalID is INVALID_REQUEST, as in Kafka; a
// TransactionTimeoutMillis not in 1..transaction.max.timeout.ms is
// INVALID_TRANSACTION_TIMEOUT. An agent that does not coordinate the ID
// answers NOT_COORDINATOR; a store that cannot be reached,
// COORDINATOR_NOT_AVAILABLE.

const initProducerIDKey = 22

func init() { register(initProducerIDKey, 0, 5, handleInitProducerID) }

func handleInitProducerID(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		id := *req.TransactionalID
		if !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(id)) {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			return resp, nil
		}
		if code := checkTransactionalID(id); code != 0 {
			resp.ErrorCode = code
			return resp, nil
		}
		if req.TransactionTimeoutMillis <= 0 || int64(req.TransactionTimeoutMillis) > s.cfg.TransactionMaxTimeout.Milliseconds() {
			resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
			return resp, nil
		}
		co, err := s.coordinator()
		if err == nil {
			resp.ProducerID, resp.ProducerEpoch, err = co.InitProducerID(ctx, id, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch)
		}
		if err != nil {
			resp.ProducerID, resp.ProducerEpoch = -1, -1
			resp.ErrorCode = s.txnCode(err, req.Version, 4, "init producer id")
		}
		return resp, nil
	}
	// An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on
	// some topic (Kafka 3.0+, KIP-679).
	if !c.permits(ctx, acl.OpIdempotentWrite, acl.Cluster()) && !c.allowedAny(ctx, acl.OpWrite, acl.ResourceTopic) {
		c.denied(acl.OpIdempotentWrite, acl.ResourceCluster)
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	id, err := s.broker.NextProducerID(ctx)
	if err != nil {
		// Retriable: the client asks again.
		s.log.Warn("kafka init producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
