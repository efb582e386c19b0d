package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// FindCoordinator, key 10.
//
// Versions 0-6. v1 CoordinatorType (0 group, 1 transaction) and
// ErrorMessage; v3 flexible; v4 (KIP-699) batches CoordinatorKeys and
// answers per key; v5 only adds TRANSACTION_ABORTABLE to the possible
// errors; v6 (KIP-932) admits share group keys (type 2).
//
// A group's coordinator is the agent holding the lease of the group's
// coordinator slot (coordinator_choice.go), named by NodeID(agent ID) at
// its advertised address; while the slot is being handed over the answer
// is COORDINATOR_NOT_AVAILABLE, which clients retry.
// A transactional ID (key type 1) hashes to the same slots, and its
// coordinator is found the same way (internal/txn runs the IDs of the
// slots an agent leads); an empty transactional ID is INVALID_REQUEST.
// Share groups are not supported: INVALID_REQUEST.

const findCoordinatorKey = 10

func init() { register(findCoordinatorKey, 0, 6, handleFindCoordinator) }

const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

func handleFindCoordinator(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.Version < 4 {
		co := c.coordinatorFor(ctx, req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = co.ErrorCode, co.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = co.NodeID, co.Host, co.Port
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, c.coordinatorFor(ctx, req.CoordinatorType, key))
	}
	return resp, nil
}

// coordinatorFor answers one key: DESCRIBE on the group or transactional
// id is needed (GROUP_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
func (c *conn) coordinatorFor(ctx context.Context, keyType int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	s := c.s
	co := kmsg.NewFindCoordinatorResponseCoordinator()
	co.Key = key
	co.NodeID = -1
	switch keyType {
	case coordinatorGroup, coordinatorTransaction:
		if keyType == coordinatorGroup && !c.allowed(ctx, acl.OpDescribe, acl.Group(key)) {
			co.ErrorCode, co.ErrorMessage = kerr.GroupAuthorizationFailed.Code, kmsg.StringPtr("not authorized to DESCRIBE group "+key)
			break
		}
		if keyType == coordinatorTransaction && !c.allowed(ctx, acl.OpDescribe, acl.TransactionalID(key)) {
			co.ErrorCode, co.ErrorMessage = kerr.TransactionalIDAuthorizationFailed.Code, kmsg.StringPtr("not authorized to DESCRIBE transactional id "+key)
			break
		}
		if keyType == coordinatorTransaction && checkTransactionalID(key) != 0 {
			co.ErrorCode = kerr.InvalidRequest.Code
			co.ErrorMessage = kmsg.StringPtr("a transactional id is 1 to 255 bytes")
			break
		}
		// Transactional IDs share the groups' slots (broker.TxnCoordinator).
		b, _, ok := s.groupCoordinator(ctx, key)
		if !ok {
			co.ErrorCode = kerr.CoordinatorNotAvailable.Code
			co.ErrorMessage = kmsg.StringPtr("the coordinator slot is being handed over; retry")
			break
		}
		co.NodeID, co.Host, co.Port = b.node, b.host, b.port
	default:
		co.ErrorCode = kerr.InvalidRequest.Code
		co.ErrorMessage = kmsg.StringPtr("only group and transaction coordinators exist (key types 0 and 1)")
	}
	return co
}
