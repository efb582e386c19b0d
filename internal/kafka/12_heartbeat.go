package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// Heartbeat, key 12.
//
// Versions 0-4. v1 ThrottleMillis; v3 (KIP-345) InstanceID; v4 flexible.
// REBALANCE_IN_PROGRESS tells a member to rejoin; UNKNOWN_MEMBER_ID,
// ILLEGAL_GENERATION and FENCED_INSTANCE_ID that it is no longer part of
// the generation.

const heartbeatKey = 12

func init() { register(heartbeatKey, 0, 4, handleHeartbeat) }

func handleHeartbeat(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if code := c.s.notCoordinator(ctx, req.Group); req.Group != "" && code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	err := c.s.groups.Heartbeat(ctx, group.HeartbeatRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID), Generation: req.Generation,
	})
	resp.ErrorCode = errorCode(err)
	return resp, nil
}
