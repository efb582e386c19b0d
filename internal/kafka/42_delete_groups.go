package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// DeleteGroups, key 42.
//
// Versions 0-3. v1 ThrottleMillis; v2 flexible; v3 an ErrorMessage per
// group.
//
// A group with members is NON_EMPTY_GROUP. Otherwise the coordinator
// forgets it and its offsets and registration are deleted from the
// metadata store; a group neither knows is GROUP_ID_NOT_FOUND.

const deleteGroupsKey = 42

func init() { register(deleteGroupsKey, 0, 3, handleDeleteGroups) }

func handleDeleteGroups(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		if c.allowed(ctx, acl.OpDelete, acl.Group(id)) {
			rg.ErrorCode = errorCode(c.s.deleteGroup(ctx, id))
		} else {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		}
		if rg.ErrorCode != 0 && req.Version >= 3 {
			rg.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(rg.ErrorCode).Error() + ": " + id)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

func (s *Server) deleteGroup(ctx context.Context, id string) error {
	if id == "" {
		return kerr.InvalidGroupID
	}
	if s.notCoordinator(ctx, id) != 0 {
		return kerr.NotCoordinator
	}
	live, err := s.groups.Delete(ctx, id)
	if err != nil {
		return err
	}
	err = s.broker.DeleteGroup(ctx, id)
	switch {
	case errors.Is(err, broker.ErrUnknownGroup):
		if live {
			return nil // it had members once, never offsets
		}
		return kerr.GroupIDNotFound
	case err != nil:
		s.log.Warn("delete group failed", "group", id, "err", err)
		return err
	}
	return nil
}
