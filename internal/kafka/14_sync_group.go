package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// SyncGroup, key 14.
//
// Versions 0-5. v1 ThrottleMillis; v3 (KIP-345) InstanceID; v4 flexible;
// v5 ProtocolType and Protocol in request (checked against the group's,
// INCONSISTENT_GROUP_PROTOCOL) and answer.
//
// The leader's request carries the assignment and answers everyone; a
// follower arriving first waits for it (internal/group bounds the wait by
// the rebalance timeout).

const syncGroupKey = 14

func init() { register(syncGroupKey, 0, 5, handleSyncGroup) }

func handleSyncGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if code := c.s.notCoordinator(ctx, req.Group); req.Group != "" && code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	sr := group.SyncRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID), Generation: req.Generation,
	}
	if req.Version >= 5 {
		sr.ProtocolType, sr.Protocol = req.ProtocolType, req.Protocol
	}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			sr.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	res := c.s.groups.Sync(ctx, sr)
	if ctx.Err() != nil && res.Err == ctx.Err() {
		return nil, ctx.Err() // the connection is closing
	}
	resp.ErrorCode = errorCode(res.Err)
	if res.Err != nil {
		resp.MemberAssignment = []byte{}
		return resp, nil
	}
	resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
	resp.Protocol = kmsg.StringPtr(res.Protocol)
	resp.MemberAssignment = res.Assignment
	return resp, nil
}
