package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator, key 10.
//
// Versions 0-6. v1 CoordinatorType (0 group, 1 transaction) and
// ErrorMessage; v3 flexible; v4 (KIP-699) batches CoordinatorKeys and
// answers per key; v5 only adds TRANSACTION_ABORTABLE to the possible
// errors; v6 (KIP-932) admits share group keys (type 2).
//
// The agent asked coordinates every group: it is named by NodeID(agent ID)
// at its advertised address. With many agents, groups will hash to leased
// coordinator slots (DESIGN §5) and this answer will name a slot's holder.
// There is no transaction coordinator yet: transaction keys get
// COORDINATOR_NOT_AVAILABLE, which clients retry. Share groups are not
// supported: INVALID_REQUEST.

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
		co := c.s.coordinatorFor(ctx, req.CoordinatorType, req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage = co.ErrorCode, co.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = co.NodeID, co.Host, co.Port
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		resp.Coordinators = append(resp.Coordinators, c.s.coordinatorFor(ctx, req.CoordinatorType, key))
	}
	return resp, nil
}

func (s *Server) coordinatorFor(ctx context.Context, keyType int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	co := kmsg.NewFindCoordinatorResponseCoordinator()
	co.Key = key
	co.NodeID = -1
	switch keyType {
	case coordinatorGroup:
		b, _ := s.groupCoordinator(ctx, key)
		co.NodeID, co.Host, co.Port = b.node, b.host, b.port
	case coordinatorTransaction:
		co.ErrorCode = kerr.CoordinatorNotAvailable.Code
		co.ErrorMessage = kmsg.StringPtr("transactions are not supported yet")
	default:
		co.ErrorCode = kerr.InvalidRequest.Code
		co.ErrorMessage = kmsg.StringPtr("only group coordinators exist (key type 0)")
	}
	return co
}
