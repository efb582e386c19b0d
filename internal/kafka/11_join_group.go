package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// JoinGroup, key 11.
//
// Versions 0-9. v1 RebalanceTimeoutMillis (v0: the session timeout bounds
// the rebalance); v2 ThrottleMillis; v4 (KIP-394) a member without an id
// gets MEMBER_ID_REQUIRED and an id to join with; v5 (KIP-345)
// InstanceID, static membership; v6 flexible; v7 ProtocolType in the
// answer; v8 Reason (logged); v9 (KIP-814) SkipAssignment for a static
// leader that rejoins a stable group.
//
// The request waits for the join barrier (internal/group), at most the
// group's rebalance timeout; the handler holds no lock while it waits.

const joinGroupKey = 11

func init() { register(joinGroupKey, 0, 9, handleJoinGroup) }

func handleJoinGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	if !c.allowed(ctx, acl.OpRead, acl.Group(req.Group)) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if code := c.s.notCoordinator(ctx, req.Group); req.Group != "" && code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	jr := group.JoinRequest{
		Group:                req.Group,
		MemberID:             req.MemberID,
		InstanceID:           deref(req.InstanceID),
		ClientID:             requestClientID(ctx),
		ClientHost:           clientHost(c),
		SessionTimeout:       millis(req.SessionTimeoutMillis),
		ProtocolType:         req.ProtocolType,
		Reason:               deref(req.Reason),
		RequireKnownMemberID: req.Version >= 4,
		SkipAssignmentOK:     req.Version >= 9,
	}
	if req.Version >= 1 {
		jr.RebalanceTimeout = millis(req.RebalanceTimeoutMillis)
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	res := c.s.groups.Join(ctx, jr)
	if ctx.Err() != nil && res.Err == ctx.Err() {
		return nil, ctx.Err() // the connection is closing
	}
	resp.ErrorCode = errorCode(res.Err)
	resp.Generation = res.Generation
	resp.MemberID = res.MemberID
	if res.Err != nil {
		return resp, nil // null protocol (v7+; "" before)
	}
	resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
	resp.Protocol = kmsg.StringPtr(res.Protocol)
	resp.LeaderID = res.LeaderID
	resp.SkipAssignment = res.SkipAssignment
	for _, m := range res.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID = m.MemberID
		if m.InstanceID != "" {
			rm.InstanceID = kmsg.StringPtr(m.InstanceID)
		}
		rm.ProtocolMetadata = m.Metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
