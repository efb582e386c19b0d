package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId, key 22.
//
// Versions 0-5. v1 is v0; v2 flexible; v3 ProducerID and ProducerEpoch of
// the caller (KIP-360); v4 nothing new for us; v5 (KIP-890) only changes
// what a transactional producer may expect.
//
// Idempotent producers (no TransactionalID) get a new producer ID with
// epoch 0 on every call, including a KIP-360 call that names its current ID
// and epoch: that is what Kafka's coordinator does for a null
// transactional ID ("blindly accept the request and return a new
// producerId"), and a fresh ID can never collide with sequence state left
// on any partition, where a bumped epoch would need that state checked.
// IDs come from the metadata store and are never reused.
//
// Transactions are not supported yet. A TransactionalID is answered with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: clients treat it as fatal and say
// the transactional ID cannot be used, so a transactional producer fails
// at once (COORDINATOR_NOT_AVAILABLE, the other candidate, is retriable
// and would make it hang until its timeout). An empty, non-null
// TransactionalID is INVALID_REQUEST, as in Kafka.

const initProducerIDKey = 22

func init() { register(initProducerIDKey, 0, 5, handleInitProducerID) }

func handleInitProducerID(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if id := req.TransactionalID; id != nil {
		if *id == "" {
			resp.ErrorCode = kerr.InvalidRequest.Code
		} else {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		}
		return resp, nil
	}
	id, err := c.s.broker.NextProducerID(ctx)
	if err != nil {
		// Retriable: the client asks again.
		c.s.log.Warn("kafka init producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
