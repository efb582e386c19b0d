package kafka

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/group"
)

// Shared by the group coordinator's API files (08-16, 42, 47). The
// coordinator itself is internal/group; offsets live in the metadata store
// and are reached through the broker.

// GroupMembers reports the live membership of consumer groups, for front
// ends that show members (REST).
func (s *Server) GroupMembers() broker.GroupMembers { return groupMembers{s} }

// groupMembers answers from this agent's coordinator for the groups whose
// slot it holds, and asks the coordinating agent over Kafka
// (DescribeGroups) for the others, so a REST client behind a load
// balancer sees a group's members whichever agent it reaches.
type groupMembers struct{ s *Server }

func (g groupMembers) GroupMembers(ctx context.Context, id string) (broker.GroupMembership, bool) {
	s := g.s
	b, self, ok := s.groupCoordinator(ctx, id)
	switch {
	case self:
		return s.groups.GroupMembers(ctx, id)
	case !ok:
		return broker.GroupMembership{}, false
	}
	cl, err := s.broker.KafkaClient(net.JoinHostPort(b.host, strconv.Itoa(int(b.port))))
	if err != nil {
		return broker.GroupMembership{}, false
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{id}
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		s.log.Debug("describe group at its coordinator", "group", id, "err", err)
		return broker.GroupMembership{}, false
	}
	resp := kresp.(*kmsg.DescribeGroupsResponse)
	if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 || resp.Groups[0].State == "Dead" {
		return broker.GroupMembership{}, false
	}
	d := resp.Groups[0]
	out := broker.GroupMembership{State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol,
		Members: make([]broker.GroupMember, 0, len(d.Members))}
	for _, m := range d.Members {
		bm := broker.GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if m.InstanceID != nil {
			bm.InstanceID = *m.InstanceID
		}
		if d.ProtocolType == group.ConsumerProtocolType {
			bm.Assignment = group.DecodeAssignment(m.MemberAssignment)
		}
		out.Members = append(out.Members, bm)
	}
	return out, true
}

// allGroupOps is the authorized operations bitfield (KIP-430) of a group
// with no authorizer: everything a group supports.
const allGroupOps = 1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe | 1<<kmsg.ACLOperationDelete

// clientIDKey carries the request header's client ID in a handler's ctx.
// Handlers must not read conn.clientID: the read loop writes it for the
// next request while handlers run.
type clientIDKey struct{}

// requestClientID is the client ID of the request being handled, "" when
// the connection does not provide it.
func requestClientID(ctx context.Context) string {
	id, _ := ctx.Value(clientIDKey{}).(string)
	return id
}

// clientHost is the client's address as Kafka reports it in
// DescribeGroups ("/" and the IP).
func clientHost(c *conn) string {
	addr := c.nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "/" + addr
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// storedGroups is the set of groups the metadata store knows (registered
// or with committed offsets).
func (s *Server) storedGroups(ctx context.Context) (map[string]bool, error) {
	names, err := s.broker.Store().ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}
