package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// LeaveGroup, key 13.
//
// Versions 0-5. v1 ThrottleMillis; v3 (KIP-345) a batch of members, each
// by member id or, for static members, instance id, answered one by one;
// v4 flexible; v5 a Reason per member (logged). Before v3 the one member's
// error is the answer's error.

const leaveGroupKey = 13

func init() { register(leaveGroupKey, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if code := c.s.notCoordinator(ctx, req.Group); req.Group != "" && code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	var leaving []group.LeaveMember
	if req.Version < 3 {
		leaving = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			leaving = append(leaving, group.LeaveMember{MemberID: m.MemberID, InstanceID: deref(m.InstanceID), Reason: deref(m.Reason)})
		}
	}
	errs, err := c.s.groups.Leave(ctx, req.Group, leaving)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	if req.Version < 3 {
		resp.ErrorCode = errorCode(errs[0])
		return resp, nil
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		rm.ErrorCode = errorCode(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
