package kafka

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/group"
)

// ListGroups, key 16.
//
// Versions 0-5. v1 ThrottleMillis; v3 flexible; v4 (KIP-518) StatesFilter
// and GroupState; v5 (KIP-848) TypesFilter and GroupType. Filters match
// case-insensitively, as in Kafka; an empty filter matches everything.
//
// Listed are the groups the coordinator runs and the groups the metadata
// store knows (committed offsets, or created through REST), which are
// Empty with no protocol type. Every group is a "classic" group.

const listGroupsKey = 16

func init() { register(listGroupsKey, 0, 5, handleListGroups) }

const classicGroupType = "classic"

func handleListGroups(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	stored, err := c.s.storedGroups(ctx)
	if err != nil {
		c.s.log.Warn("list groups failed", "err", err)
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	matches := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	// DESCRIBE on the cluster lists every group, else only those the
	// principal may DESCRIBE (Kafka's rule).
	everyGroup := c.permits(ctx, acl.OpDescribe, acl.Cluster())
	add := func(id, protocolType string, state group.State) {
		if !matches(req.StatesFilter, state.String()) || !matches(req.TypesFilter, classicGroupType) {
			return
		}
		if !everyGroup && !c.permits(ctx, acl.OpDescribe, acl.Group(id)) {
			return
		}
		if c.s.notCoordinator(ctx, id) != 0 {
			return // listed by the agent that coordinates it
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = id, protocolType, state.String(), classicGroupType
		resp.Groups = append(resp.Groups, rg)
	}
	for _, d := range c.s.groups.Groups() {
		delete(stored, d.Group)
		add(d.Group, d.ProtocolType, d.State)
	}
	for id := range stored {
		add(id, "", group.Empty)
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp, nil
}
