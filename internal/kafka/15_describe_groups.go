package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// DescribeGroups, key 15.
//
// Versions 0-6. v1 ThrottleMillis; v3 (KIP-430) authorized operations
// when asked for (with no authorizer: every group operation); v4 (KIP-345)
// InstanceID; v5 flexible; v6 (KIP-1043) an unknown group is
// GROUP_ID_NOT_FOUND with an ErrorMessage (before v6: state Dead, no
// error).
//
// As in Kafka, protocol, member metadata and assignments are shown only
// while the group is Stable. A group the coordinator does not run but the
// metadata store knows (committed offsets, or created through REST) is
// Empty, with no protocol type and no members.

const describeGroupsKey = 15

func init() { register(describeGroupsKey, 0, 6, handleDescribeGroups) }

func handleDescribeGroups(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	var stored map[string]bool
	var storedErr error
	for _, id := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		if !c.allowed(ctx, acl.OpDescribe, acl.Group(id)) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			if req.Version >= 6 {
				rg.ErrorMessage = kmsg.StringPtr("not authorized to DESCRIBE group " + id)
			}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = c.authorizedOps(ctx, acl.Group(id), allGroupOps)
		}
		if code := c.s.notCoordinator(ctx, id); id != "" && code != 0 {
			rg.ErrorCode = code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d, live := c.s.groups.Describe(ctx, id)
		switch {
		case id == "":
			rg.ErrorCode = kerr.InvalidGroupID.Code
		case live:
			describeLive(&rg, d)
		default:
			if stored == nil && storedErr == nil {
				stored, storedErr = c.s.storedGroups(ctx)
			}
			switch {
			case storedErr != nil:
				rg.ErrorCode = errorCode(storedErr)
			case stored[id]:
				rg.State = group.Empty.String()
			case req.Version >= 6:
				rg.ErrorCode = kerr.GroupIDNotFound.Code
			default:
				rg.State = group.Dead.String()
			}
		}
		if rg.ErrorCode != 0 && req.Version >= 6 {
			rg.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(rg.ErrorCode).Error() + ": " + id)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

func describeLive(rg *kmsg.DescribeGroupsResponseGroup, d group.Description) {
	rg.State = d.State.String()
	rg.ProtocolType = d.ProtocolType
	stable := d.State == group.Stable
	if stable {
		rg.Protocol = d.Protocol
	}
	for _, m := range d.Members {
		rm := kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
		if m.InstanceID != "" {
			rm.InstanceID = kmsg.StringPtr(m.InstanceID)
		}
		rm.ProtocolMetadata, rm.MemberAssignment = []byte{}, []byte{}
		if stable {
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
		}
		rg.Members = append(rg.Members, rm)
	}
}
